package replicate

import "strings"

// Switching from another replicator must lose nothing: the copies it made
// are recognised by its bookkeeping and taken over (SPEC "Switching from
// another replicator"). Anything without that bookkeeping stays foreign.

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
