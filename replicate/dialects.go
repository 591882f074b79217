package replicate

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// What this replicator knows of the tools it replaces, in one place.
// Switching must lose nothing: the copies they made are recognised by their
// bookkeeping and taken over (SPEC "Switching from another replicator"), and
// kubed's annotation is read as one more way to choose push targets (SPEC
// "Dialects"). Anything without that bookkeeping stays foreign.

// KubedSyncAnnotation is kubed's push annotation: on a Secret or ConfigMap,
// push into every namespace whose labels match its value as a label selector
// ("" or "true": every namespace).
const KubedSyncAnnotation = "kubed.appscode.com/sync"

// The bookkeeping of the tools whose copies are adopted, besides
// kubernetes-replicator's (which shares our annotation prefix).
const (
	reflectorReflects     = "reflector.v1.k8s.emberstack.com/reflects"
	reflectorAutoReflects = "reflector.v1.k8s.emberstack.com/auto-reflects"
	kubedOriginName       = "kubed.appscode.com/origin.name"
	kubedOriginNamespace  = "kubed.appscode.com/origin.namespace"
	kubedOrigin           = "kubed.appscode.com/origin"
)

// adoptable reports whether current, an object with the source's name in one
// of its target namespaces that does not carry this source's marker, is a
// copy of this source made by the tool being replaced:
//
//   - kubernetes-replicator: replicated-from-version or replicated-at, and
//     neither a replicated-from marker (of any source) nor replicate-from (a
//     pull target);
//   - reflector: reflects naming this source and auto-reflects "True";
//   - kubed: the origin.name and origin.namespace labels naming this source.
func adoptable(current *Object, source Ref, a Annotations) bool {
	ann := current.Annotations
	_, version := ann[a.ReplicatedFromVersion]
	_, at := ann[a.ReplicatedAt]
	_, marker := ann[a.ReplicatedFrom]
	_, pull := ann[a.ReplicateFrom]
	switch {
	case (version || at) && !marker && !pull:
		return true
	case ann[reflectorReflects] == source.Namespace+"/"+source.Name && strings.EqualFold(ann[reflectorAutoReflects], "true"):
		return true
	case current.Labels[kubedOriginName] == source.Name && current.Labels[kubedOriginNamespace] == source.Namespace:
		return true
	}
	return false
}

// kubedSource reports whether annotations carry kubed's push annotation
// while that dialect is read.
func (a Annotations) kubedSource(annotations map[string]string) bool {
	if a.KubedSync == "" {
		return false
	}
	_, ok := annotations[a.KubedSync]
	return ok
}

// kubedSelector is the namespace selector of kubed's sync annotation, when
// that dialect is read and the source carries it; nil otherwise. As kubed
// reads it, "" and "true" select every namespace.
func kubedSelector(source *Object, a Annotations) (labels.Selector, error) {
	if !a.kubedSource(source.Annotations) {
		return nil, nil
	}
	if v := strings.TrimSpace(source.Annotations[a.KubedSync]); v != "" && v != "true" {
		return labels.Parse(v)
	}
	return labels.Everything(), nil
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
