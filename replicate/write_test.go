package replicate

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRequeueAfter(t *testing.T) {
	held := &requeue{after: 4 * time.Second, why: "write held back"}
	awaited := &requeue{after: time.Second, why: "push writes not seen yet"}
	failed := errors.New("update failed")
	tests := map[string]struct {
		err       error
		wantAfter time.Duration
		wantOnly  bool
	}{
		"no error asks for nothing":                      {err: nil},
		"a failure is no requeue":                        {err: failed},
		"a requeue is one":                               {err: held, wantAfter: 4 * time.Second, wantOnly: true},
		"several requeues take the shortest pause":       {err: errors.Join(held, awaited), wantAfter: time.Second, wantOnly: true},
		"a requeue beside a failure leaves it a failure": {err: errors.Join(held, failed)},
		"nested joins are looked into":                   {err: errors.Join(errors.Join(held), awaited), wantAfter: time.Second, wantOnly: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			after, only := requeueAfter(tt.err)
			assert.Equal(t, tt.wantOnly, only)
			if tt.wantOnly {
				assert.Equal(t, tt.wantAfter, after)
			}
		})
	}
}

// The cache keeps who else wrote an object the replicator writes (for the
// Event that names a fight): the latest first, without the replicator, the
// fields they own, or more than maxKeptWriters of them.
func TestKeptWriters(t *testing.T) {
	at := func(s int) *metav1.Time { t := metav1.NewTime(now.Add(time.Duration(s) * time.Second)); return &t }
	entry := func(manager string, s int) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationApply, Time: at(s), APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{}}`)}}
	}
	kept := func(manager string, s int) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationApply, Time: at(s)}
	}
	many := []metav1.ManagedFieldsEntry{entry(FieldManager, 9)}
	for i := range 8 {
		many = append(many, entry("writer-"+strconv.Itoa(i), i))
	}
	tests := map[string]struct {
		annotations map[string]string
		fields      []metav1.ManagedFieldsEntry
		want        []metav1.ManagedFieldsEntry
	}{
		"a pull target: the others, latest first": {
			annotations: map[string]string{ann.ReplicateFrom: "a/b"},
			fields:      []metav1.ManagedFieldsEntry{entry("kubectl", 1), entry(FieldManager, 3), entry("argocd", 2)},
			want:        []metav1.ManagedFieldsEntry{kept("argocd", 2), kept("kubectl", 1)},
		},
		"a push replica only the replicator wrote: nothing": {
			annotations: map[string]string{ann.ReplicatedFrom: "a/b"}, fields: []metav1.ManagedFieldsEntry{entry(FieldManager, 1)},
		},
		"a source, which is never written: nothing": {
			annotations: allowed("app"), fields: []metav1.ManagedFieldsEntry{entry("kubectl", 1)},
		},
		"many writers: the latest few": {
			annotations: map[string]string{ann.ReplicateFrom: "a/b"}, fields: many,
			want: []metav1.ManagedFieldsEntry{kept("writer-7", 7), kept("writer-6", 6), kept("writer-5", 5), kept("writer-4", 4), kept("writer-3", 3)},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s", Annotations: tt.annotations, ManagedFields: tt.fields}}
			assert.Equal(t, tt.want, keptWriters(s, ann))
		})
	}
	assert.Nil(t, keptWriters(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: map[string]string{ann.ReplicateFrom: "a/b"},
		ManagedFields: []metav1.ManagedFieldsEntry{entry("kubectl", 1)}}}, ann), "a namespace is never written")
}
