package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// kindCase describes one replicated kind to the kind-independent tests: its
// resource, the fields the replicator copies, and contents to copy.
type kindCase struct {
	kind     string
	resource schema.GroupVersionResource
	// fields are the top-level fields the replicator copies.
	fields []string
	// content returns version v of a source's replicated fields (v > 0),
	// or a placeholder's (v == 0).
	content func(v int) map[string]any
}

var (
	rbacGroup = "rbac.authorization.k8s.io"
	viewRole  = map[string]any{"apiGroup": rbacGroup, "kind": "ClusterRole", "name": "view"}
)

// kinds are the replicated kinds, for the tests that hold for all of them.
var kinds = []kindCase{secretKind, configMapKind, roleKind, roleBindingKind, serviceAccountKind}

// secretValue is what version v of a Secret kind case holds: registered,
// so that the run fails if it ever reaches a log.
func secretValue(v int) string {
	value := fmt.Sprintf("kind-case-secret-%d", v)
	secretValues.Store(value, true)
	return base64.StdEncoding.EncodeToString([]byte(value))
}

var secretKind = kindCase{
	kind:     "Secret",
	resource: schema.GroupVersionResource{Version: "v1", Resource: "secrets"},
	fields:   []string{"data"},
	content: func(v int) map[string]any {
		if v == 0 {
			return map[string]any{}
		}
		return map[string]any{"data": map[string]any{"token": secretValue(v)}}
	},
}

var configMapKind = kindCase{
	kind:     "ConfigMap",
	resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
	fields:   []string{"data", "binaryData"},
	content: func(v int) map[string]any {
		if v == 0 {
			return map[string]any{}
		}
		return map[string]any{
			"data":       map[string]any{"settings.yaml": fmt.Sprintf("level: %d\n", v)},
			"binaryData": map[string]any{"logo.png": "iVBORw0KGgo="},
		}
	},
}

var roleKind = kindCase{
	kind:     "Role",
	resource: schema.GroupVersionResource{Group: rbacGroup, Version: "v1", Resource: "roles"},
	fields:   []string{"rules"},
	content: func(v int) map[string]any {
		if v == 0 {
			return map[string]any{}
		}
		// Verbs on ConfigMaps: what the chart's ClusterRole holds, so
		// that RBAC's escalation check lets the replicator write it.
		verbs := []any{"get", "list", "watch", "create", "update"}[:v]
		return map[string]any{"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"configmaps"}, "verbs": verbs}}}
	},
}

var roleBindingKind = kindCase{
	kind:     "RoleBinding",
	resource: schema.GroupVersionResource{Group: rbacGroup, Version: "v1", Resource: "rolebindings"},
	fields:   []string{"subjects", "roleRef"},
	content: func(v int) map[string]any {
		c := map[string]any{"roleRef": viewRole}
		if v > 0 {
			c["subjects"] = []any{map[string]any{"apiGroup": rbacGroup, "kind": "Group", "name": fmt.Sprintf("team-%d", v)}}
		}
		return c
	},
}

var serviceAccountKind = kindCase{
	kind:     "ServiceAccount",
	resource: schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"},
	fields:   []string{"imagePullSecrets"},
	content: func(v int) map[string]any {
		if v == 0 {
			return map[string]any{}
		}
		return map[string]any{"imagePullSecrets": []any{map[string]any{"name": fmt.Sprintf("registry-%d", v)}}}
	},
}

// objects is a kind-independent client for one kindCase.
type objects struct {
	e  *env
	kc kindCase
	c  dynamic.NamespaceableResourceInterface
}

func (e *env) objects(kc kindCase) *objects {
	return &objects{e: e, kc: kc, c: dynamic.NewForConfigOrDie(cluster.Config).Resource(kc.resource)}
}

func (o *objects) create(namespace, name string, annotations map[string]string, labels map[string]string, content map[string]any) {
	o.e.t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range content {
		obj.Object[k] = v
	}
	obj.SetAPIVersion(o.kc.resource.GroupVersion().String())
	obj.SetKind(o.kc.kind)
	obj.SetNamespace(namespace)
	obj.SetName(name)
	obj.SetAnnotations(annotations)
	obj.SetLabels(labels)
	_, err := o.c.Namespace(namespace).Create(o.e.ctx, obj, metav1.CreateOptions{})
	require.NoError(o.e.t, err)
}

func (o *objects) get(namespace, name string) (*unstructured.Unstructured, error) {
	return o.c.Namespace(namespace).Get(o.e.ctx, name, metav1.GetOptions{})
}

// modify changes an object with retries on conflict.
func (o *objects) modify(namespace, name string, change func(*unstructured.Unstructured)) {
	o.e.t.Helper()
	o.e.eventually(wait, "modify "+namespace+"/"+name, func() error {
		obj, err := o.get(namespace, name)
		if err != nil {
			return err
		}
		change(obj)
		_, err = o.c.Namespace(namespace).Update(o.e.ctx, obj, metav1.UpdateOptions{})
		return err
	})
}

// differs returns how the object's copied fields differ from want, or "".
func (o *objects) differs(obj *unstructured.Unstructured, want map[string]any) string {
	normal := func(v any) any {
		b, _ := json.Marshal(v)
		var out any
		_ = json.Unmarshal(b, &out)
		return out
	}
	for _, f := range o.kc.fields {
		if got, want := normal(obj.Object[f]), normal(want[f]); !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("%s is %v, want %v", f, got, want)
		}
	}
	return ""
}

// wait waits until the object's copied fields equal want.
func (o *objects) wait(namespace, name string, want map[string]any) *unstructured.Unstructured {
	o.e.t.Helper()
	var got *unstructured.Unstructured
	o.e.eventually(wait, fmt.Sprintf("%s %s/%s", o.kc.kind, namespace, name), func() error {
		obj, err := o.get(namespace, name)
		if err != nil {
			return err
		}
		if d := o.differs(obj, want); d != "" {
			return fmt.Errorf("%s", d)
		}
		got = obj
		return nil
	})
	return got
}

func (o *objects) waitGone(namespace, name string) {
	o.e.t.Helper()
	o.e.eventually(wait, namespace+"/"+name+" deleted", func() error {
		if _, err := o.get(namespace, name); apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there")
	})
}

func TestEveryKindPull(t *testing.T) {
	for _, kc := range kinds {
		t.Run(kc.kind, func(t *testing.T) {
			e := newEnv(t)
			e.start()
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
			e.start()
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
			time.Sleep(time.Second)
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
	e.start()
	o := e.objects(roleBindingKind)
	src, app := e.ns("src", nil), e.ns("app", nil)
	o.create(src, "readers", e.allow(app), nil, o.kc.content(1))
	o.create(app, "readers", map[string]string{e.a.ReplicateFrom: src + "/readers"}, nil,
		map[string]any{"roleRef": map[string]any{"apiGroup": rbacGroup, "kind": "ClusterRole", "name": "edit"}})
	msg := e.waitEvent(app, "readers", "TypeMismatch")
	assert.Contains(t, msg, "ClusterRole/view")
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
