package replicate

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func meta(namespace, name string, annotations map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations, ResourceVersion: "1"}
}

var (
	podReader = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}
	teamA     = []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "team-a"}}
	viewRef   = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}
	editRef   = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"}
	pullCreds = []corev1.LocalObjectReference{{Name: "registry"}}
)

// builder is what the round-trip test needs of a typedKind.
type builder interface{ buildAny(desired *Object) any }

func (k *typedKind[T]) buildAny(desired *Object) any {
	var zero T
	return k.build(zero, desired)
}

func TestKindsRoundTripTheirReplicatedFields(t *testing.T) {
	tests := map[string]struct {
		kind Kind
		obj  runtime.Object
		same func(t *testing.T, built any)
	}{
		"a ConfigMap keeps data and binaryData apart": {
			kind: ConfigMaps(),
			obj:  &corev1.ConfigMap{Data: map[string]string{"a": "1"}, BinaryData: map[string][]byte{"b": {0, 1}}},
			same: func(t *testing.T, built any) {
				cm := built.(*corev1.ConfigMap)
				assert.Equal(t, map[string]string{"a": "1"}, cm.Data)
				assert.Equal(t, map[string][]byte{"b": {0, 1}}, cm.BinaryData)
			},
		},
		"a Role keeps its rules": {
			kind: Roles(),
			obj:  &rbacv1.Role{Rules: podReader},
			same: func(t *testing.T, built any) { assert.Equal(t, podReader, built.(*rbacv1.Role).Rules) },
		},
		"a RoleBinding keeps subjects and roleRef": {
			kind: RoleBindings(),
			obj:  &rbacv1.RoleBinding{Subjects: teamA, RoleRef: viewRef},
			same: func(t *testing.T, built any) {
				assert.Equal(t, teamA, built.(*rbacv1.RoleBinding).Subjects)
				assert.Equal(t, viewRef, built.(*rbacv1.RoleBinding).RoleRef)
			},
		},
		"a ServiceAccount keeps its imagePullSecrets": {
			kind: ServiceAccounts(),
			obj:  &corev1.ServiceAccount{ImagePullSecrets: pullCreds},
			same: func(t *testing.T, built any) {
				assert.Equal(t, pullCreds, built.(*corev1.ServiceAccount).ImagePullSecrets)
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			view := tt.kind.View(tt.obj)
			require.NotNil(t, view)
			tt.same(t, tt.kind.(builder).buildAny(view))
			assert.Nil(t, tt.kind.View(&corev1.Namespace{}), "another type is not this kind")
		})
	}
}

func TestEmptyAndMissingListsAreTheSame(t *testing.T) {
	empty := Roles().View(&rbacv1.Role{Rules: []rbacv1.PolicyRule{}})
	missing := Roles().View(&rbacv1.Role{})
	assert.True(t, empty.Data.Equal(missing.Data), "the API server does not tell [] from null")
}

func TestRoleBindingPullNeedsTheSameRoleRef(t *testing.T) {
	source := RoleBindings().View(&rbacv1.RoleBinding{ObjectMeta: meta("team", "readers", allowed("app")), RoleRef: viewRef, Subjects: teamA})
	target := RoleBindings().View(&rbacv1.RoleBinding{ObjectMeta: meta("app", "readers", replicateFrom("team/readers")), RoleRef: editRef})
	d := PlanPull(PullInput{Target: *target, Source: source, Ref: Ref{Namespace: "team", Name: "readers"}, Gate: Gate{Annotations: ann}, Rules: RoleBindings().Rules(), Now: now})
	assert.Nil(t, d.Write, "a roleRef cannot change in place")
	require.NotNil(t, d.Event)
	assert.Equal(t, ReasonTypeMismatch, d.Event.Reason)
	assert.Contains(t, d.Event.Message, "ClusterRole/edit")
	assert.Contains(t, d.Event.Message, "ClusterRole/view")
}

func TestControllerPerKind(t *testing.T) {
	ctx := context.Background()
	allow := allowed("app")
	from := replicateFrom("team/src")
	push := map[string]string{ann.ReplicateTo: "push"}
	tests := map[string]struct {
		kind    Kind
		objects []runtime.Object
		check   func(t *testing.T, h *harness)
	}{
		"a ConfigMap placeholder is filled with data and binaryData": {
			kind: ConfigMaps(),
			objects: []runtime.Object{
				&corev1.ConfigMap{ObjectMeta: meta("team", "src", allow), Data: map[string]string{"a": "1"}, BinaryData: map[string][]byte{"b": {9}}},
				&corev1.ConfigMap{ObjectMeta: meta("app", "src", from), Data: map[string]string{"own": "x"}},
			},
			check: func(t *testing.T, h *harness) {
				got, err := h.client.CoreV1().ConfigMaps("app").Get(ctx, "src", metav1.GetOptions{})
				require.NoError(t, err)
				assert.Equal(t, map[string]string{"a": "1", "own": "x"}, got.Data)
				assert.Equal(t, map[string][]byte{"b": {9}}, got.BinaryData)
				assert.Equal(t, "a,b", got.Annotations[ann.ReplicatedKeys])
			},
		},
		"a ConfigMap without the allow annotation is not pulled": {
			kind: ConfigMaps(),
			objects: []runtime.Object{
				&corev1.ConfigMap{ObjectMeta: meta("team", "src", nil), Data: map[string]string{"a": "1"}},
				&corev1.ConfigMap{ObjectMeta: meta("app", "src", from)},
			},
			check: func(t *testing.T, h *harness) {
				assert.Empty(t, writes(h.client))
				assert.Contains(t, firstEvent(t, h), ReasonDenied)
			},
		},
		"a Role is pushed with its rules": {
			kind:    Roles(),
			objects: []runtime.Object{&rbacv1.Role{ObjectMeta: meta("team", "src", push), Rules: podReader}},
			check: func(t *testing.T, h *harness) {
				got, err := h.client.RbacV1().Roles("push").Get(ctx, "src", metav1.GetOptions{})
				require.NoError(t, err)
				assert.Equal(t, podReader, got.Rules)
				assert.Equal(t, "team/src", got.Annotations[ann.ReplicatedFrom])
			},
		},
		"a Role placeholder is filled": {
			kind: Roles(),
			objects: []runtime.Object{
				&rbacv1.Role{ObjectMeta: meta("team", "src", allow), Rules: podReader},
				&rbacv1.Role{ObjectMeta: meta("app", "src", from)},
			},
			check: func(t *testing.T, h *harness) {
				got, err := h.client.RbacV1().Roles("app").Get(ctx, "src", metav1.GetOptions{})
				require.NoError(t, err)
				assert.Equal(t, podReader, got.Rules)
			},
		},
		"a RoleBinding replica with another roleRef is deleted and recreated": {
			kind: RoleBindings(),
			objects: []runtime.Object{
				&rbacv1.RoleBinding{ObjectMeta: meta("team", "src", push), RoleRef: viewRef, Subjects: teamA},
				&rbacv1.RoleBinding{ObjectMeta: meta("push", "src", map[string]string{ann.ReplicatedFrom: "team/src"}), RoleRef: editRef, Subjects: teamA},
			},
			check: func(t *testing.T, h *harness) {
				verbs := map[string]int{}
				for _, w := range writes(h.client) {
					verbs[w.GetVerb()]++
				}
				// A create more is possible: the informer may show the
				// deletion before the new object, and that create then
				// fails with AlreadyExists and is retried quietly.
				assert.Equal(t, 1, verbs["delete"])
				assert.Zero(t, verbs["update"], "a roleRef is never updated in place")
				got, err := h.client.RbacV1().RoleBindings("push").Get(ctx, "src", metav1.GetOptions{})
				require.NoError(t, err)
				assert.Equal(t, viewRef, got.RoleRef)
				assert.Equal(t, teamA, got.Subjects)
			},
		},
		"a ServiceAccount placeholder gets the imagePullSecrets and keeps its own secrets list": {
			kind: ServiceAccounts(),
			objects: []runtime.Object{
				&corev1.ServiceAccount{ObjectMeta: meta("team", "src", allow), ImagePullSecrets: pullCreds},
				&corev1.ServiceAccount{ObjectMeta: meta("app", "src", from), Secrets: []corev1.ObjectReference{{Name: "token"}}},
			},
			check: func(t *testing.T, h *harness) {
				got, err := h.client.CoreV1().ServiceAccounts("app").Get(ctx, "src", metav1.GetOptions{})
				require.NoError(t, err)
				assert.Equal(t, pullCreds, got.ImagePullSecrets)
				assert.Equal(t, []corev1.ObjectReference{{Name: "token"}}, got.Secrets)
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			objs := append([]runtime.Object{namespaceObj("team", nil), namespaceObj("app", nil), namespaceObj("push", nil)}, tt.objects...)
			h := newHarness(t, harnessOptions{kind: tt.kind}, objs...)
			h.drain(t)
			tt.check(t, h)
			before := len(writes(h.client))
			for _, key := range h.ctrl.objects.GetStore().ListKeys() {
				h.ctrl.queue.Add(key)
			}
			h.drain(t)
			assert.Len(t, writes(h.client), before, "settled: a second pass writes nothing")
		})
	}
}

func TestKindsRegistryCarriesWhatEachKindDiffersIn(t *testing.T) {
	type entry struct {
		name, plural, short, flag string
		dialects                  Dialects
		fromOtherClusters         bool
	}
	both := NewDialects(DialectReflector, DialectKubed)
	want := []entry{
		{"Secret", "Secrets", "", "replicate-secrets", both, true},
		{"ConfigMap", "ConfigMaps", "cm", "replicate-configmaps", both, false},
		{"Role", "Roles", "", "replicate-roles", Dialects{}, false},
		{"RoleBinding", "RoleBindings", "", "replicate-role-bindings", Dialects{}, false},
		{"ServiceAccount", "ServiceAccounts", "sa", "replicate-service-accounts", Dialects{}, false},
	}
	var got []entry
	for _, k := range Kinds() {
		got = append(got, entry{k.Name(), k.Plural(), k.ShortName(), k.Flag(), k.Dialects(), k.FromOtherClusters()})
		obj := k.newObject()
		assert.True(t, k.owns(obj), "%s: an empty object is of its kind", k.Name())
		assert.NotNil(t, k.View(obj), k.Name())
		assert.Equal(t, k.FromOtherClusters(), k.remoteListWatch(fake.NewClientset(), "certs") != nil, k.Name())
		for _, other := range Kinds() {
			assert.Equal(t, other.Name() == k.Name(), other.owns(obj), "%s owns a %s", other.Name(), k.Name())
		}
	}
	assert.Equal(t, want, got, "in the order users see them")
	assert.NotSame(t, Kinds()[0], Kinds()[0], "a fresh registry each time: nothing shared to change")
}
