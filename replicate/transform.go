package replicate

import (
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// CacheTransform returns the informer transform that keeps the cache small:
// managedFields are dropped from every object that carries none of this
// replicator's annotations and cut down to who wrote when (manager,
// operation, time: what a FightingWriter Event names) on the others; a
// Secret or ConfigMap that carries none of them is cached without its data and
// without kubectl's last-applied-configuration (which holds a copy of the data
// when the object was applied with kubectl). Helm release Secrets, dashboards
// and the like are large, never read and never written by the replicator. An
// object that gains an annotation arrives whole with that update. With
// allowAll every object may be a pull source, so data is kept.
func CacheTransform(a Annotations, allowAll bool) cache.TransformFunc {
	return func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(writers(m.GetManagedFields(), a.Relevant(m.GetAnnotations())))
		}
		if allowAll {
			return obj, nil
		}
		switch o := obj.(type) {
		case *corev1.Secret:
			if !a.Relevant(o.Annotations) {
				o.Data, o.StringData = nil, nil
				delete(o.Annotations, corev1.LastAppliedConfigAnnotation)
			}
		case *corev1.ConfigMap:
			if !a.Relevant(o.Annotations) {
				o.Data, o.BinaryData = nil, nil
				delete(o.Annotations, corev1.LastAppliedConfigAnnotation)
			}
		}
		return obj, nil
	}
}

// writers cuts managedFields down to who wrote when, or to nothing when not
// keep. The fields themselves (the bulk) are dropped.
func writers(fields []metav1.ManagedFieldsEntry, keep bool) []metav1.ManagedFieldsEntry {
	if !keep || len(fields) == 0 {
		return nil
	}
	out := make([]metav1.ManagedFieldsEntry, len(fields))
	for i, f := range fields {
		// The same few names on every object: held once.
		out[i] = metav1.ManagedFieldsEntry{
			Manager:   unique.Make(f.Manager).Value(),
			Operation: metav1.ManagedFieldsOperationType(unique.Make(string(f.Operation)).Value()),
			Time:      f.Time,
		}
	}
	return out
}
