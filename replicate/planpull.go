package replicate

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// This file plans a pull target: every rule of pull, in order, each a check
// that says what it read, coming to what the target should hold or why it
// does not get its source's content.

// PullInput is everything a pull decision depends on, as the caches show
// it; the controller gathers it (pullInput), explain too.
type PullInput struct {
	Target Object
	// Namespace is the target's namespace, whose labels a source's consent
	// may select; when its Name is empty, only the target's namespace name
	// is known. NamespaceGone: the cache does not hold it.
	Namespace     Namespace
	NamespaceGone bool
	// Exclude lists the namespaces the operator excludes
	// (--exclude-namespaces).
	Exclude Patterns
	// Ref is the target's reference, read from the annotation RefKey;
	// RefErr says why it does not parse.
	Ref    Ref
	RefKey string
	RefErr error
	// Source is nil when the referenced object does not exist, or when it
	// could not be looked up: SourceErr then says why (for a source in
	// another cluster: ErrNoSourceCluster, ErrNotWatched, or an
	// *UnavailableError).
	Source    *Object
	SourceErr error
	// Next returns the reference the object r names carries, if any, in
	// this cluster: one step of the cycle walk (FindCycle). Nil: no chain
	// is followed.
	Next  func(r Ref) (Ref, bool)
	Gate  Gate
	Rules Rules
	Now   time.Time
}

// ErrNoSourceCluster means a reference names a cluster that is not
// configured as a source cluster (--source-cluster).
var ErrNoSourceCluster = errors.New("not configured as a source cluster")

// maxChain bounds how far replicate-from references are followed when
// looking for a cycle.
const maxChain = 32

// PullOutcome is what a pull plan comes to.
type PullOutcome string

const (
	// PullFilled: the target holds what its source has, or Write makes it
	// hold it.
	PullFilled PullOutcome = "filled"
	// PullRefused: the target does not get its source's content; the
	// Event says why. Write, if any, removes what came from the source.
	PullRefused PullOutcome = "refused"
	// PullExcluded: the operator excludes the target's namespace: nothing
	// is written in it; the Event says so.
	PullExcluded PullOutcome = "excluded"
	// PullUnavailable: the source's cluster cannot be read: the target
	// keeps what it has.
	PullUnavailable PullOutcome = "unavailable"
	// PullGone: the target's namespace is terminating or gone: nothing is
	// written, told or counted.
	PullGone PullOutcome = "gone"
)

// PullPlan is the outcome for one pull target: at most one write and one
// Event, and the checks that decided them.
type PullPlan struct {
	Outcome PullOutcome
	// Write is the desired target, nil when the target is to stay as it
	// is.
	Write *Object
	// Event is what to tell the target's owner, if anything; a Warning
	// for every refusal, naming its reason.
	Event *Event
	// Checks are the checks the plan made, in the order it made them: the
	// last one failed unless the outcome is PullFilled. A condition that
	// holds of nearly every target (its namespace is there, it is not
	// immutable) is a check only when it fails.
	Checks []Check
	// Source is the source the plan found, once it looked for it.
	Source *Object
}

// PlanPull decides what a pull target should hold: where it is (excluded
// or going namespaces), what it names (a valid reference, a source that
// can be read and leads to no cycle), whether the source exists and
// consents (the gate), and whether the target's type takes it. A source
// missing or not consenting revokes what came from it.
func PlanPull(in PullInput) PullPlan {
	p := &pullPlanner{in: in}
	for _, step := range []func() (PullPlan, bool){p.placement, p.reference, p.reachable} {
		if plan, done := step(); done {
			return plan
		}
	}
	denial, plan, done := p.consent()
	switch {
	case done:
		return plan
	case denial != nil:
		return p.revoke(denial)
	}
	return p.fill()
}

// pullPlanner is one run of PlanPull: its input and the checks made so far.
type pullPlanner struct {
	in     PullInput
	checks []Check
	source *Object
}

// check records c and reports whether it passed.
func (p *pullPlanner) check(c Check) bool {
	p.checks = append(p.checks, c)
	return c.Passed
}

// fail records a failed check whose detail is e's message.
func (p *pullPlanner) fail(what string, e *Event) {
	p.check(Check{What: what, Detail: e.Message})
}

// plan is the outcome with the checks made.
func (p *pullPlanner) plan(outcome PullOutcome, write *Object, e *Event) PullPlan {
	return PullPlan{Outcome: outcome, Write: write, Event: e, Checks: p.checks, Source: p.source}
}

// placement: in a namespace the operator excludes, nothing is written and
// the target is told so; in one that is terminating or gone, nothing is
// done at all.
func (p *pullPlanner) placement() (PullPlan, bool) {
	ns := p.in.Target.Namespace
	if excluded := excludeCheck(p.in.Exclude, ns); !p.check(excluded) {
		return p.plan(PullExcluded, nil, warning(ReasonNamespaceExcluded, "%s", excluded.Detail)), true
	}
	if p.in.NamespaceGone || p.in.Namespace.Terminating {
		p.check(Check{What: "namespace", Detail: "namespace " + ns + " is terminating or gone: nothing is written in it"})
		return p.plan(PullGone, nil, nil), true
	}
	return PullPlan{}, false
}

// reference: a reference that does not parse is refused.
func (p *pullPlanner) reference() (PullPlan, bool) {
	in := p.in
	if in.RefErr != nil {
		p.check(Check{What: in.RefKey, Detail: in.RefErr.Error()})
		return p.plan(PullRefused, nil, warning(ReasonInvalidAnnotation, "%s: %v", in.RefKey, in.RefErr)), true
	}
	p.check(Check{What: in.RefKey, Passed: true, Detail: "names " + in.Ref.String()})
	return PullPlan{}, false
}

// reachable: a source in another cluster must be in a cluster and a
// namespace this replicator reads, and readable now; a source in this
// cluster must not lead back to the target.
func (p *pullPlanner) reachable() (PullPlan, bool) {
	if p.in.Ref.Cluster != "" {
		return p.remote()
	}
	in := p.in
	self := Ref{Namespace: in.Target.Namespace, Name: in.Target.Name}
	var cycle *Event
	switch {
	case in.Ref == self:
		cycle = warning(ReasonCycle, "%s names the object itself", in.RefKey)
	case in.Source != nil && in.Next != nil && FindCycle(self, in.Ref, in.Next, maxChain):
		cycle = warning(ReasonCycle, "%s leads to a cycle (or a chain longer than %d) through %s", in.RefKey, maxChain, in.Ref)
	default:
		p.check(Check{What: "cycle", Passed: true, Detail: "no cycle"})
		return PullPlan{}, false
	}
	p.fail("cycle", cycle)
	return p.plan(PullRefused, nil, cycle), true
}

// remote is reachable for a source in another cluster. While its
// namespace there cannot be read, the cache may be stale: the target is
// neither filled nor emptied from it, and what was replicated last stays.
func (p *pullPlanner) remote() (PullPlan, bool) {
	const what = "source cluster"
	in := p.in
	var unavailable *UnavailableError
	var refusal *Event
	switch err := in.SourceErr; {
	case err == nil:
		p.check(Check{What: what, Passed: true, Detail: "cluster " + in.Ref.Cluster + " is read"})
		return PullPlan{}, false
	case errors.Is(err, ErrNoSourceCluster):
		refusal = warning(ReasonInvalidAnnotation, "%s: %v", in.RefKey, err)
	case errors.Is(err, ErrNotWatched):
		refusal = warning(ReasonInvalidAnnotation, "%s: namespace %s of cluster %s is not watched by this replicator", in.RefKey, in.Ref.Namespace, in.Ref.Cluster)
	case errors.As(err, &unavailable) && unavailable.Pending:
		// Still loading, and nothing has failed: nothing to tell yet.
		p.check(Check{What: what, Detail: fmt.Sprintf("source %s cannot be read yet (%s); the target is left as it is", in.Ref, unavailable.Reason)})
		return p.plan(PullUnavailable, nil, nil), true
	default:
		why := err.Error()
		if errors.As(err, &unavailable) {
			why = unavailable.Reason
		}
		e := warning(ReasonClusterUnavailable, "source %s cannot be read (%s); the data replicated last is kept", in.Ref, why)
		p.fail(what, e)
		return p.plan(PullUnavailable, nil, e), true
	}
	p.fail(what, refusal)
	return p.plan(PullRefused, nil, refusal), true
}

// consent: a source must exist and consent to the target's namespace (the
// gate); if not, denial says why, and what came from it is revoked. A
// source of a type the target cannot take leaves the target as it is.
func (p *pullPlanner) consent() (denial *Event, plan PullPlan, done bool) {
	in := p.in
	if !p.check(Check{What: "source", Passed: in.Source != nil, Detail: "found"}) {
		denial = warning(ReasonSourceNotFound, "source %s not found", in.Ref)
		p.checks[len(p.checks)-1].Detail = denial.Message
		return denial, PullPlan{}, false
	}
	p.source = in.Source
	ns := in.Namespace
	if ns.Name == "" {
		ns = Namespace{Name: in.Target.Namespace}
	}
	allowed, checks := in.Gate.decide(in.Source, in.Ref, ns)
	p.checks = append(p.checks, checks...)
	if !allowed {
		return warning(ReasonDenied, "%s", checks[len(checks)-1].Detail), PullPlan{}, false
	}
	target, source := in.Target.Type, in.Source.Type
	if !p.check(Check{What: "type", Passed: in.Rules.Accepts(target, source), Detail: fmt.Sprintf("target type %q takes source type %q", target, source)}) {
		e := warning(ReasonTypeMismatch, "target type %q cannot take source %s of type %q", target, in.Ref, source)
		p.checks[len(p.checks)-1].Detail = e.Message
		return nil, p.plan(PullRefused, nil, e), true
	}
	return nil, PullPlan{}, false
}

// kept returns the target's data without the keys replicated into it
// before, and a copy of its annotations.
func (p *pullPlanner) kept() (Data, map[string]string) {
	target := p.in.Target
	data := maps.Clone(target.Data)
	if data == nil {
		data = Data{}
	}
	for _, k := range parseKeys(target.Annotations[p.in.Gate.Annotations.ReplicatedKeys]) {
		delete(data, k)
	}
	return data, maps.Clone(target.Annotations)
}

// revoke is the plan for a target whose source is missing or does not
// consent (denial says which): revoking permission must revoke the data,
// so what came from the source is removed, and what the type requires is
// kept so that the object stays valid.
func (p *pullPlanner) revoke(denial *Event) PullPlan {
	a, target := p.in.Gate.Annotations, p.in.Target
	data, annotations := p.kept()
	for k, v := range p.in.Rules.Required(target.Type) {
		if _, ok := data[k]; !ok {
			data[k] = v
		}
	}
	delete(annotations, a.ReplicatedKeys)
	delete(annotations, a.PulledFrom)
	for _, k := range pullStamps(target, a) {
		delete(annotations, k)
	}
	if data.Equal(target.Data) && maps.Equal(annotations, target.Annotations) {
		return p.plan(PullRefused, nil, denial)
	}
	if target.Immutable && !data.Equal(target.Data) {
		e := warning(ReasonTargetImmutable, "%s; the target is immutable, so the replicated keys cannot be removed", denial.Message)
		p.fail("immutable", e)
		return p.plan(PullRefused, nil, e)
	}
	target.Data, target.Annotations = data, annotations
	return p.plan(PullRefused, &target, denial)
}

// fill is the plan for a target whose source consents: the source's keys
// replace those replicated before, the target's own keys stay, and the
// bookkeeping records the source's version and the time of the change.
func (p *pullPlanner) fill() PullPlan {
	a, target, source, ref := p.in.Gate.Annotations, p.in.Target, p.in.Source, p.in.Ref
	data, annotations := p.kept()
	for k, v := range source.Data {
		data[k] = v
	}
	keys := formatKeys(slices.Sorted(maps.Keys(source.Data)))
	if data.Equal(target.Data) && target.Annotations[a.ReplicatedKeys] == keys {
		return p.plan(PullFilled, nil, nil)
	}
	if target.Immutable && !data.Equal(target.Data) {
		e := warning(ReasonTargetImmutable, "target is immutable and differs from source %s", ref)
		p.fail("immutable", e)
		return p.plan(PullRefused, nil, e)
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[a.ReplicatedKeys] = keys
	// Marks a pull target for good: with its bookkeeping, it could pass
	// for a copy kubernetes-replicator pushed, and be adopted by a push
	// source of its name once its reference is removed.
	annotations[a.PulledFrom] = ref.String()
	stamps := pullStamps(target, a)
	for i := 0; i+1 < len(stamps); i += 2 {
		annotations[stamps[i]] = source.ResourceVersion
		annotations[stamps[i+1]] = p.in.Now.UTC().Format(time.RFC3339)
	}
	target.Data, target.Annotations = data, annotations
	return p.plan(PullFilled, &target, &Event{Type: Normal, Reason: ReasonReplicated, Message: fmt.Sprintf("replicated %d keys from %s", len(source.Data), ref)})
}

// pullStamps are the version and time annotations (in pairs) a pull target
// records of its last data change: ours, and reflector's too on a mirror
// that names its source with reflects, so that reflector reads it right
// after a rollback.
func pullStamps(target Object, a Annotations) []string {
	stamps := []string{a.ReplicatedFromVersion, a.ReplicatedAt}
	if _, key, _ := a.pullReference(target.Annotations); key != "" && key == a.Reflector.Reflects {
		stamps = append(stamps, a.Reflector.ReflectedVersion, a.Reflector.ReflectedAt)
	}
	return stamps
}

// FindCycle follows replicate-from references from start (the target's own
// reference) and reports whether they lead back to target, or go on for more
// than limit steps. next returns the reference an object carries, if any.
func FindCycle(target, start Ref, next func(Ref) (Ref, bool), limit int) bool {
	r := start
	for i := 0; i < limit; i++ {
		if r == target {
			return true
		}
		var ok bool
		if r, ok = next(r); !ok {
			return false
		}
	}
	return true
}
