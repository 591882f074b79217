package replicate

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// This file plans a pull target: what it should hold, given its source and
// what the gate says.

// PullInput is everything a pull decision depends on.
type PullInput struct {
	Target Object
	// Source is nil when the referenced object does not exist.
	Source *Object
	Ref    Ref
	// Namespace is the target's namespace, whose labels a source's consent
	// may select; when its Name is empty, only the target's namespace name
	// is known.
	Namespace Namespace
	Gate      Gate
	Rules     Rules
	Now       time.Time
}

// Decision is the outcome for one object: at most one write and one event.
type Decision struct {
	// Write is the desired object, nil when the current one is right.
	Write *Object
	Event *Event
}

// PlanPull decides what a pull target should hold.
func PlanPull(in PullInput) Decision {
	a := in.Gate.Annotations
	target := in.Target
	previous := parseKeys(target.Annotations[a.ReplicatedKeys])

	var denial *Event
	switch {
	case in.Source == nil:
		denial = warning(ReasonSourceNotFound, "source %s not found", in.Ref)
	default:
		ns := in.Namespace
		if ns.Name == "" {
			ns = Namespace{Name: target.Namespace}
		}
		if ok, why := in.Gate.Allows(in.Source, in.Ref, ns); !ok {
			denial = warning(ReasonDenied, "%s", why)
		} else if !in.Rules.Accepts(target.Type, in.Source.Type) {
			return Decision{Event: warning(ReasonTypeMismatch, "target type %q cannot take source %s of type %q", target.Type, in.Ref, in.Source.Type)}
		}
	}

	data := maps.Clone(target.Data)
	if data == nil {
		data = Data{}
	}
	for _, k := range previous {
		delete(data, k)
	}
	annotations := maps.Clone(target.Annotations)

	if denial != nil {
		// Revoking permission must revoke the data: drop what came from the
		// source, keep what the type requires so the object stays valid.
		for k, v := range in.Rules.Required(target.Type) {
			if _, ok := data[k]; !ok {
				data[k] = v
			}
		}
		delete(annotations, a.ReplicatedKeys)
		delete(annotations, a.PulledFrom)
		for _, k := range pullStamps(target, a) {
			delete(annotations, k)
		}
		d := Decision{Event: denial}
		if !data.Equal(target.Data) || !maps.Equal(annotations, target.Annotations) {
			if target.Immutable && !data.Equal(target.Data) {
				d.Event = warning(ReasonTargetImmutable, "%s; the target is immutable, so the replicated keys cannot be removed", denial.Message)
				return d
			}
			d.Write = withContent(target, data, annotations)
		}
		return d
	}

	source := in.Source
	for k, v := range source.Data {
		data[k] = v
	}
	keys := formatKeys(slices.Sorted(maps.Keys(source.Data)))
	if data.Equal(target.Data) && target.Annotations[a.ReplicatedKeys] == keys {
		return Decision{}
	}
	if target.Immutable && !data.Equal(target.Data) {
		return Decision{Event: warning(ReasonTargetImmutable, "target is immutable and differs from source %s", in.Ref)}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[a.ReplicatedKeys] = keys
	// Marks a pull target for good: with its bookkeeping, it could pass
	// for a copy kubernetes-replicator pushed, and be adopted by a push
	// source of its name once its reference is removed.
	annotations[a.PulledFrom] = in.Ref.String()
	stamps := pullStamps(target, a)
	for i := 0; i+1 < len(stamps); i += 2 {
		annotations[stamps[i]] = source.ResourceVersion
		annotations[stamps[i+1]] = in.Now.UTC().Format(time.RFC3339)
	}
	return Decision{
		Write: withContent(target, data, annotations),
		Event: &Event{Type: Normal, Reason: ReasonReplicated, Message: fmt.Sprintf("replicated %d keys from %s", len(source.Data), in.Ref)},
	}
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

func withContent(o Object, data Data, annotations map[string]string) *Object {
	o.Data = data
	o.Annotations = annotations
	return &o
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
