package replicate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultPrefix is kubernetes-replicator's annotation prefix, so that manifests
// written for it (and cert-manager's documentation) work unchanged.
const DefaultPrefix = "replicator.v1.mittwald.de"

// Annotations holds the full annotation keys for one prefix.
type Annotations struct {
	ReplicateFrom              string // pull target: "<ns>/<name>" or "<name>"
	ReplicationAllowed         string // source: "true" opens the pull gate
	ReplicationAllowedNS       string // source: pattern list of namespaces that may pull
	ReplicateTo                string // source: pattern list of namespaces to push into
	ReplicateToMatching        string // source: label selector on namespaces to push into
	StripLabels                string // source: "true" keeps source labels off push replicas
	KeepOwnerReferences        string // source: "true" copies ownerReferences onto push replicas
	ReplicatedFrom             string // push replica: marker naming its source
	ReplicatedFromVersion      string // replica: source resourceVersion of the last data change written
	ReplicatedAt               string // replica: time of the last data change written
	ReplicatedKeys             string // replica: sorted, comma-separated keys that came from the source
	PulledFrom                 string // pull target: the source it was last filled from; marks it as a pull target, never adoptable
	ReplicationAllowedClusters string // source: pattern list of clusters that may pull (cross-cluster)
	// Reflector are reflector's annotations, read when Dialects reads
	// reflector's (kubed's is KubedSyncAnnotation).
	Reflector ReflectorKeys
	// Dialects are the other tools' dialects read besides this
	// replicator's own annotations (--dialects). A controller reads only
	// those its kind speaks (Kind.Dialects).
	Dialects Dialects
}

// NewAnnotations returns the annotation keys for prefix (with or without a
// trailing slash).
func NewAnnotations(prefix string) Annotations {
	p := strings.TrimSuffix(prefix, "/") + "/"
	return Annotations{
		ReplicateFrom:              p + "replicate-from",
		ReplicationAllowed:         p + "replication-allowed",
		ReplicationAllowedNS:       p + "replication-allowed-namespaces",
		ReplicateTo:                p + "replicate-to",
		ReplicateToMatching:        p + "replicate-to-matching",
		StripLabels:                p + "strip-labels",
		KeepOwnerReferences:        p + "keep-owner-references",
		ReplicatedFrom:             p + "replicated-from",
		ReplicatedFromVersion:      p + "replicated-from-version",
		ReplicatedAt:               p + "replicated-at",
		ReplicatedKeys:             p + "replicated-keys",
		PulledFrom:                 p + "pulled-from",
		ReplicationAllowedClusters: p + "replication-allowed-clusters",
		Reflector:                  NewReflectorKeys(),
	}
}

// WithDialects returns a reading the other tools' dialects d besides its
// own annotations.
func (a Annotations) WithDialects(d Dialects) Annotations {
	a.Dialects = d
	return a
}

// forKind returns a reading only the dialects kind speaks.
func (a Annotations) forKind(kind Kind) Annotations {
	a.Dialects = a.Dialects.Only(kind.Dialects())
	return a
}

// Relevant reports whether annotations carry anything this replicator acts on
// (as a source, a pull target or a push replica).
func (a Annotations) Relevant(annotations map[string]string) bool {
	if _, ok := annotations[refusedMark]; ok {
		return true
	}
	for _, k := range []string{a.ReplicateFrom, a.ReplicationAllowed, a.ReplicateTo, a.ReplicateToMatching, a.ReplicatedFrom} {
		if _, ok := annotations[k]; ok {
			return true
		}
	}
	if _, _, pull := a.pullReference(annotations); pull {
		return true
	}
	return a.IsPushSource(annotations) || (a.Dialects != (Dialects{}) && a.reflectorSource(annotations))
}

// IsPushSource reports whether annotations ask for push replication.
// Another tool's push annotations count while its dialect is read
// (dialects.go).
func (a Annotations) IsPushSource(annotations map[string]string) bool {
	_, to := annotations[a.ReplicateTo]
	_, matching := annotations[a.ReplicateToMatching]
	return to || matching || (a.Dialects != (Dialects{}) && (a.kubedSource(annotations) || a.reflectorPushSource(annotations)))
}

// pullReference returns the reference a pull target carries and the
// annotation it is read from: replicate-from, or, in reflector's dialect,
// reflects on a mirror (reflectorReference). replicate-from wins when an
// object carries both.
func (a Annotations) pullReference(annotations map[string]string) (value, key string, ok bool) {
	if v, ok := annotations[a.ReplicateFrom]; ok {
		return v, a.ReplicateFrom, true
	}
	if a.Dialects.Reads(DialectReflector) {
		return a.reflectorReference(annotations)
	}
	return "", "", false
}

// stamps are the annotations that record the source version and time of
// the last data change written: moved only when data changes.
func (a Annotations) stamps() []string {
	s := []string{a.ReplicatedFromVersion, a.ReplicatedAt}
	if a.Dialects.Reads(DialectReflector) {
		s = append(s, a.Reflector.ReflectedVersion, a.Reflector.ReflectedAt)
	}
	return s
}

// pushesOnlyAsReflector reports whether reflector's auto push is the only
// push annotation a source carries: its copies then get type and data
// only, as reflector's do.
func (a Annotations) pushesOnlyAsReflector(annotations map[string]string) bool {
	_, to := annotations[a.ReplicateTo]
	_, matching := annotations[a.ReplicateToMatching]
	return a.reflectorPushSource(annotations) && !to && !matching && !a.kubedSource(annotations)
}

// reads reports whether key is an annotation the replicator reads on a
// source: its own, or one of the dialects' it reads.
func (a Annotations) reads(key string) bool {
	prefix := a.ReplicateFrom[:strings.LastIndex(a.ReplicateFrom, "/")+1]
	switch {
	case strings.HasPrefix(key, prefix):
		return true
	case a.Dialects.Reads(DialectReflector) && strings.HasPrefix(key, ReflectorPrefix):
		return true
	case a.Dialects.Reads(DialectKubed) && key == KubedSyncAnnotation:
		return true
	}
	return false
}

// pastItsLimit says what limit of its own the value of annotation key is
// past, if it is a pattern list or a selector the replicator reads and is
// longer than such a value may be; nil otherwise. It never compiles
// anything.
func (a Annotations) pastItsLimit(key, value string) error {
	switch {
	case key == "":
		return nil
	case slices.Contains(a.listKeys(), key):
		if len(value) <= MaxListBytes {
			return nil
		}
		_, errs := ParsePatterns(value)
		return errors.Join(errs...)
	case slices.Contains(a.selectorKeys(), key):
		return selectorLength(value)
	}
	return nil
}

// listKeys are the annotations that hold pattern lists, in the dialects
// read.
func (a Annotations) listKeys() []string {
	keys := []string{a.ReplicationAllowedNS, a.ReplicationAllowedClusters, a.ReplicateTo}
	if a.Dialects.Reads(DialectReflector) {
		keys = append(keys, a.Reflector.AllowedNamespaces, a.Reflector.AutoNamespaces)
	}
	return keys
}

// selectorKeys are the annotations that hold label selectors, in the
// dialects read.
func (a Annotations) selectorKeys() []string {
	keys := []string{a.ReplicateToMatching}
	if a.Dialects.Reads(DialectKubed) {
		keys = append(keys, KubedSyncAnnotation)
	}
	if a.Dialects.Reads(DialectReflector) {
		keys = append(keys, a.Reflector.AllowedSelector, a.Reflector.AutoSelector)
	}
	return keys
}

// Dialect is another tool's annotation dialect, which the replicator can read
// besides its own (--dialects).
type Dialect uint8

// The dialects known, in the order they are listed to users.
const (
	// DialectReflector is reflector's annotations (ReflectorPrefix).
	DialectReflector Dialect = 1 << iota
	// DialectKubed is kubed's sync annotation (KubedSyncAnnotation).
	DialectKubed
)

// KnownDialects are the dialects, in the order they are listed to users.
func KnownDialects() []Dialect { return []Dialect{DialectReflector, DialectKubed} }

// String is the dialect's name in --dialects.
func (d Dialect) String() string {
	switch d {
	case DialectReflector:
		return "reflector"
	case DialectKubed:
		return "kubed"
	}
	return fmt.Sprintf("Dialect(%d)", uint8(d))
}

// Annotations is what the dialect reads, as its help describes it.
func (d Dialect) Annotations() string {
	switch d {
	case DialectReflector:
		return ReflectorPrefix
	case DialectKubed:
		return KubedSyncAnnotation
	}
	return ""
}

// ownDialect is the name of the replicator's own dialect in --dialects:
// always read.
const ownDialect = "replicator"

// Dialects is a set of other tools' dialects read; the zero value reads
// none (the replicator's own annotations only).
type Dialects struct{ set Dialect }

// NewDialects returns the set of ds.
func NewDialects(ds ...Dialect) Dialects {
	var s Dialects
	for _, d := range ds {
		s.set |= d
	}
	return s
}

// ParseDialects reads --dialects: a comma-separated list of dialect names,
// "replicator" (always read) among them or not, blanks around names
// allowed.
func ParseDialects(list string) (Dialects, error) {
	var s Dialects
	for _, name := range strings.Split(list, ",") {
		n := strings.TrimSpace(name)
		if n == "" || n == ownDialect {
			continue
		}
		d, ok := dialectNamed(n)
		if !ok {
			names := []string{ownDialect}
			for _, d := range KnownDialects() {
				names = append(names, d.String())
			}
			return Dialects{}, fmt.Errorf("%q is none of %s", name, strings.Join(names, ", "))
		}
		s.set |= d
	}
	return s, nil
}

// dialectNamed is the dialect of that name in --dialects.
func dialectNamed(name string) (Dialect, bool) {
	for _, d := range KnownDialects() {
		if name == d.String() {
			return d, true
		}
	}
	return 0, false
}

// Reads reports whether d is in the set.
func (s Dialects) Reads(d Dialect) bool { return s.set&d != 0 }

// Empty reports whether the set reads no other tool's dialect.
func (s Dialects) Empty() bool { return s.set == 0 }

// Only returns the dialects of s that are also in spoken.
func (s Dialects) Only(spoken Dialects) Dialects { return Dialects{s.set & spoken.set} }

// List returns the dialects in the set, in the order they are listed to
// users.
func (s Dialects) List() []Dialect {
	var out []Dialect
	for _, d := range KnownDialects() {
		if s.Reads(d) {
			out = append(out, d)
		}
	}
	return out
}

// String is the set as --dialects writes it: "replicator" first.
func (s Dialects) String() string {
	names := []string{ownDialect}
	for _, d := range s.List() {
		names = append(names, d.String())
	}
	return strings.Join(names, ",")
}
