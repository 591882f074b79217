package replicate

import (
	"context"
	"errors"
	"strconv"

	"github.com/sirupsen/logrus"
)

// This file is the pull side: a placeholder (replicate-from) is planned
// against its source, wherever that lives, and written through the one
// write path.

// maxChain bounds how far replicate-from references are followed when
// looking for a cycle.
const maxChain = 32

// reportSourceProblems raises an Event for each invalid entry in the pull
// permission annotations of a source (the push ones are reported by the push
// plan).
func (c *Controller) reportSourceProblems(obj any, o *Object) {
	a := c.opts.Annotations
	if v, ok := o.Annotations[a.ReplicationAllowed]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			c.event(obj, o, warning(ReasonInvalidAnnotation, "%s: %q is not a boolean", a.ReplicationAllowed, v))
		}
	}
	for _, key := range []string{a.ReplicationAllowedNS, a.ReplicationAllowedClusters} {
		if v, ok := o.Annotations[key]; ok {
			_, errs := c.patterns(v)
			for _, e := range listProblems(key, errs) {
				c.event(obj, o, &e)
			}
		}
	}
	_, problems := a.reflectorAllowed(o, c.patterns)
	for _, p := range problems {
		c.event(obj, o, &p)
	}
}

// reconcilePull brings a pull target to what its source allows.
func (c *Controller) reconcilePull(ctx context.Context, obj any, target *Object) error {
	a := c.opts.Annotations
	log := c.log.WithFields(logrus.Fields{"namespace": target.Namespace, "name": target.Name})
	key := target.Key()
	if excluded := excludeCheck(c.opts.Exclude, target.Namespace); !excluded.Passed {
		log.Debug("pull target in excluded namespace, left alone")
		c.event(obj, target, warning(ReasonNamespaceExcluded, "%s", excluded.Detail))
		c.states.setPull(key, itemState{StateRefused, ReasonNamespaceExcluded})
		return nil
	}
	ns := c.namespace(target.Namespace)
	if ns == nil || terminating(ns) {
		c.states.dropPull(key)
		return nil
	}
	// Every way out below is a refusal unless the plan says otherwise.
	result, reason := ResultRefused, ""
	defer func() {
		c.opts.Metrics.results.WithLabelValues(c.kind.Name(), string(ModePull), string(result)).Inc()
		switch result {
		case ResultRefused:
			c.states.setPull(key, itemState{StateRefused, reason})
		case ResultUnavailable:
			c.states.setPull(key, itemState{StateUnavailable, ""})
		default:
			c.states.setPull(key, itemState{result.state(), ""})
		}
	}()
	value, refKey, _ := a.pullReference(target.Annotations)
	ref, err := c.parseRef(value, target.Namespace)
	if err != nil {
		reason = ReasonInvalidAnnotation
		c.event(obj, target, warning(ReasonInvalidAnnotation, "%s: %v", refKey, err))
		return nil
	}
	source, skipped, why := c.pullSource(obj, target, ref, refKey)
	if skipped != "" {
		result, reason = skipped, why
		return nil
	}
	d := PlanPull(PullInput{
		Target:    *target,
		Source:    source,
		Ref:       ref,
		Namespace: Namespace{Name: ns.Name, Labels: ns.Labels},
		Gate:      c.gate(),
		Rules:     c.kind.Rules(),
		Now:       c.opts.Now(),
	})
	if d.Event == nil || d.Event.Type != Warning {
		result = ResultUnchanged
	} else {
		reason = d.Event.Reason
	}
	if d.Write != nil {
		reason := "the source's content differs"
		if d.Event != nil && d.Event.Type == Warning {
			reason = d.Event.Reason + ": the source's keys are removed"
		}
		out := c.write(ctx, writeOp{
			mode: ModePull, change: Change{Action: Update, Object: *d.Write}, current: obj,
			owner: target.Key(), report: obj, reason: reason,
			fields: logrus.Fields{"namespace": target.Namespace, "name": target.Name, "source": ref.String(), "keys": len(d.Write.Data)},
		})
		switch {
		case out.result == ResultDryRun:
			result = out.result
		case out.result != ResultWritten:
			result = out.result
			return out.err
		case result == ResultUnchanged:
			result = ResultWritten
		}
	}
	if d.Event != nil {
		c.event(obj, target, d.Event)
	}
	return nil
}

// pullSource finds the source ref names, in this cluster or another. When
// the target must not be planned now, it raises the Event that says why and
// returns the result to count ("refused", "unavailable") and that Event's
// reason; a source that does not exist is nil with no result: the plan
// empties the target.
func (c *Controller) pullSource(obj any, target *Object, ref Ref, refKey string) (*Object, Result, string) {
	if ref.Cluster != "" {
		return c.remoteSource(obj, target, ref, refKey)
	}
	self := Ref{Namespace: target.Namespace, Name: target.Name}
	if ref == self {
		c.event(obj, target, warning(ReasonCycle, "%s names the object itself", refKey))
		return nil, ResultRefused, ReasonCycle
	}
	_, source := c.get(ref.Namespace + "/" + ref.Name)
	if source == nil {
		return nil, "", ""
	}
	// The cycle is looked for from the source just read: looked up again,
	// it could have arrived in the cache in between, unchecked (a target
	// filled from a source that pulls from it).
	next := func(r Ref) (Ref, bool) {
		if r == ref {
			return c.pullRef(source)
		}
		return c.nextRef(r)
	}
	if FindCycle(self, ref, next, maxChain) {
		c.event(obj, target, warning(ReasonCycle, "%s leads to a cycle (or a chain longer than %d) through %s", refKey, maxChain, ref))
		return nil, ResultRefused, ReasonCycle
	}
	return source, "", ""
}

// remoteSource is pullSource for a source in another cluster.
func (c *Controller) remoteSource(obj any, target *Object, ref Ref, refKey string) (*Object, Result, string) {
	remote := c.opts.Remotes[ref.Cluster]
	if remote == nil {
		c.event(obj, target, warning(ReasonInvalidAnnotation, "%s: cluster %q is not configured as a source cluster for %ss", refKey, ref.Cluster, c.kind.Name()))
		return nil, ResultRefused, ReasonInvalidAnnotation
	}
	var unavailable *UnavailableError
	source, err := remote.Get(ref.Namespace, ref.Name)
	switch {
	case errors.Is(err, ErrNotWatched):
		c.event(obj, target, warning(ReasonInvalidAnnotation, "%s: namespace %s of cluster %s is not watched by this replicator", refKey, ref.Namespace, ref.Cluster))
		return nil, ResultRefused, ReasonInvalidAnnotation
	case errors.As(err, &unavailable):
		// The cache may be stale: neither fill nor empty from it. What was
		// replicated last stays until the cluster can be read again.
		if unavailable.Pending {
			c.log.WithFields(logrus.Fields{"namespace": target.Namespace, "name": target.Name, "source": ref.String()}).Debug("source cluster still loading, pull target left as it is")
			return nil, ResultUnavailable, ""
		}
		c.event(obj, target, warning(ReasonClusterUnavailable, "source %s cannot be read (%s); the data replicated last is kept", ref, unavailable.Reason))
		return nil, ResultUnavailable, ReasonClusterUnavailable
	}
	return source, "", ""
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

// gate is the pull permission check with this controller's settings.
func (c *Controller) gate() Gate {
	return Gate{Annotations: c.opts.Annotations, AllowAll: c.opts.AllowAll, Cluster: c.opts.Cluster, Parse: c.patterns}
}
