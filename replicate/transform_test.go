package replicate

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCacheTransform(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	tests := map[string]struct {
		annotations map[string]string
		allowAll    bool
		keepsData   bool
	}{
		"an unrelated Secret is cached without data":        {annotations: map[string]string{"other.example/x": "y"}},
		"a Secret with no annotations at all, likewise":     {},
		"a pull target keeps its data":                      {annotations: map[string]string{ann.ReplicateFrom: "a/b"}, keepsData: true},
		"a source allowing replication keeps its data":      {annotations: map[string]string{ann.ReplicationAllowed: "true"}, keepsData: true},
		"a push source keeps its data":                      {annotations: map[string]string{ann.ReplicateToMatching: "x=y"}, keepsData: true},
		"a push replica keeps its data":                     {annotations: map[string]string{ann.ReplicatedFrom: "a/b"}, keepsData: true},
		"with allow-all any Secret may be a source":         {allowAll: true, keepsData: true},
		"another prefix's annotations do not count as ours": {annotations: map[string]string{"other.prefix/replicate-from": "a/b"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: tt.annotations, ManagedFields: managed},
				Data:       map[string][]byte{"k": []byte("v")},
			}
			out, err := CacheTransform(ann, tt.allowAll)(s)
			require.NoError(t, err)
			got := out.(*corev1.Secret)
			assert.Nil(t, got.ManagedFields)
			assert.Equal(t, tt.keepsData, got.Data != nil)
		})
	}
	ns, err := CacheTransform(ann, false)(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: managed, Labels: map[string]string{"a": "b"}}})
	require.NoError(t, err)
	assert.Nil(t, ns.(*corev1.Namespace).ManagedFields)
	assert.Equal(t, "b", ns.(*corev1.Namespace).Labels["a"], "namespaces keep their labels")
}
