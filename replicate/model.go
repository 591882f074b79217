package replicate

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// This file is the planner's model: the view of an object and a namespace
// the decisions take (from what the cache shows), the namespace sets
// annotations describe, the checks a decision makes and what it read, and
// the Events and changes it comes to, and the references pull targets
// carry. The decisions themselves are pure
// functions over it (gate.go, planpull.go, planpush.go, policy.go): they
// never talk to the API server, so every rule of the contract can be tested
// with plain values.

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
// EventComponent is the source component of the replicator's Events.
const EventComponent = "replicator"

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

// Check is one condition of a decision and its outcome, as the decision
// returns it and explain shows it. Detail says what made it pass, or why it
// failed: what the Event the controller raises says.
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

// Mode is how an object takes part: as a pull target, or as a push source
// with its replicas.
type Mode string

const (
	ModePull Mode = "pull"
	ModePush Mode = "push"
)

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

// namespaceSet is a set of namespaces as annotations describe them: every
// namespace, or those whose whole name matches a pattern or whose labels
// match a selector; within, when set, narrows it to the namespaces also in
// within (reflector's auto push: allowed AND auto). It keeps the
// annotations it was read from, as written, for explain.
type namespaceSet struct {
	all bool
	// every is what says every namespace.
	every Written
	// listKey is the annotation patterns were read from, if any.
	listKey   string
	patterns  Patterns
	selectors []namedSelector
	within    *namespaceSet
}

// namedSelector is a label selector and the annotation that holds it, as
// written; an invalid one (nil) selects nothing.
type namedSelector struct {
	key, value string
	selector   labels.Selector
}

// setText is a namespace set as annotations write it: a pattern list ORed
// with a label selector, each under its key. Each dialect says which of its
// annotations are read and how (ours: the list when its annotation is
// there; reflector's: when it is not blank, and both blank mean every
// namespace); parse reads them alike.
type setText struct {
	listKey, list string
	// hasList says the list is read.
	hasList bool
	// The selector is read when it is not blank.
	selectorKey, selector string
}

// parse is the one reading of a namespace set: whole-name patterns, of
// which an invalid entry matches nothing, ORed with a label selector, which
// selects nothing when it is invalid; both reported as problems.
func (t setText) parse(parse PatternParser) (*namespaceSet, []Event) {
	var problems []Event
	set := &namespaceSet{}
	if t.hasList {
		p, errs := parse.parse(t.list)
		problems = append(problems, listProblems(t.listKey, errs)...)
		set.listKey, set.patterns = t.listKey, p
	}
	if s := strings.TrimSpace(t.selector); s != "" {
		sel, err := ParseSelector(s)
		if err != nil {
			problems = append(problems, *warning(ReasonInvalidAnnotation, "%s: invalid label selector: %v", t.selectorKey, err))
		}
		set.selectors = append(set.selectors, namedSelector{t.selectorKey, s, sel})
	}
	return set, problems
}

// contains reports whether ns is in the set.
func (s *namespaceSet) contains(ns Namespace) bool { return s.match(ns, nil) }

// match reports whether ns is in the set. When why is not nil, it appends
// to it each list and selector read, in the order they are read, and what
// each made of ns: the last one decided.
func (s *namespaceSet) match(ns Namespace, why *[]Lookup) bool {
	if s == nil {
		return false
	}
	if s.within != nil && !s.within.match(ns, why) {
		return false
	}
	if s.all {
		if why != nil {
			*why = append(*why, Lookup{Written: s.every, Name: ns.Name, Matched: true, Every: true})
		}
		return true
	}
	if s.listKey != "" {
		ok := false
		if why == nil {
			ok = s.patterns.Match(ns.Name)
		} else {
			l := s.patterns.lookup(s.listKey, ns.Name)
			*why = append(*why, l)
			ok = l.Matched
		}
		if ok {
			return true
		}
	}
	for _, sel := range s.selectors {
		ok := sel.selector != nil && sel.selector.Matches(ns.labels())
		if why != nil {
			*why = append(*why, Lookup{Written: sel.written(), Name: ns.Name, Matched: ok})
		}
		if ok {
			return true
		}
	}
	return false
}

// written is the selector as written.
func (s namedSelector) written() Written {
	w := written(s.key, s.value)
	w.Selector = true
	return w
}

// written returns the annotations the set was read from, as written.
func (s *namespaceSet) written() []Written {
	if s == nil {
		return nil
	}
	out := s.within.written()
	if s.all {
		return append(out, s.every)
	}
	if s.listKey != "" {
		out = append(out, s.patterns.written(s.listKey))
	}
	for _, sel := range s.selectors {
		out = append(out, sel.written())
	}
	return out
}

// References: replicate-from's [cluster:]namespace/name.

// Ref names an object: its namespace and name, and for cross-cluster pulls the
// name of the cluster it lives in (empty for this cluster).
type Ref struct {
	Cluster   string
	Namespace string
	Name      string
}

func (r Ref) String() string {
	if r.Cluster != "" {
		return r.Cluster + ":" + r.Namespace + "/" + r.Name
	}
	return r.Namespace + "/" + r.Name
}

// NameValidator returns the reasons a name is invalid for a kind, like the
// functions of k8s.io/apimachinery/pkg/util/validation.
type NameValidator func(name string) []string

// ParseRef parses a replicate-from value: "<name>" (in defaultNamespace),
// "<namespace>/<name>" or "<cluster>:<namespace>/<name>". Surrounding
// whitespace is ignored; anything else that is not a valid namespace, name (by
// validName) or cluster name is an error.
func ParseRef(value, defaultNamespace string, validName NameValidator) (Ref, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return Ref{}, fmt.Errorf("reference is empty")
	}
	var r Ref
	// A colon before the first slash separates a cluster name; names of some
	// kinds (Roles) may contain colons themselves.
	if colon, slash := strings.Index(v, ":"), strings.Index(v, "/"); colon >= 0 && slash > colon {
		cluster, rest := v[:colon], v[colon+1:]
		if errs := validation.IsDNS1123Label(cluster); len(errs) > 0 {
			return Ref{}, fmt.Errorf("cluster name %q is invalid: %s", cluster, strings.Join(errs, "; "))
		}
		r.Cluster, v = cluster, rest
	}
	parts := strings.Split(v, "/")
	switch len(parts) {
	case 1:
		r.Namespace, r.Name = defaultNamespace, parts[0]
	case 2:
		r.Namespace, r.Name = parts[0], parts[1]
	default:
		return Ref{}, fmt.Errorf("reference %q has more than one '/'", value)
	}
	if errs := validation.IsDNS1123Label(r.Namespace); len(errs) > 0 {
		return Ref{}, fmt.Errorf("namespace %q is invalid: %s", r.Namespace, strings.Join(errs, "; "))
	}
	if errs := validName(r.Name); len(errs) > 0 {
		return Ref{}, fmt.Errorf("name %q is invalid: %s", r.Name, strings.Join(errs, "; "))
	}
	return r, nil
}
