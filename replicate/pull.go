package replicate

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"
)

// This file is the pull side: what a placeholder (replicate-from) and its
// source, wherever that lives, look like in the caches is gathered for the
// planner (PlanPull), whose plan goes to the one write path; what it comes
// to is reported.

// reconcilePull plans a pull target from what the caches show, hands the
// write the plan asks for, if any, to the write path, and reports what it
// all came to.
func (c *Controller) reconcilePull(ctx context.Context, obj any, target *Object) error {
	in := c.pullInput(target)
	plan := PlanPull(in)
	var out writeOutcome
	if plan.Write != nil {
		reason := "the source's content differs"
		if plan.Outcome == PullRefused {
			reason = plan.Event.Reason + ": the source's keys are removed"
		}
		out = c.write(ctx, writeOp{
			mode: ModePull, change: Change{Action: Update, Object: *plan.Write}, current: obj,
			owner: target.Key(), report: obj, reason: reason,
			fields: logrus.Fields{"namespace": target.Namespace, "name": target.Name, "source": in.Ref.String(), "keys": len(plan.Write.Data)},
		})
	}
	c.reportPull(obj, in, plan, out.result)
	return out.err
}

// pullInput gathers from the caches what PlanPull needs to know of target:
// its namespace, the reference it carries, the source that names (in this
// cluster or another), and the references to follow from there.
func (c *Controller) pullInput(target *Object) PullInput {
	in := PullInput{Target: *target, Exclude: c.opts.Exclude, Gate: c.gate, Rules: c.rules, Now: c.opts.Now()}
	if ns := c.namespace(target.Namespace); ns != nil {
		in.Namespace = Namespace{Name: ns.Name, Labels: ns.Labels, Terminating: terminating(ns)}
	} else {
		in.NamespaceGone = true
	}
	value, refKey, _ := c.opts.Annotations.pullReference(target.Annotations)
	in.RefKey = refKey
	ref, err := c.parseRef(value, target.Namespace)
	if err != nil {
		in.RefErr = err
		return in
	}
	in.Ref = ref
	if ref.Cluster != "" {
		in.Source, in.SourceErr = c.remoteSource(ref)
		return in
	}
	_, source := c.get(ref.Namespace + "/" + ref.Name)
	in.Source = source
	// The cycle is looked for from the source just read: looked up again,
	// it could have arrived in the cache in between, unchecked (a target
	// filled from a source that pulls from it).
	in.Next = func(r Ref) (Ref, bool) {
		if r == ref && source != nil {
			return c.pullRef(source)
		}
		return c.nextRef(r)
	}
	return in
}

// remoteSource looks the source ref names up in its cluster.
func (c *Controller) remoteSource(ref Ref) (*Object, error) {
	remote := c.opts.Remotes[ref.Cluster]
	if remote == nil {
		return nil, fmt.Errorf("cluster %q is %w for %ss", ref.Cluster, ErrNoSourceCluster, c.name)
	}
	return remote.Get(ref.Namespace, ref.Name)
}

// reportPull counts what a pull plan came to (written: the Result of its
// write, if any), keeps it in the state gauge, logs it and raises its
// Event. A target whose namespace is going is no longer counted. The
// Event of a plan whose write failed or was held back waits for the write.
func (c *Controller) reportPull(obj any, in PullInput, plan PullPlan, written Result) {
	key := in.Target.Key()
	if plan.Outcome == PullGone {
		c.states.setPull(key, itemState{})
		return
	}
	result, state := plan.result(written)
	if plan.Outcome != PullExcluded {
		// A target the operator excludes is in the state gauge, not in
		// replications_total.
		c.opts.Metrics.results.WithLabelValues(c.name, string(ModePull), string(result)).Inc()
	}
	c.states.setPull(key, state)
	if result == ResultFailed || result == ResultHeld {
		return
	}
	log := c.log.WithFields(logrus.Fields{"namespace": in.Target.Namespace, "name": in.Target.Name})
	switch {
	case plan.Outcome == PullExcluded:
		log.Debug("pull target in excluded namespace, left alone")
	case plan.Outcome == PullUnavailable && plan.Event == nil:
		log.WithField("source", in.Ref.String()).Debug("source cluster still loading, pull target left as it is")
	}
	if plan.Event != nil {
		c.event(obj, &in.Target, plan.Event)
	}
}

// result is what a plan came to once its write, if any, was made
// (written: that write's Result, empty without one), and the state that
// leaves its target in; a refusal's reason is its Event's.
func (p PullPlan) result(written Result) (Result, itemState) {
	r := ResultUnchanged
	switch {
	case written == ResultDryRun, written == ResultHeld, written == ResultFailed:
		r = written
	case p.Outcome == PullRefused, p.Outcome == PullExcluded:
		r = ResultRefused
	case p.Outcome == PullUnavailable:
		r = ResultUnavailable
	case written == ResultWritten:
		r = ResultWritten
	}
	switch r {
	case ResultRefused:
		reason := ""
		if p.Event != nil {
			reason = p.Event.Reason
		}
		return r, itemState{StateRefused, reason}
	case ResultUnavailable:
		return r, itemState{StateUnavailable, ""}
	}
	return r, itemState{r.state(), ""}
}

// nextRef returns the pull reference the cached object r names carries, if
// any, in this cluster: one step of FindCycle.
func (c *Controller) nextRef(r Ref) (Ref, bool) {
	_, o := c.get(r.Namespace + "/" + r.Name)
	if o == nil {
		return Ref{}, false
	}
	return c.pullRef(o)
}

// pullRef returns the pull reference o carries, if any, in this cluster.
func (c *Controller) pullRef(o *Object) (Ref, bool) {
	v, _, ok := c.opts.Annotations.pullReference(o.Annotations)
	if !ok {
		return Ref{}, false
	}
	n, err := c.parseRef(v, o.Namespace)
	return n, err == nil && n.Cluster == ""
}
