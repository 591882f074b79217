package replicate

import (
	"maps"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// This file plans a push source: which namespaces it pushes into (its
// annotations, in every dialect read, then the operator's policy), and
// which of its replicas to create, update, adopt and delete.

// PushOptions configure push decisions.
type PushOptions struct {
	Annotations Annotations
	// Exclude lists namespaces never written.
	Exclude Patterns
	// Policy is what the operator allows push to do; GrantsRights says
	// whether the kind's objects grant rights (Rules.GrantsRights).
	Policy       PushPolicy
	GrantsRights bool
	Now          time.Time
	// Parse parses pattern lists; nil means ParsePatterns.
	Parse PatternParser
	// AdoptUnproven are the namespaces where the operator vouches for
	// copies with kubernetes-replicator's bookkeeping: adopted without
	// the proof of a current version (see adoptable).
	AdoptUnproven Patterns
	// Explain asks the plan to say what decided each namespace
	// (PushPlan.Read and Why), for explain; it costs a few values for
	// every namespace selected.
	Explain bool
}

// PushPlan is the outcome for one push source.
type PushPlan struct {
	// Targets are the namespaces the source pushes into, policy applied,
	// sorted.
	Targets []string
	Changes []Change
	// Conflicts are namespaces holding an object of the source's name that
	// this source does not own; they are never written.
	Conflicts []string
	// Refused are target namespaces the push policy closes to the source;
	// they are never written, and replicas there are deleted.
	Refused []string
	// SourceRefused: the policy does not let the source push at all; its
	// push annotations were not read, and every replica it made is
	// deleted.
	SourceRefused bool
	// Adopted are namespaces whose copy, made by the replicator being
	// replaced, is taken over.
	Adopted []string
	// Problems are invalid push annotations and refusals of the push
	// policy, to report on the source.
	Problems []Event
	// Policy is the push policy's check of the source's namespace (nil
	// without a source).
	Policy *Check
	// Excluded are namespaces the source selects that the operator
	// excludes (--exclude-namespaces): never written. Sorted.
	Excluded []string
	// Read and Why are filled when PushOptions.Explain is set: the push
	// annotations read, as written, and for each namespace of Targets,
	// Refused and Excluded what selected it and what took it out.
	Read []Written
	Why  map[string][]Lookup
}

// PushInput is everything a push decision depends on.
type PushInput struct {
	// SourceRef names the source; Source is nil when it does not exist.
	SourceRef Ref
	Source    *Object
	// Namespaces are all namespaces of the cluster.
	Namespaces []Namespace
	// Owned are the replicas whose marker names this source.
	Owned []*Object
	// Existing returns the object of the source's name in a namespace.
	Existing func(namespace string) *Object
	Options  PushOptions
}

// PushTargets returns the namespaces a source pushes into, and problems with
// its annotations. Each dialect's push annotations describe a set of
// namespaces; the targets are their union, minus the source's own namespace,
// excluded and terminating namespaces. Invalid pattern entries match
// nothing; an invalid selector selects nothing; the rest still applies.
func PushTargets(source *Object, namespaces []Namespace, opts PushOptions) (map[string]bool, []Event) {
	s := selectTargets(source, namespaces, opts, nil)
	return s.targets, s.problems
}

// selection is what a source's push annotations select.
type selection struct {
	targets map[string]bool
	// excluded are the namespaces they select that the operator excludes.
	excluded []string
	problems []Event
	// read are the push annotations read, as written (only with why).
	read []Written
}

// selectTargets is PushTargets, with the namespaces the source selects
// that are excluded. When why is not nil, it also returns the annotations
// read and puts in why, for each namespace selected, the lookups that
// selected it (and the exclusion's).
func selectTargets(source *Object, namespaces []Namespace, opts PushOptions, why map[string][]Lookup) selection {
	s := selection{targets: map[string]bool{}}
	if source == nil {
		return s
	}
	sets, problems := pushSets(source, opts)
	s.problems = problems
	if why != nil {
		for _, set := range sets {
			s.read = append(s.read, set.written()...)
		}
	}
	if len(sets) == 0 {
		return s
	}
	for _, ns := range namespaces {
		if ns.Name == source.Namespace || ns.Terminating {
			continue
		}
		selected := false
		var looked []Lookup
		for _, set := range sets {
			var w *[]Lookup
			if why != nil {
				looked = nil
				w = &looked
			}
			if set.match(ns, w) {
				selected = true
				break
			}
		}
		if !selected {
			continue
		}
		if opts.Exclude.Match(ns.Name) {
			s.excluded = append(s.excluded, ns.Name)
			if why != nil {
				why[ns.Name] = append(looked, opts.Exclude.lookup("--exclude-namespaces", ns.Name))
			}
			continue
		}
		s.targets[ns.Name] = true
		if why != nil {
			why[ns.Name] = looked
		}
	}
	return s
}

// pushSets translates the push annotations of every dialect read into
// namespace sets: ours (replicate-to patterns ORed with the
// replicate-to-matching selector), kubed's sync selector, reflector's auto
// push (allowed AND auto).
func pushSets(source *Object, opts PushOptions) ([]*namespaceSet, []Event) {
	a := opts.Annotations
	list, to := source.Annotations[a.ReplicateTo]
	ours, problems := setText{listKey: a.ReplicateTo, list: list, hasList: to,
		selectorKey: a.ReplicateToMatching, selector: source.Annotations[a.ReplicateToMatching]}.parse(opts.Parse)
	sets := []*namespaceSet{ours}
	kubed, errs := kubedTargets(source, a)
	problems = append(problems, errs...)
	if kubed != nil {
		sets = append(sets, kubed)
	}
	auto, errs := a.reflectorAuto(source, opts.Parse)
	problems = append(problems, errs...)
	if auto != nil {
		sets = append(sets, auto)
	}
	return sets, problems
}

// Pushes reports whether source (nil when it is gone), which owns the
// replicas owned, takes part in push: it asks for it, or replicas it made
// are left to delete. Only then is a push planned: a plan reads every
// namespace.
func Pushes(source *Object, owned int, a Annotations) bool {
	return owned > 0 || (source != nil && a.IsPushSource(source.Annotations))
}

// PlanPush decides which replicas of a source to create, update and delete:
// the policy first, then the namespaces the source selects and the policy
// leaves open (pushTargets), each written to hold the source's replica
// (planReplicas), and its replicas elsewhere deleted (planDeletes).
func PlanPush(in PushInput) PushPlan {
	var plan PushPlan
	if in.Options.Explain {
		plan.Why = map[string][]Lookup{}
	}
	targets := pushTargets(in, &plan)
	plan.Targets = slices.Sorted(maps.Keys(targets))
	planReplicas(in, plan.Targets, &plan)
	planDeletes(in, targets, &plan)
	return plan
}

// pushTargets returns the namespaces the source pushes into, and puts in
// plan what decided them. The policy first: what a source that may not
// push asks for is never parsed nor matched against the namespaces.
func pushTargets(in PushInput, plan *PushPlan) map[string]bool {
	if in.Source != nil {
		check := in.Options.Policy.SourceCheck(in.Source.Namespace, in.Options.GrantsRights)
		plan.Policy = &check
	}
	if denial, refused := refusePush(plan.Policy, in.Source, in.Options.Annotations); refused {
		plan.Problems = []Event{*denial}
		plan.SourceRefused = true
		return map[string]bool{}
	}
	s := selectTargets(in.Source, in.Namespaces, in.Options, plan.Why)
	refused, denials := applyPushPolicy(in.Options.Policy, in.Source, in.Options.GrantsRights, s.targets, plan.Why)
	plan.Problems = append(s.problems, denials...)
	plan.Refused = refused
	plan.Excluded = s.excluded
	slices.Sort(plan.Excluded)
	plan.Read = s.read
	return s.targets
}

// planReplicas plans the replica in each target namespace: created where
// there is none, adopted where it is a copy the replicator being replaced
// made, left alone where another object holds its name (a conflict),
// restored where it differs from the source.
func planReplicas(in PushInput, targets []string, plan *PushPlan) {
	a := in.Options.Annotations
	marker := in.SourceRef.Namespace + "/" + in.SourceRef.Name
	// Every replica is the same but for its namespace: the maps of one
	// are shared by all (nothing changes them; the writes build requests
	// from copies), so that planning a fan-out to ten thousand namespaces
	// does not hold ten thousand copies of them.
	var template Object
	if len(targets) > 0 {
		template = replica(in.Source, "", marker, in.Options)
	}
	for _, ns := range targets {
		desired := template
		desired.Namespace = ns
		current := in.Existing(ns)
		switch {
		case current == nil:
			plan.Changes = append(plan.Changes, Change{Action: Create, Object: desired})
		case current.Annotations[a.ReplicatedFrom] != marker && adoptable(current, in.Source, in.SourceRef, a, in.Options.AdoptUnproven):
			c, _ := updateReplica(current, desired, a)
			if c.Action == Update {
				c.Action = Adopt
			}
			plan.Changes = append(plan.Changes, c)
			plan.Adopted = append(plan.Adopted, ns)
		case current.Annotations[a.ReplicatedFrom] != marker:
			plan.Conflicts = append(plan.Conflicts, ns)
		default:
			if c, ok := updateReplica(current, desired, a); ok {
				plan.Changes = append(plan.Changes, c)
			}
		}
	}
}

// planDeletes deletes the source's replicas outside its targets, but in
// terminating namespaces (they go with the namespace).
func planDeletes(in PushInput, targets map[string]bool, plan *PushPlan) {
	a := in.Options.Annotations
	marker := in.SourceRef.Namespace + "/" + in.SourceRef.Name
	terminating := map[string]bool{}
	for _, ns := range in.Namespaces {
		if ns.Terminating {
			terminating[ns.Name] = true
		}
	}
	for _, r := range in.Owned {
		// A replica has its source's name: the marker on an object of
		// another name (written by hand) makes it no replica of ours.
		if targets[r.Namespace] || terminating[r.Namespace] || r.Annotations[a.ReplicatedFrom] != marker || r.Name != in.SourceRef.Name {
			continue
		}
		plan.Changes = append(plan.Changes, Change{Action: Delete, Object: *r, Current: r})
	}
}

// replica builds the desired push replica of source in namespace.
func replica(source *Object, namespace, marker string, opts PushOptions) Object {
	a := opts.Annotations
	r := Object{
		Namespace: namespace,
		Name:      source.Name,
		Type:      source.Type,
		Data:      maps.Clone(source.Data),
		Annotations: map[string]string{
			a.ReplicatedFrom:        marker,
			a.ReplicatedKeys:        formatKeys(slices.Sorted(maps.Keys(source.Data))),
			a.ReplicatedFromVersion: source.ResourceVersion,
			a.ReplicatedAt:          opts.Now.UTC().Format(time.RFC3339),
		},
	}
	if strip, _ := strconv.ParseBool(source.Annotations[a.StripLabels]); !strip && !a.pushesOnlyAsReflector(source.Annotations) {
		r.Labels = maps.Clone(source.Labels)
	}
	if keep, _ := strconv.ParseBool(source.Annotations[a.KeepOwnerReferences]); keep {
		r.OwnerReferences = slices.Clone(source.OwnerReferences)
	}
	if a.kubedSource(source.Annotations) {
		addKubedBookkeeping(&r, source)
	}
	if a.reflectorPushSource(source.Annotations) {
		addReflectorBookkeeping(&r, source, opts.Now, a.Reflector)
	}
	if r.Data == nil {
		r.Data = Data{}
	}
	return r
}

// updateReplica compares an owned replica with the desired one and returns the
// change that restores it, if any. Annotations other than ours are kept; the
// version and time of the last data change are only moved when data changes.
func updateReplica(current *Object, desired Object, a Annotations) (Change, bool) {
	if current.Type != desired.Type {
		return Change{Action: Recreate, Object: desired, Current: current}, true
	}
	dataChanged := !desired.Data.Equal(current.Data)
	annotations := maps.Clone(current.Annotations)
	if annotations == nil {
		// An adopted copy may have none.
		annotations = map[string]string{}
	}
	stamps := a.stamps()
	for k, v := range desired.Annotations {
		if _, ok := current.Annotations[k]; ok && slices.Contains(stamps, k) {
			continue
		}
		annotations[k] = v
	}
	if dataChanged {
		for _, k := range stamps {
			if v, ok := desired.Annotations[k]; ok {
				annotations[k] = v
			}
		}
	}
	same := !dataChanged &&
		maps.Equal(annotations, current.Annotations) &&
		maps.Equal(desired.Labels, current.Labels) &&
		ownerRefsEqual(desired.OwnerReferences, current.OwnerReferences)
	if same {
		return Change{}, false
	}
	desired.Annotations = annotations
	desired.UID = current.UID
	desired.ResourceVersion = current.ResourceVersion
	if dataChanged && current.Immutable {
		return Change{Action: Recreate, Object: desired, Current: current}, true
	}
	return Change{Action: Update, Object: desired, Current: current}, true
}

func ownerRefsEqual(a, b []metav1.OwnerReference) bool {
	return slices.EqualFunc(a, b, func(x, y metav1.OwnerReference) bool {
		return x.APIVersion == y.APIVersion && x.Kind == y.Kind && x.Name == y.Name && x.UID == y.UID &&
			ptrEqual(x.Controller, y.Controller) && ptrEqual(x.BlockOwnerDeletion, y.BlockOwnerDeletion)
	})
}

func ptrEqual[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
