package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kubereplicator/replicator/replicate"
)

// This file holds the kind cases and a client that treats every kind alike.

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

// kindsNamed returns the replicated kinds of which an object named name
// exists in namespace.
func (e *env) kindsNamed(namespace, name string) []string {
	e.t.Helper()
	var found []string
	check := func(kind string, err error) {
		if err == nil {
			found = append(found, kind)
			return
		}
		require.True(e.t, apierrors.IsNotFound(err), "%s %s/%s: %v", kind, namespace, name, err)
	}
	for _, kc := range kinds {
		_, err := e.objects(kc).get(namespace, name)
		check(kc.kind, err)
	}
	return found
}

// pushedTo returns push annotations under prefix a naming namespaces.
func pushedTo(a replicate.Annotations, namespaces string) map[string]string {
	return map[string]string{a.ReplicateTo: namespaces}
}
