package replicate

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// CacheTransform returns the informer transform that keeps the cache small:
// managedFields are dropped from every object, and a Secret that carries none
// of this replicator's annotations is cached without its data (Helm release
// Secrets and the like are large and never needed). A Secret that gains an
// annotation arrives whole with that update. With allowAll every Secret may
// be a pull source, so data is kept.
func CacheTransform(a Annotations, allowAll bool) cache.TransformFunc {
	return func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		if s, ok := obj.(*corev1.Secret); ok && !allowAll && !a.Relevant(s.Annotations) {
			s.Data = nil
			s.StringData = nil
		}
		return obj, nil
	}
}
