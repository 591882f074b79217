package replicate

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// This file holds the decisions: pure functions from what the cache shows to
// what should be written. They never talk to the API server, so every rule of
// the contract can be tested with plain values.

// Value is one entry of an object's replicated content. Binary marks entries
// that live in a separate map of their kind (a ConfigMap's binaryData).
type Value struct {
	Bytes  []byte
	Binary bool
	// Digest marks Bytes as the SHA-256 of the content, not the content:
	// the cache holds what the replicator wrote into a target that way (see
	// CacheTransform). It compares like the content; it is never written.
	Digest bool
}

// sum is the SHA-256 of the content.
func (v Value) sum() []byte {
	if v.Digest {
		return v.Bytes
	}
	s := sha256.Sum256(v.Bytes)
	return s[:]
}

// Same reports whether both hold the same content, either of them possibly
// as a digest.
func (v Value) Same(w Value) bool {
	if v.Binary != w.Binary {
		return false
	}
	if v.Digest == w.Digest {
		return bytes.Equal(v.Bytes, w.Bytes)
	}
	return bytes.Equal(v.sum(), w.sum())
}

// Data is the replicated content of an object, by key.
type Data map[string]Value

// Equal reports whether both hold the same keys with the same values.
func (d Data) Equal(o Data) bool {
	if len(d) != len(o) {
		return false
	}
	for k, v := range d {
		w, ok := o[k]
		if !ok || !v.Same(w) {
			return false
		}
	}
	return true
}

// digested reports whether any value is held as a digest only.
func (d Data) digested() bool {
	for _, v := range d {
		if v.Digest {
			return true
		}
	}
	return false
}

// Object is the planner's view of one object of any kind.
type Object struct {
	Namespace       string
	Name            string
	UID             string
	ResourceVersion string
	// Type is what must be equal between source and replica and cannot change
	// in place: a Secret's type, a RoleBinding's roleRef; empty otherwise.
	Type            string
	Data            Data
	Labels          map[string]string
	Annotations     map[string]string
	OwnerReferences []metav1.OwnerReference
	// Immutable objects reject any change of Data.
	Immutable bool
}

// Key returns "namespace/name".
func (o *Object) Key() string { return o.Namespace + "/" + o.Name }

// Namespace is the planner's view of a namespace.
type Namespace struct {
	Name string
	// Labels may lack kubernetes.io/metadata.name, which the API server
	// sets to the name on every namespace: the cache does not hold it, and
	// selectors see it (labels).
	Labels      map[string]string
	Terminating bool
}

// labels returns the namespace's labels as selectors see them: with
// kubernetes.io/metadata.name.
func (n Namespace) labels() labels.Labels { return namespaceLabels(n) }

type namespaceLabels Namespace

// namespaceNameLabel is corev1.LabelMetadataName.
const namespaceNameLabel = "kubernetes.io/metadata.name"

func (n namespaceLabels) Has(k string) bool   { _, ok := n.Lookup(k); return ok }
func (n namespaceLabels) Get(k string) string { v, _ := n.Lookup(k); return v }
func (n namespaceLabels) Lookup(k string) (string, bool) {
	if v, ok := n.Labels[k]; ok {
		return v, true
	}
	if k == namespaceNameLabel {
		return n.Name, true
	}
	return "", false
}

// Rules are what a kind contributes to the decisions.
type Rules struct {
	// Accepts reports whether a pull target of type target may take the
	// content of a source of type source.
	Accepts func(target, source string) bool
	// Required returns the keys an object of type typ must keep, with the
	// values they fall back to when the replicated content is removed.
	Required func(typ string) Data
	// GrantsRights marks kinds whose objects give someone permissions
	// (Roles, RoleBindings): pushing them needs a policy of its own.
	GrantsRights bool
}

// EventType separates informational events from warnings.
type EventType string

const (
	Normal  EventType = "Normal"
	Warning EventType = "Warning"
)

// Event reasons. Messages never contain secret data, only names and keys.
const (
	ReasonReplicated        = "Replicated"
	ReasonSourceNotFound    = "SourceNotFound"
	ReasonDenied            = "ReplicationDenied"
	ReasonTypeMismatch      = "TypeMismatch"
	ReasonTargetConflict    = "TargetConflict"
	ReasonAdopted           = "Adopted"
	ReasonTargetImmutable   = "TargetImmutable"
	ReasonInvalidAnnotation = "InvalidAnnotation"
	ReasonCycle             = "ReplicationCycle"
	ReasonWriteFailed       = "WriteFailed"
	ReasonNamespaceGone     = "NamespaceTerminating"
	// ReasonNamespaceExcluded: a pull target in a namespace the operator
	// excluded (--exclude-namespaces); nothing is written in it.
	ReasonNamespaceExcluded = "NamespaceExcluded"
	// ReasonFightingWriter: another writer keeps undoing the replicator's
	// writes of the object.
	ReasonFightingWriter = "FightingWriter"
	// ReasonClusterUnavailable: the source cluster cannot be read; the
	// target keeps what it has.
	ReasonClusterUnavailable = "SourceClusterUnavailable"
)

// Event is something to tell the owner of an object.
type Event struct {
	Type    EventType
	Reason  string
	Message string
}

func warning(reason, format string, args ...any) *Event {
	return &Event{Type: Warning, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Gate is the configuration of the pull permission check.
type Gate struct {
	Annotations Annotations
	// AllowAll switches the check off for sources in this cluster: every
	// source may be pulled anywhere. It never opens another cluster's
	// sources.
	AllowAll bool
	// Cluster is this cluster's name, matched against the
	// replication-allowed-clusters list of sources in other clusters. Empty:
	// no other cluster's source is ever allowed.
	Cluster string
	// Parse parses pattern lists; nil means ParsePatterns.
	Parse PatternParser
}

// Check is one condition of a decision and its outcome, as explain shows
// it. Detail says why it failed (the message of the Event the controller
// raises) or what made it pass.
type Check struct {
	What   string `json:"what"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
	// Checked are the pattern lists and selectors the check read, as
	// written, and what each made of the name checked, in the order they
	// were read.
	Checked []Lookup `json:"checked,omitempty"`
}

// Written is a pattern list or a label selector as its annotation or flag
// holds it, as explain shows it: a long one is cut.
type Written struct {
	// Key is the annotation or flag.
	Key string `json:"key"`
	// Value is the list or selector as written; Truncated when it is cut
	// (after about 200 bytes, at the end of an entry when it can be), and
	// then Bytes is how long it is.
	Value     string `json:"value"`
	Truncated bool   `json:"truncated,omitempty"`
	Bytes     int    `json:"bytes,omitempty"`
	// Entries is how many entries a pattern list has; Selector marks a
	// label selector.
	Entries  int  `json:"entries,omitempty"`
	Selector bool `json:"selector,omitempty"`
}

// Lookup is what a pattern list or a label selector made of one name, as
// a decision read it.
type Lookup struct {
	Written
	// Name is the namespace (or cluster) looked up.
	Name string `json:"name"`
	// Matched reports whether the list or selector takes Name. Entry is
	// the entry that matched, as written (a selector matches as a whole);
	// Every, that the value means every namespace (reflector's empty
	// conditions, kubed's "" and "true").
	Matched bool   `json:"matched"`
	Entry   string `json:"entry,omitempty"`
	Every   bool   `json:"every,omitempty"`
	// PlainOnly: only an entry naming Name plainly counts, not a pattern
	// (the source namespace of a push into a system namespace).
	PlainOnly bool `json:"plainOnly,omitempty"`
}

// Allows reports whether the source named by ref may be replicated into
// namespace ns, and if not, why. Invalid entries of the source's lists match
// nothing. A source in another cluster (ref.Cluster set) must in addition
// name this cluster in its replication-allowed-clusters list. In this
// cluster, a source may also allow ns in reflector's dialect, when it is
// read: the consents of the dialects are a union.
func (g Gate) Allows(source *Object, ref Ref, ns Namespace) (bool, string) {
	groups := g.Checks(source, ref, ns)
	for _, group := range groups {
		if passed(group) {
			return true, ""
		}
	}
	// Say why in the dialect the source speaks: reflector's when it
	// carries only reflector's annotations, ours otherwise.
	why := groups[0]
	if len(groups) > 1 {
		if _, ours := source.Annotations[g.Annotations.ReplicationAllowed]; !ours && g.Annotations.reflectorSource(source.Annotations) {
			why = groups[1]
		}
	}
	return false, why[len(why)-1].Detail
}

// Checks returns the conditions Allows evaluates, one group per way the
// source may consent; the source is allowed when every check of one group
// passes. A group stops at its first failing check.
func (g Gate) Checks(source *Object, ref Ref, ns Namespace) [][]Check {
	remote := ref.Cluster != ""
	if g.AllowAll && !remote {
		return [][]Check{{{What: "--allow-all", Passed: true, Detail: "the permission check is switched off"}}}
	}
	groups := [][]Check{g.ourChecks(source, ref, ns.Name)}
	if !remote && g.Annotations.Dialects.Reads(DialectReflector) {
		groups = append(groups, g.reflectorChecks(source, ref, ns))
	}
	return groups
}

func passed(checks []Check) bool {
	for _, c := range checks {
		if !c.Passed {
			return false
		}
	}
	return true
}

// ourChecks are the gate in this replicator's own annotations.
func (g Gate) ourChecks(source *Object, ref Ref, namespace string) []Check {
	a := g.Annotations
	var checks []Check
	check := func(what string, ok bool, pass, fail string) bool {
		c := Check{What: what, Passed: ok, Detail: pass}
		if !ok {
			c.Detail = fail
		}
		checks = append(checks, c)
		return ok
	}
	allowed, err := strconv.ParseBool(source.Annotations[a.ReplicationAllowed])
	if !check(a.ReplicationAllowed, err == nil && allowed, `"true"`, fmt.Sprintf("source %s does not carry %s: \"true\"", ref, a.ReplicationAllowed)) {
		return checks
	}
	// listCheck checks that the pattern list at key is there and has an
	// entry matching name (a namespace or cluster: what).
	listCheck := func(key, what, name, missing, mismatch string) bool {
		list, ok := source.Annotations[key]
		if !ok {
			return check(key, false, "", missing)
		}
		patterns, errs := g.Parse.parse(list)
		l := patterns.lookup(key, name)
		if problems := listProblems(key, errs); !l.Matched && len(problems) > 0 {
			// Say which limit or error kept an entry from matching.
			mismatch += "; " + problems[0].Message
		}
		ok = check(key, l.Matched, "allows "+what+" "+name, mismatch)
		checks[len(checks)-1].Checked = []Lookup{l}
		return ok
	}
	if !listCheck(a.ReplicationAllowedNS, "namespace", namespace, fmt.Sprintf("source %s has no %s", ref, a.ReplicationAllowedNS),
		fmt.Sprintf("source %s does not allow namespace %s", ref, namespace)) || ref.Cluster == "" {
		return checks
	}
	clusters := a.ReplicationAllowedClusters
	if _, ok := source.Annotations[clusters]; ok && !check("--cluster-name", g.Cluster != "", g.Cluster,
		fmt.Sprintf("this replicator has no cluster name (--cluster-name) to match against %s of source %s", clusters, ref)) {
		return checks
	}
	listCheck(clusters, "cluster", g.Cluster, fmt.Sprintf("source %s has no %s: it is not served to other clusters", ref, clusters),
		fmt.Sprintf("source %s does not allow cluster %s", ref, g.Cluster))
	return checks
}

// reflectorChecks are the gate in reflector's dialect.
func (g Gate) reflectorChecks(source *Object, ref Ref, ns Namespace) []Check {
	r := g.Annotations.Reflector
	if reflectorIgnored(source) {
		return []Check{{What: "type", Detail: fmt.Sprintf("source %s is of type %s, which reflector's annotations never share", ref, source.Type)}}
	}
	if !reflectorBool(source.Annotations[r.Allowed]) {
		return []Check{{What: r.Allowed, Detail: fmt.Sprintf("source %s does not carry %s: \"true\"", ref, r.Allowed)}}
	}
	checks := []Check{{What: r.Allowed, Passed: true, Detail: `"true"`}}
	set, problems := g.Annotations.reflectorAllowed(source, g.Parse)
	what := r.AllowedNamespaces + ", " + r.AllowedSelector
	var looked []Lookup
	if set.match(ns, &looked) {
		return append(checks, Check{What: what, Passed: true, Detail: "allows namespace " + ns.Name, Checked: looked})
	}
	detail := fmt.Sprintf("source %s does not allow namespace %s (%s, %s)", ref, ns.Name, r.AllowedNamespaces, r.AllowedSelector)
	if len(problems) > 0 {
		// Say which limit or error kept the list or selector from matching.
		detail += "; " + problems[0].Message
	}
	return append(checks, Check{What: what, Detail: detail, Checked: looked})
}

// excludeCheck is the operator's exclusion (--exclude-namespaces) of a
// namespace: nothing is written in it, and a pull target there is told so
// (its Detail is the Event's message).
func excludeCheck(exclude Patterns, namespace string) Check {
	c := Check{What: "--exclude-namespaces", Passed: true, Detail: "namespace " + namespace + " is not excluded"}
	if strings.TrimSpace(exclude.String()) == "" {
		return c
	}
	l := exclude.lookup("--exclude-namespaces", namespace)
	if l.Matched {
		c.Passed = false
		c.Detail = fmt.Sprintf("namespace %s is excluded by --exclude-namespaces: the replicator writes nothing in it", namespace)
	}
	c.Checked = []Lookup{l}
	return c
}

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

func parseKeys(s string) []string {
	var keys []string
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func formatKeys(sorted []string) string { return strings.Join(sorted, ",") }

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

// Action is what to do with one replica.
type Action string

const (
	Create Action = "create"
	Update Action = "update"
	// Recreate replaces a replica whose type (or other immutable part)
	// differs from the source's.
	Recreate Action = "recreate"
	Delete   Action = "delete"
	// Adopt takes over a copy the replicator being replaced made: one
	// update that marks it as ours.
	Adopt Action = "adopt"
)

// Change is one write of a push plan. Object is the desired replica (for
// Delete, the one to delete); Current is the replica as it is, if any.
type Change struct {
	Action  Action
	Object  Object
	Current *Object
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
	var sets []*namespaceSet
	var problems []Event
	ours := &namespaceSet{}
	list, to := source.Annotations[a.ReplicateTo]
	if to {
		patterns, errs := opts.Parse.parse(list)
		problems = append(problems, listProblems(a.ReplicateTo, errs)...)
		ours.listKey, ours.patterns = a.ReplicateTo, patterns
	}
	if s := strings.TrimSpace(source.Annotations[a.ReplicateToMatching]); s != "" {
		sel, err := ParseSelector(s)
		if err != nil {
			problems = append(problems, *warning(ReasonInvalidAnnotation, "%s: invalid label selector: %v", a.ReplicateToMatching, err))
		}
		ours.selectors = append(ours.selectors, namedSelector{a.ReplicateToMatching, s, sel})
	}
	sets = append(sets, ours)
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

// PlanPush decides which replicas of a source to create, update and delete.
func PlanPush(in PushInput) PushPlan {
	a := in.Options.Annotations
	marker := in.SourceRef.Namespace + "/" + in.SourceRef.Name
	var plan PushPlan

	// The policy first: what a source that may not push asks for is
	// never parsed nor matched against the namespaces.
	if in.Options.Explain {
		plan.Why = map[string][]Lookup{}
	}
	targets := map[string]bool{}
	if in.Source != nil {
		check := in.Options.Policy.SourceCheck(in.Source.Namespace, in.Options.GrantsRights)
		plan.Policy = &check
	}
	if denial, refused := refusePush(plan.Policy, in.Source, a); refused {
		plan.Problems = []Event{*denial}
		plan.SourceRefused = true
	} else {
		s := selectTargets(in.Source, in.Namespaces, in.Options, plan.Why)
		targets = s.targets
		refused, denials := applyPushPolicy(in.Options.Policy, in.Source, in.Options.GrantsRights, targets, plan.Why)
		plan.Problems = append(s.problems, denials...)
		plan.Refused = refused
		plan.Excluded = s.excluded
		slices.Sort(plan.Excluded)
		plan.Read = s.read
	}
	plan.Targets = slices.Sorted(maps.Keys(targets))
	terminating := map[string]bool{}
	for _, ns := range in.Namespaces {
		if ns.Terminating {
			terminating[ns.Name] = true
		}
	}

	// Every replica is the same but for its namespace: the maps of one
	// are shared by all (nothing changes them; the writes build requests
	// from copies), so that planning a fan-out to ten thousand namespaces
	// does not hold ten thousand copies of them.
	var template Object
	if len(targets) > 0 {
		template = replica(in.Source, "", marker, in.Options)
	}
	for _, ns := range slices.Sorted(maps.Keys(targets)) {
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

	for _, r := range in.Owned {
		// A replica has its source's name: the marker on an object of
		// another name (written by hand) makes it no replica of ours.
		if targets[r.Namespace] || terminating[r.Namespace] || r.Annotations[a.ReplicatedFrom] != marker || r.Name != in.SourceRef.Name {
			continue
		}
		plan.Changes = append(plan.Changes, Change{Action: Delete, Object: *r, Current: r})
	}
	return plan
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
