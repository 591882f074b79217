package replicate

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// CacheTransform returns the informer transform that keeps the cache small,
// so that memory grows with the objects the replicator acts on and only a
// little with the rest of the cluster:
//   - managedFields are dropped, but for the other writers of a pull target
//     or push replica (keptWriters);
//   - an object of a kind whose content can be large (its registry entry
//     says how the cache holds it: cachedContent) that carries none of this
//     replicator's annotations is cached without its data and without
//     kubectl's last-applied-configuration (a copy of the data when it was
//     applied with kubectl): Helm release Secrets, dashboards and the like
//     are large, never read and never written by the replicator. An object
//     that gains an annotation arrives whole with that update;
//   - a pull target or push replica holds what the replicator wrote into it
//     as digests (see digestMark);
//   - a namespace keeps its name, labels and phase;
//   - an object with none of the annotations read keeps only its name,
//     namespace and version (unless another tool's dialect is read);
//   - equal label, annotation and digest maps are held once (see sharedMaps).
//
// With allowAll every object may be a pull source, so data is kept.
//
// The transform never writes into a map the object holds: it replaces
// maps instead. client-go passes an object through it twice when it streams
// an informer's initial state (into a temporary store, then into the
// queue), and by the second time the object's maps may be held by other
// cached objects too (see sharedMaps).
func CacheTransform(a Annotations, allowAll bool) cache.TransformFunc {
	shared := newSharedMaps()
	kinds := Kinds()
	return func(obj any) (any, error) {
		kind := kindOf(kinds, obj)
		defer shareMaps(shared, obj, kind)
		if ns, ok := obj.(*corev1.Namespace); ok {
			cacheNamespace(ns, allowAll)
			return obj, nil
		}
		m, ok := obj.(metav1.Object)
		if !ok {
			return obj, nil
		}
		cacheMetadata(m, a, allowAll)
		if boundMetadata(m, a) {
			if kind != nil {
				kind.dropContent(obj)
			}
			return obj, nil
		}
		if !allowAll && kind != nil {
			cacheContent(kind, m, a)
		}
		return obj, nil
	}
}

// kindOf is the kind of obj among kinds, nil if none (a namespace).
func kindOf(kinds []Kind, obj any) Kind {
	for _, k := range kinds {
		if k.owns(obj) {
			return k
		}
	}
	return nil
}

// cacheMetadata drops the metadata of an object that the replicator never
// reads, and shares the strings its name and namespace repeat.
func cacheMetadata(m metav1.Object, a Annotations, allowAll bool) {
	// Who wrote which field: the bulk of many small objects. Of an object
	// the replicator writes, who else wrote it is kept (keptWriters), for
	// the Event that names a fight.
	m.SetManagedFields(keptWriters(m, a))
	if !allowAll && a.Dialects.Empty() && !a.Relevant(m.GetAnnotations()) && !adoptableCopy(m, a) {
		// Without another tool's dialect, an object with none of our
		// annotations that is no copy another tool made is only ever
		// looked up by name (is a push target's name taken?): its
		// metadata beyond that is not kept.
		m.SetUID("")
		m.SetLabels(nil)
		m.SetAnnotations(nil)
		m.SetOwnerReferences(nil)
		m.SetFinalizers(nil)
	}
	// The same names in every namespace: default, kube-root-ca.crt, the
	// name of a pushed Secret.
	m.SetNamespace(intern(m.GetNamespace()))
	m.SetName(intern(m.GetName()))
}

// cacheContent holds the content of an object of kind as the replicator
// reads it: not at all for an object that does not take part, as digests
// for what it wrote into a pull target or push replica that is no source.
func cacheContent(kind Kind, m metav1.Object, a Annotations) {
	kind.internContent(m)
	switch ann := m.GetAnnotations(); {
	case !a.Relevant(ann):
		if kind.dropContent(m) {
			// kubectl's last-applied-configuration holds a copy of
			// the content.
			m.SetAnnotations(without(ann, corev1.LastAppliedConfigAnnotation))
		}
	case !a.mayBeSource(ann):
		kind.digestContent(m, parseKeys(ann[a.ReplicatedKeys]))
	}
}

// cacheNamespace keeps what the planner reads of a namespace: its name,
// labels and whether it is terminating (all of it with allowAll, but its
// managedFields and UID).
func cacheNamespace(o *corev1.Namespace, allowAll bool) {
	o.ManagedFields = nil
	o.UID = ""
	o.Namespace, o.Name = intern(o.Namespace), intern(o.Name)
	if allowAll {
		return
	}
	// The rest (annotations can hold a copy of the whole object) is not
	// kept.
	o.Annotations = nil
	// The API server sets this label to the name on every namespace
	// (since 1.21): views give it back (see Namespace.labels), the cache
	// need not hold the name twice.
	if o.Labels[corev1.LabelMetadataName] == o.Name {
		o.Labels = without(o.Labels, corev1.LabelMetadataName)
	}
	o.Spec = corev1.NamespaceSpec{}
	o.Status = corev1.NamespaceStatus{Phase: o.Status.Phase}
}

// refusedMark is the annotation an object past MaxMetadataBytes is cached
// with, in place of its labels and annotations: it says why. '#' is not
// allowed in annotation keys, so no object can carry it, and nothing with
// it is ever written (the cut object is no source and no target: a push
// finds it foreign).
const refusedMark = "replicator#refused"

// boundMetadata keeps what the cache holds of an object the replicator acts
// on within MaxMetadataBytes, whatever its owner wrote. An object that is only
// a source (never written: not a pull target, no replica, no copy another
// tool made) keeps only the annotations the replicator reads; kubectl's
// last-applied-configuration and the like go. An object that is written
// keeps them all, since a write carries them. If what is left is still past
// the limit, the object is cut to its name with refusedMark, and reports
// true; the controller raises a Warning naming the limit.
func boundMetadata(m metav1.Object, a Annotations) bool {
	ann := m.GetAnnotations()
	if !a.Relevant(ann) && !adoptableCopy(m, a) {
		return false
	}
	_, _, pull := a.pullReference(ann)
	_, marker := ann[a.ReplicatedFrom]
	if a.mayBeSource(ann) && !pull && !marker && !adoptableCopy(m, a) {
		kept := make(map[string]string, len(ann))
		for k, v := range ann {
			if a.reads(k) {
				kept[k] = v
			}
		}
		if len(kept) < len(ann) {
			ann = kept
			m.SetAnnotations(kept)
		}
	}
	size := 0
	for _, meta := range []map[string]string{ann, m.GetLabels()} {
		for k, v := range meta {
			size += len(k) + len(v)
		}
	}
	if size <= MaxMetadataBytes {
		return false
	}
	why := fmt.Sprintf("its labels and annotations take %d bytes, more than the %d the replicator accepts on an object it acts on (MaxMetadataBytes): it is neither read nor written", size, MaxMetadataBytes)
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		if err := a.pastItsLimit(k, ann[k]); err != nil {
			why += fmt.Sprintf("; %s: %v", k, err)
		}
	}
	m.SetAnnotations(map[string]string{refusedMark: why})
	m.SetManagedFields(nil)
	m.SetLabels(nil)
	m.SetOwnerReferences(nil)
	m.SetFinalizers(nil)
	return true
}

// without returns m without key: m itself if it has no such key, else a
// copy.
func without(m map[string]string, key string) map[string]string {
	if _, ok := m[key]; !ok {
		return m
	}
	c := maps.Clone(m)
	delete(c, key)
	return c
}

// digested returns data with the keys the replicator wrote (keys) held as
// digests under digestKey: data itself when it holds none of them in full
// (already digested), else a new map.
func digested[V string | []byte](data map[string]V, keys []string, sum func(V) V) map[string]V {
	if !slices.ContainsFunc(keys, func(k string) bool { _, ok := data[k]; return ok }) {
		return data
	}
	c := make(map[string]V, len(data))
	for k, v := range data {
		if slices.Contains(keys, k) {
			c[digestKey(k)] = sum(v)
			continue
		}
		c[k] = v
	}
	return c
}

// adoptableCopy reports whether m may be a copy the tool being replaced made
// (see adoptable): its annotations and labels are read when a source
// pushes to its namespace.
func adoptableCopy(m metav1.Object, a Annotations) bool {
	ann := m.GetAnnotations()
	_, version := ann[a.ReplicatedFromVersion]
	_, at := ann[a.ReplicatedAt]
	_, reflects := ann[reflectorReflects]
	_, kubed := m.GetLabels()[kubedOriginName]
	return version || at || reflects || kubed
}

// intern returns the shared copy of s. Names, namespaces, annotation and
// label keys and values repeat across objects (the same source reference,
// keys and stamps on every target of a fan-out, the same description on
// every kube-root-ca.crt). The unique package forgets a string once no
// handle to it is left, at a garbage collection, so the objects decoded
// between two collections share a copy: a fan-out keeps a copy per
// collection, not one per object.
func intern(s string) string { return unique.Make(s).Value() }

// A pull target or push replica that is no source is cached with the keys
// the replicator wrote into it (replicated-keys) held as SHA-256 digests:
// it is compared with its source, never read, and the source's content would
// otherwise be held once more for every namespace. The digest sits under a
// key no API object can have ('#' is not allowed in keys), and views turn it
// back into a Value marked Digest. Keys the target holds of its own keep
// their content: a write carries them over.
const digestMark = "#"

func digestKey(k string) string { return unique.Make(digestMark + k).Value() }

func digest(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// mayBeSource reports whether annotations let an object be read as a source
// (pulled from, here or from another cluster, or pushed): its content is
// then kept whole.
func (a Annotations) mayBeSource(annotations map[string]string) bool {
	for _, k := range []string{a.ReplicationAllowed, a.ReplicationAllowedNS, a.ReplicationAllowedClusters} {
		if _, ok := annotations[k]; ok {
			return true
		}
	}
	return a.IsPushSource(annotations) || a.reflectorSource(annotations)
}

// sharedMaps holds one copy of each small map the cache keeps on many objects:
// the annotations every target of a fan-out carries (the same source, keys,
// version and, within a second, time), the labels copied from a push source,
// the digests of what was written (the same for every target of a source),
// the labels of namespaces made alike. Ten thousand targets then hold a few
// dozen maps instead of three each. Shared maps are never written to: nothing
// writes to cached objects (writes are built from copies), and the transform
// replaces maps instead of writing into them.
//
// The table forgets everything when it is full: maps shared until then stay
// shared, later ones start a new table. Maps whose content is long (kubectl's
// last-applied-configuration, a placeholder's own keys) are not shared: they
// are seldom equal, and the table would keep them alive.
type sharedMaps struct {
	mu sync.Mutex
	// The maps by a hash of their content (mapKey).
	strings map[uint64]map[string]string
	bytes   map[uint64]map[string][]byte
	seed    maphash.Seed
	key     []byte
}

const (
	// sharedMapsMax bounds the maps the table keeps alive on its own.
	sharedMapsMax = 1024
	// sharedMapMaxKey is the longest content (keys and values) shared.
	sharedMapMaxKey = 1024
)

func newSharedMaps() *sharedMaps {
	return &sharedMaps{strings: map[uint64]map[string]string{}, bytes: map[uint64]map[string][]byte{}, seed: maphash.MakeSeed()}
}

// shareMaps replaces the maps of a transformed object with shared copies:
// its labels and annotations, and its content as its kind holds it (kind
// may be nil).
func shareMaps(s *sharedMaps, obj any, kind Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := obj.(metav1.Object); ok {
		m.SetLabels(shareMap(s, s.strings, m.GetLabels(), internedCopy))
		m.SetAnnotations(shareMap(s, s.strings, m.GetAnnotations(), internedCopy))
	}
	if kind != nil {
		kind.shareContent(s, obj)
	}
}

// shareMap returns the table's copy of m, adding keep(m) if it has none; a
// map too long to share is kept as keep(m). keep must return m or a new map:
// m is never written to. Called with s.mu held.
func shareMap[V string | []byte](s *sharedMaps, table map[uint64]map[string]V, m map[string]V, keep func(map[string]V) map[string]V) map[string]V {
	if len(m) == 0 {
		return m
	}
	s.key = mapKey(s.key[:0], m)
	if len(s.key) > sharedMapMaxKey {
		return keep(m)
	}
	h := maphash.Bytes(s.seed, s.key)
	if c, ok := table[h]; ok {
		if equalMaps(c, m) {
			return c
		}
		return keep(m) // another content with the same hash: not shared
	}
	if len(table) >= sharedMapsMax {
		clear(table)
	}
	c := keep(m)
	table[h] = c
	return c
}

func equalMaps[V string | []byte](a, b map[string]V) bool {
	return maps.EqualFunc(a, b, func(x, y V) bool { return string(x) == string(y) })
}

// internedCopy is a copy of m whose keys and values are shared strings
// (intern).
func internedCopy(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[intern(k)] = intern(v)
	}
	return c
}

func asIs[V any](m map[string]V) map[string]V { return m }

// mapKey appends m's content to b in an order-independent, unambiguous form
// (each key and value prefixed by its length, keys sorted). It stops once the
// content is too long to share.
func mapKey[V string | []byte](b []byte, m map[string]V) []byte {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if len(b) > sharedMapMaxKey {
			break
		}
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(m[k])))
		b = append(b, m[k]...)
	}
	return b
}
