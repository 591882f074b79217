package replicate

import (
	"fmt"
	"strings"
	"time"
)

// What this replicator knows of the tools it replaces, in one place.
// Switching must lose nothing: the copies they made are recognised by their
// bookkeeping and taken over (SPEC "Switching from another replicator"), and
// their annotations are translated into the planner's one model (SPEC
// "Dialects"): a source's consent is a union of namespace sets, whatever
// dialect states it, and a pull target names its source with replicate-from
// or, in reflector's dialect, reflects. Anything without that bookkeeping
// stays foreign.

// KubedSyncAnnotation is kubed's push annotation: on a Secret or ConfigMap,
// push into every namespace whose labels match its value as a label selector
// ("" or "true": every namespace).
const KubedSyncAnnotation = "kubed.appscode.com/sync"

// The bookkeeping of the tools whose copies are adopted, besides
// kubernetes-replicator's (which shares our annotation prefix).
const (
	reflectorReflects     = ReflectorPrefix + "reflects"
	reflectorAutoReflects = ReflectorPrefix + "auto-reflects"
	kubedOriginName       = "kubed.appscode.com/origin.name"
	kubedOriginNamespace  = "kubed.appscode.com/origin.namespace"
	kubedOrigin           = "kubed.appscode.com/origin"
)

// adoptable reports whether current, an object with the source's name in one
// of its target namespaces that does not carry this source's marker, is a
// copy of this source made by the tool being replaced, proven by something
// the source's owner cannot forge (SPEC "Switching"):
//
//   - reflector: reflects naming this source and auto-reflects "True";
//   - kubed: the origin.name and origin.namespace labels naming this source;
//   - kubernetes-replicator, whose copies do not name their source: its
//     bookkeeping (replicated-from-version or replicated-at, and neither a
//     replicated-from marker of any source, nor a pull reference, nor our
//     pulled-from of a former pull target) plus a proof: the version it
//     records is the source's current resourceVersion (resource versions
//     are the cluster's, nobody chooses them), or the operator vouches for
//     its namespace (unproven).
//
// Whoever can write the target namespace can always consent by writing the
// source's marker (replicated-from) on the copy: it is then ours.
func adoptable(current, source *Object, ref Ref, a Annotations, unproven Patterns) bool {
	ann := current.Annotations
	switch {
	case ann[reflectorReflects] == ref.Namespace+"/"+ref.Name && strings.EqualFold(ann[reflectorAutoReflects], "true"):
		return true
	case current.Labels[kubedOriginName] == ref.Name && current.Labels[kubedOriginNamespace] == ref.Namespace:
		return true
	}
	version, versioned := ann[a.ReplicatedFromVersion]
	_, at := ann[a.ReplicatedAt]
	_, marker := ann[a.ReplicatedFrom]
	_, pulled := ann[a.PulledFrom]
	_, _, pull := a.pullReference(ann)
	if !(versioned || at) || marker || pulled || pull {
		return false
	}
	return (version != "" && source != nil && version == source.ResourceVersion) || unproven.Match(current.Namespace)
}

// kubedSource reports whether annotations carry kubed's push annotation
// while that dialect is read.
func (a Annotations) kubedSource(annotations map[string]string) bool {
	if !a.Dialects.Reads(DialectKubed) {
		return false
	}
	_, ok := annotations[KubedSyncAnnotation]
	return ok
}

// kubedTargets is the set of namespaces kubed's sync annotation selects,
// when that dialect is read and the source carries it; nil otherwise. As
// kubed reads it, "" and "true" select every namespace; an invalid selector
// selects nothing.
func kubedTargets(source *Object, a Annotations) (*namespaceSet, []Event) {
	if !a.kubedSource(source.Annotations) {
		return nil, nil
	}
	v := strings.TrimSpace(source.Annotations[KubedSyncAnnotation])
	if v == "" || v == "true" {
		return &namespaceSet{all: true, every: written(KubedSyncAnnotation, v)}, nil
	}
	sel, err := ParseSelector(v)
	if err != nil {
		return nil, []Event{*warning(ReasonInvalidAnnotation, "%s: invalid label selector: %v", KubedSyncAnnotation, err)}
	}
	return &namespaceSet{selectors: []namedSelector{{KubedSyncAnnotation, v, sel}}}, nil
}

// addKubedBookkeeping gives a replica of a source pushed through kubed's
// annotation the labels and annotation kubed writes, so that tools reading
// them keep working.
func addKubedBookkeeping(r *Object, source *Object) {
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	r.Labels[kubedOriginName] = source.Name
	r.Labels[kubedOriginNamespace] = source.Namespace
	r.Annotations[kubedOrigin] = fmt.Sprintf(`{"namespace":%q,"name":%q}`, source.Namespace, source.Name)
}

// ReflectorPrefix is the prefix of reflector's annotations.
const ReflectorPrefix = "reflector.v1.k8s.emberstack.com/"

// ReflectorKeys are reflector's annotation keys, read while its dialect is
// (Annotations.Dialects).
type ReflectorKeys struct {
	Allowed           string // source: "true" allows namespaces to have it
	AllowedNamespaces string // source: pattern list; with the selector empty too: every namespace
	AllowedSelector   string // source: namespace label selector, ORed with the list
	AutoEnabled       string // source: "true" pushes into the allowed namespaces the auto conditions select
	AutoNamespaces    string // source: pattern list; with the selector empty too: every namespace
	AutoSelector      string // source: namespace label selector, ORed with the list
	Reflects          string // mirror: "<namespace>/<name>" of the source; also written on copies
	AutoReflects      string // written on push copies: "True"
	ReflectedVersion  string // written: the source's resourceVersion at the last data change
	ReflectedAt       string // written: the time of the last data change
}

// NewReflectorKeys returns reflector's annotation keys.
func NewReflectorKeys() ReflectorKeys {
	p := ReflectorPrefix
	return ReflectorKeys{
		Allowed:           p + "reflection-allowed",
		AllowedNamespaces: p + "reflection-allowed-namespaces",
		AllowedSelector:   p + "reflection-allowed-namespaces-selector",
		AutoEnabled:       p + "reflection-auto-enabled",
		AutoNamespaces:    p + "reflection-auto-namespaces",
		AutoSelector:      p + "reflection-auto-namespaces-selector",
		Reflects:          reflectorReflects,
		AutoReflects:      reflectorAutoReflects,
		ReflectedVersion:  p + "reflected-version",
		ReflectedAt:       p + "reflected-at",
	}
}

// reflectorBool reads a boolean as reflector does (.NET bool.TryParse):
// "true" in any case, blanks around it allowed; anything else is false.
func reflectorBool(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// reflectorAutoCopy reports whether annotations mark a copy reflector's
// auto push made (or one of ours in its dialect): its reflects annotation
// names where it came from but does not ask for a pull.
func (a Annotations) reflectorAutoCopy(annotations map[string]string) bool {
	return reflectorBool(annotations[reflectorAutoReflects])
}

// reflectorReference is pullReference in reflector's dialect: reflects on
// a mirror, not on a copy pushed with auto-reflects "True".
func (a Annotations) reflectorReference(annotations map[string]string) (value, key string, ok bool) {
	if v, ok := annotations[a.Reflector.Reflects]; ok && !a.reflectorAutoCopy(annotations) {
		return v, a.Reflector.Reflects, true
	}
	return "", "", false
}

// reflectorSource reports whether annotations carry any of reflector's
// source annotations while its dialect is read.
func (a Annotations) reflectorSource(annotations map[string]string) bool {
	if !a.Dialects.Reads(DialectReflector) {
		return false
	}
	_, allowed := annotations[a.Reflector.Allowed]
	_, auto := annotations[a.Reflector.AutoEnabled]
	return allowed || auto
}

// reflectorPushSource reports whether annotations ask for reflector's auto
// push while its dialect is read.
func (a Annotations) reflectorPushSource(annotations map[string]string) bool {
	if !a.Dialects.Reads(DialectReflector) {
		return false
	}
	_, auto := annotations[a.Reflector.AutoEnabled]
	return auto
}

// reflectorIgnored reports whether reflector ignores a source of this type:
// Helm's release Secrets.
func reflectorIgnored(o *Object) bool { return strings.HasPrefix(o.Type, "helm.sh") }

// reflectorAllowed is the set of namespaces a source allows in reflector's
// dialect (reflection-allowed and its list and selector), nil when it
// allows none; with the problems of its annotations.
func (a Annotations) reflectorAllowed(source *Object, parse PatternParser) (*namespaceSet, []Event) {
	r := a.Reflector
	if !a.Dialects.Reads(DialectReflector) || reflectorIgnored(source) || !reflectorBool(source.Annotations[r.Allowed]) {
		return nil, nil
	}
	return reflectorSet(source.Annotations, r.AllowedNamespaces, r.AllowedSelector, parse)
}

// reflectorAuto is the set of namespaces reflector's auto push puts a source
// into: the allowed namespaces that the auto list or selector also select;
// nil when auto push is off.
func (a Annotations) reflectorAuto(source *Object, parse PatternParser) (*namespaceSet, []Event) {
	r := a.Reflector
	allowed, _ := a.reflectorAllowed(source, parse)
	if allowed == nil || !reflectorBool(source.Annotations[r.AutoEnabled]) {
		return nil, nil
	}
	auto, problems := reflectorSet(source.Annotations, r.AutoNamespaces, r.AutoSelector, parse)
	auto.within = allowed
	return auto, problems
}

// reflectorSet reads one of reflector's namespace conditions: a pattern list
// ORed with a label selector, every namespace when both are blank. Patterns
// match whole names, as ours; a list of only commas selects nothing; an
// invalid selector selects nothing.
func reflectorSet(annotations map[string]string, listKey, selectorKey string, parse PatternParser) (*namespaceSet, []Event) {
	list := strings.TrimSpace(annotations[listKey])
	selector := strings.TrimSpace(annotations[selectorKey])
	if list == "" && selector == "" {
		return &namespaceSet{all: true, every: written(listKey+", "+selectorKey, "")}, nil
	}
	return setText{listKey: listKey, list: list, hasList: list != "", selectorKey: selectorKey, selector: selector}.parse(parse)
}

// addReflectorBookkeeping gives a copy pushed through reflector's
// annotations the annotations reflector writes on its own copies, so that
// reflector (after a rollback) and tools reading them recognise it.
func addReflectorBookkeeping(r *Object, source *Object, now time.Time, k ReflectorKeys) {
	r.Annotations[k.Reflects] = source.Namespace + "/" + source.Name
	r.Annotations[k.AutoReflects] = "True"
	r.Annotations[k.ReflectedVersion] = source.ResourceVersion
	r.Annotations[k.ReflectedAt] = now.UTC().Format(time.RFC3339)
}
