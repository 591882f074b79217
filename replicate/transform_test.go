package replicate

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCacheTransform(t *testing.T) {
	at := metav1.Now()
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Time: &at, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{"f:k":{}}}`)}}}
	tests := map[string]struct {
		annotations map[string]string
		allowAll    bool
		dialects    bool // reflector's and kubed's read
		keepsData   bool
	}{
		"a reflector source keeps its data while that dialect is read":                     {annotations: map[string]string{rk.Allowed: "true"}, dialects: true, keepsData: true},
		"a reflector mirror keeps its data while that dialect is read":                     {annotations: map[string]string{rk.Reflects: "a/b"}, dialects: true, keepsData: true},
		"a kubed source keeps its data while that dialect is read":                         {annotations: map[string]string{KubedSyncAnnotation: ""}, dialects: true, keepsData: true},
		"reflector's and kubed's annotations mean nothing without dialect":                 {annotations: map[string]string{rk.Allowed: "true", rk.Reflects: "a/b", KubedSyncAnnotation: ""}},
		"a Secret applied with kubectl loses the copy of its data too":                     {annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"k":"dg=="}}`}},
		"an unrelated Secret is cached without data":                                       {annotations: map[string]string{"other.example/x": "y"}},
		"a Secret with no annotations at all, likewise":                                    {},
		"a pull target applied with kubectl keeps last-applied (updates must not drop it)": {annotations: map[string]string{ann.ReplicateFrom: "a/b", corev1.LastAppliedConfigAnnotation: "{}"}, keepsData: true},
		"a pull target keeps its data":                                                     {annotations: map[string]string{ann.ReplicateFrom: "a/b"}, keepsData: true},
		"a source allowing replication keeps its data":                                     {annotations: map[string]string{ann.ReplicationAllowed: "true"}, keepsData: true},
		"a push source keeps its data":                                                     {annotations: map[string]string{ann.ReplicateToMatching: "x=y"}, keepsData: true},
		"a push replica keeps its data":                                                    {annotations: map[string]string{ann.ReplicatedFrom: "a/b"}, keepsData: true},
		"with allow-all any Secret may be a source":                                        {allowAll: true, keepsData: true},
		"another prefix's annotations do not count as ours":                                {annotations: map[string]string{"other.prefix/replicate-from": "a/b"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: tt.annotations, ManagedFields: managed},
				Data:       map[string][]byte{"k": []byte("v")},
			}
			a := ann
			if tt.dialects {
				a = dialects
			}
			out, err := CacheTransform(a, tt.allowAll)(s)
			require.NoError(t, err)
			got := out.(*corev1.Secret)
			if tt.keepsData && !tt.allowAll {
				// Who wrote when, for the FightingWriter Event; not the
				// fields.
				assert.Equal(t, []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Time: &at}}, got.ManagedFields)
			} else {
				assert.Nil(t, got.ManagedFields)
			}
			assert.Equal(t, tt.keepsData, got.Data != nil)
			_, applied := got.Annotations[corev1.LastAppliedConfigAnnotation]
			assert.Equal(t, tt.keepsData && tt.annotations[corev1.LastAppliedConfigAnnotation] != "", applied)
		})
	}
	ns, err := CacheTransform(ann, false)(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: managed, Labels: map[string]string{"a": "b"}}})
	require.NoError(t, err)
	assert.Nil(t, ns.(*corev1.Namespace).ManagedFields)
	assert.Equal(t, "b", ns.(*corev1.Namespace).Labels["a"], "namespaces keep their labels")
}

func TestCacheTransformConfigMaps(t *testing.T) {
	tests := map[string]struct {
		annotations map[string]string
		allowAll    bool
		keepsData   bool
	}{
		"an unrelated ConfigMap is cached without data or binaryData": {annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}"}},
		"a ConfigMap source keeps both":                               {annotations: map[string]string{ann.ReplicationAllowed: "true"}, keepsData: true},
		"with allow-all every ConfigMap keeps both":                   {allowAll: true, keepsData: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cm := &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: tt.annotations},
				Data:       map[string]string{"k": "v"},
				BinaryData: map[string][]byte{"b": {0}},
			}
			out, err := CacheTransform(ann, tt.allowAll)(cm)
			require.NoError(t, err)
			got := out.(*corev1.ConfigMap)
			assert.Equal(t, tt.keepsData, got.Data != nil)
			assert.Equal(t, tt.keepsData, got.BinaryData != nil)
			assert.NotContains(t, got.Annotations, corev1.LastAppliedConfigAnnotation)
		})
	}
}
