package e2e

import (
	"fmt"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// This file holds the helpers for Secrets, the kind most tests use.

func (e *env) create(s *corev1.Secret) *corev1.Secret {
	e.t.Helper()
	return e.createIn(admin, s)
}

// createIn creates s in the cluster of client.
func (e *env) createIn(client kubernetes.Interface, s *corev1.Secret) *corev1.Secret {
	e.t.Helper()
	got, err := client.CoreV1().Secrets(s.Namespace).Create(e.ctx, s, metav1.CreateOptions{})
	require.NoError(e.t, err)
	return got
}

func (e *env) get(namespace, name string) (*corev1.Secret, error) {
	return admin.CoreV1().Secrets(namespace).Get(e.ctx, name, metav1.GetOptions{})
}

func (e *env) mustGet(namespace, name string) *corev1.Secret {
	e.t.Helper()
	s, err := e.get(namespace, name)
	require.NoError(e.t, err)
	return s
}

// modify changes a Secret with retries on conflict.
func (e *env) modify(namespace, name string, change func(*corev1.Secret)) {
	e.t.Helper()
	e.modifyIn(admin, namespace, name, change)
}

// modifyIn is modify in the cluster of client; it returns the Secret as
// written.
func (e *env) modifyIn(client kubernetes.Interface, namespace, name string, change func(*corev1.Secret)) *corev1.Secret {
	e.t.Helper()
	var out *corev1.Secret
	e.eventually(wait, "modify "+namespace+"/"+name, func() error {
		s, err := client.CoreV1().Secrets(namespace).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		change(s)
		out, err = client.CoreV1().Secrets(namespace).Update(e.ctx, s, metav1.UpdateOptions{})
		return err
	})
	return out
}

func (e *env) delete(namespace, name string) {
	e.t.Helper()
	err := admin.CoreV1().Secrets(namespace).Delete(e.ctx, name, metav1.DeleteOptions{})
	if !apierrors.IsNotFound(err) {
		require.NoError(e.t, err)
	}
}

// waitData waits until the Secret holds exactly want.
func (e *env) waitData(namespace, name string, want map[string]string) *corev1.Secret {
	e.t.Helper()
	var got *corev1.Secret
	e.eventually(wait, "data of "+namespace+"/"+name, func() error {
		s, err := e.get(namespace, name)
		if err != nil {
			return err
		}
		if !sameData(s.Data, want) {
			return fmt.Errorf("data is %v, want %v", keysOf(s.Data), want)
		}
		got = s
		return nil
	})
	return got
}

func (e *env) waitGone(namespace, name string) {
	e.t.Helper()
	e.eventually(wait, namespace+"/"+name+" deleted", func() error {
		_, err := e.get(namespace, name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

func sameData(got map[string][]byte, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || string(g) != v {
			return false
		}
	}
	return true
}

// keysOf shows a Secret's data for failure messages: key names and sizes,
// never values.
func keysOf(d map[string][]byte) map[string]int {
	out := map[string]int{}
	for k, v := range d {
		out[k] = len(v)
	}
	return out
}

// unchanged asserts that the Secret is still at the version s was read at.
// Call it once the replicator has caught up (env.caughtUp): a write it was
// going to make has been made by then.
func (e *env) unchanged(s *corev1.Secret, why string) {
	e.t.Helper()
	require.Equal(e.t, s.ResourceVersion, e.mustGet(s.Namespace, s.Name).ResourceVersion, "%s/%s was written: %s", s.Namespace, s.Name, why)
}

func secret(namespace, name string, typ corev1.SecretType, data map[string]string, annotations map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Type:       typ,
		Data:       map[string][]byte{},
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
		secretValues.Store(v, true)
	}
	return s
}

// allow returns source annotations letting the namespaces pull.
func (e *env) allow(namespaces string) map[string]string {
	return map[string]string{e.a.ReplicationAllowed: "true", e.a.ReplicationAllowedNS: namespaces}
}

// tlsPlaceholder is the empty Secret cert-manager's documentation tells
// consumers to create.
func (e *env) tlsPlaceholder(namespace, name, from string) *corev1.Secret {
	return secret(namespace, name, corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""},
		map[string]string{e.a.ReplicateFrom: from})
}

// absent asserts that no Secret namespace/name exists. Call it once the
// replicator has caught up (env.caughtUp): a Secret it was going to write
// exists by then.
func (e *env) absent(namespace, name string) {
	e.t.Helper()
	_, err := e.get(namespace, name)
	require.True(e.t, apierrors.IsNotFound(err), "%s/%s exists (%v)", namespace, name, err)
}

var tlsV1 = map[string]string{"tls.crt": "CERT-V1", "tls.key": "KEY-V1"}

var tlsV2 = map[string]string{"tls.crt": "CERT-V2", "tls.key": "KEY-V2"}

var tlsEmpty = map[string]string{"tls.crt": "", "tls.key": ""}

func stringData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}
