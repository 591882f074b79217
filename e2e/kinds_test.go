package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

var (
	rbacGroup = "rbac.authorization.k8s.io"
	viewRole  = map[string]any{"apiGroup": rbacGroup, "kind": "ClusterRole", "name": "view"}
)

func (e *env) objects(kc kindCase) *objects {
	return &objects{e: e, kc: kc, c: dynamic.NewForConfigOrDie(cluster.Config).Resource(kc.resource)}
}

func TestEveryKindPull(t *testing.T) {
	for _, kc := range kinds {
		t.Run(kc.kind, func(t *testing.T) {
			e := newEnv(t)
			r := e.start()
			o := e.objects(kc)
			src, app, other := e.ns("src", nil), e.ns("app", nil), e.ns("other", nil)
			o.create(src, "shared", e.allow(app), nil, kc.content(1))
			o.create(app, "shared", map[string]string{e.a.ReplicateFrom: src + "/shared"}, nil, kc.content(0))
			got := o.wait(app, "shared", kc.content(1))
			assert.Equal(t, src+"/shared", got.GetAnnotations()[e.a.ReplicateFrom])

			// A namespace the source does not name gets nothing, and is told.
			o.create(other, "shared", map[string]string{e.a.ReplicateFrom: src + "/shared"}, nil, kc.content(0))
			e.waitEvent(other, "shared", "ReplicationDenied")
			// A source without the allow annotation is never copied.
			o.create(src, "private", nil, nil, kc.content(1))
			o.create(app, "private", map[string]string{e.a.ReplicateFrom: src + "/private"}, nil, kc.content(0))
			e.waitEvent(app, "private", "ReplicationDenied")
			e.caughtUp(r, kc)
			for _, denied := range [][2]string{{other, "shared"}, {app, "private"}} {
				obj, err := o.get(denied[0], denied[1])
				require.NoError(t, err)
				assert.Empty(t, o.differs(obj, kc.content(0)), "%s/%s kept its own content", denied[0], denied[1])
			}

			// Updates follow; revoking the permission takes the content away.
			o.modify(src, "shared", func(u *unstructured.Unstructured) {
				for k, v := range kc.content(2) {
					u.Object[k] = v
				}
			})
			o.wait(app, "shared", kc.content(2))
			o.modify(src, "shared", func(u *unstructured.Unstructured) {
				a := u.GetAnnotations()
				delete(a, e.a.ReplicationAllowed)
				u.SetAnnotations(a)
			})
			o.wait(app, "shared", kc.content(0))
		})
	}
}

func TestEveryKindPush(t *testing.T) {
	for _, kc := range kinds {
		t.Run(kc.kind, func(t *testing.T) {
			e := newEnv(t)
			r := e.start()
			o := e.objects(kc)
			src := e.ns("src", nil)
			named, labelled, foreign := e.ns("named", nil), e.ns("labelled", map[string]string{"team": "yes"}), e.ns("foreign", nil)
			o.create(foreign, "shared", nil, nil, kc.content(3))
			o.create(src, "shared", map[string]string{
				e.a.ReplicateTo:         named + "," + foreign,
				e.a.ReplicateToMatching: "team=yes",
			}, map[string]string{"app": "web"}, kc.content(1))
			for _, ns := range []string{named, labelled} {
				r := o.wait(ns, "shared", kc.content(1))
				assert.Equal(t, src+"/shared", r.GetAnnotations()[e.a.ReplicatedFrom])
				assert.Equal(t, map[string]string{"app": "web"}, r.GetLabels())
			}
			e.waitEvent(src, "shared", "TargetConflict")

			// Another client's edit of a replica is repaired.
			o.modify(named, "shared", func(u *unstructured.Unstructured) {
				for k, v := range kc.content(4) {
					u.Object[k] = v
				}
			})
			o.wait(named, "shared", kc.content(1))

			// Updates reach every replica.
			o.modify(src, "shared", func(u *unstructured.Unstructured) {
				for k, v := range kc.content(2) {
					u.Object[k] = v
				}
			})
			o.wait(named, "shared", kc.content(2))
			o.wait(labelled, "shared", kc.content(2))

			// Stopping the push removes the replicas, and only them.
			o.modify(src, "shared", func(u *unstructured.Unstructured) {
				a := u.GetAnnotations()
				delete(a, e.a.ReplicateTo)
				delete(a, e.a.ReplicateToMatching)
				u.SetAnnotations(a)
			})
			o.waitGone(named, "shared")
			o.waitGone(labelled, "shared")
			e.caughtUp(r, kc)
			f, err := o.get(foreign, "shared")
			require.NoError(t, err)
			assert.Empty(t, o.differs(f, kc.content(3)), "the foreign object is untouched")
			_, err = o.get(src, "shared")
			assert.NoError(t, err, "the source stays")
		})
	}
}

func TestRoleBindingPlaceholderWithAnotherRoleRefIsRefused(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	o := e.objects(roleBindingKind)
	src, app := e.ns("src", nil), e.ns("app", nil)
	o.create(src, "readers", e.allow(app), nil, o.kc.content(1))
	o.create(app, "readers", map[string]string{e.a.ReplicateFrom: src + "/readers"}, nil,
		map[string]any{"roleRef": map[string]any{"apiGroup": rbacGroup, "kind": "ClusterRole", "name": "edit"}})
	msg := e.waitEvent(app, "readers", "TypeMismatch")
	assert.Contains(t, msg, "ClusterRole/view")
	e.caughtUp(r, roleBindingKind)
	obj, err := o.get(app, "readers")
	require.NoError(t, err)
	subjects, _, _ := unstructured.NestedSlice(obj.Object, "subjects")
	assert.Empty(t, subjects, "no subjects were bound to another role")
}

// An unrelated ConfigMap is cached without data; once it gains the allow
// annotations its full data must reach the placeholder.
func TestConfigMapGainingAnnotationsAfterStartReplicatesFully(t *testing.T) {
	e := newEnv(t)
	o := e.objects(configMapKind)
	src, app := e.ns("src", nil), e.ns("app", nil)
	o.create(src, "settings", nil, nil, configMapKind.content(1))
	e.start()
	o.create(app, "settings", map[string]string{e.a.ReplicateFrom: src + "/settings"}, nil, configMapKind.content(0))
	e.waitEvent(app, "settings", "ReplicationDenied")
	o.modify(src, "settings", func(u *unstructured.Unstructured) {
		a := e.allow(app)
		a[corev1.LastAppliedConfigAnnotation] = "{}"
		u.SetAnnotations(a)
	})
	o.wait(app, "settings", configMapKind.content(1))
}
