package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubereplicator/replicator/replicate"
)

// TestSwitchingAdoptsTheCopiesOtherReplicatorsMade leaves copies of a source
// as kubernetes-replicator, reflector and kubed leave them (their own
// annotations and labels), plus a look-alike that no replicator made. This
// replicator takes over the three copies (Event Adopted), keeps them in sync,
// repairs them and removes them with their source; the look-alike is never
// touched.
func TestSwitchingAdoptsTheCopiesOtherReplicatorsMade(t *testing.T) {
	e := newEnv(t)
	certs := e.ns("certs", nil)
	byReplicator, byReflector, byKubed, lookAlike := e.ns("kr", nil), e.ns("reflector", nil), e.ns("kubed", nil), e.ns("plain", nil)
	old := map[string]string{"tls.crt": "OLD-CERT", "tls.key": "OLD-KEY"}
	copyIn := func(namespace string, annotations, labels map[string]string) {
		s := secret(namespace, "wildcard", corev1.SecretTypeTLS, old, annotations)
		s.Labels = labels
		e.create(s)
	}
	// kubernetes-replicator: its bookkeeping under our prefix, no marker.
	copyIn(byReplicator, map[string]string{e.a.ReplicatedAt: "2026-01-01T00:00:00Z", e.a.ReplicatedFromVersion: "12345", e.a.ReplicatedKeys: "tls.crt,tls.key"}, nil)
	// reflector: an auto copy naming its source.
	copyIn(byReflector, map[string]string{
		"reflector.v1.k8s.emberstack.com/reflects":          certs + "/wildcard",
		"reflector.v1.k8s.emberstack.com/auto-reflects":     "True",
		"reflector.v1.k8s.emberstack.com/reflected-version": "12345",
		"reflector.v1.k8s.emberstack.com/reflected-at":      `"2026-01-01T00:00:00.0000000+00:00"`,
	}, nil)
	// kubed: origin labels and annotation.
	copyIn(byKubed, map[string]string{"kubed.appscode.com/origin": fmt.Sprintf(`{"namespace":%q,"name":"wildcard","resourceVersion":"12345"}`, certs)},
		map[string]string{"kubed.appscode.com/origin.name": "wildcard", "kubed.appscode.com/origin.namespace": certs, "kubed.appscode.com/origin.cluster": "unicorn"})
	// Nobody's copy: same name, no bookkeeping.
	e.create(secret(lookAlike, "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "MINE", "tls.key": "MINE-KEY"}, nil))

	e.start()
	all := byReplicator + "," + byReflector + "," + byKubed + "," + lookAlike
	e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, map[string]string{e.a.ReplicateTo: all}))
	adopted := []string{byReplicator, byReflector, byKubed}
	for _, ns := range adopted {
		s := e.waitData(ns, "wildcard", tlsV1)
		assert.Equal(t, certs+"/wildcard", s.Annotations[e.a.ReplicatedFrom], "%s: marked as ours", ns)
	}
	msg := e.waitEvent(certs, "wildcard", replicate.ReasonAdopted)
	for _, ns := range adopted {
		assert.Contains(t, msg, ns)
	}
	assert.Contains(t, e.waitEvent(certs, "wildcard", replicate.ReasonTargetConflict), lookAlike)

	// From now on they are ours: renewed, repaired, removed with the source.
	e.modify(certs, "wildcard", func(s *corev1.Secret) {
		s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
	})
	for _, ns := range adopted {
		e.waitData(ns, "wildcard", tlsV2)
	}
	e.modify(byKubed, "wildcard", func(s *corev1.Secret) { s.Data["tls.crt"] = []byte("EDITED") })
	e.waitData(byKubed, "wildcard", tlsV2)
	e.delete(certs, "wildcard")
	for _, ns := range adopted {
		e.waitGone(ns, "wildcard")
	}
	assert.Equal(t, "MINE", string(e.mustGet(lookAlike, "wildcard").Data["tls.crt"]), "the look-alike is never touched")
}

// TestDryRunWritesNothingAndSaysWhatItWould runs the binary with --dry-run on
// a cluster where every kind of write is due (a placeholder to fill, replicas
// to create, a copy to adopt, a stale replica to delete): it logs and counts
// each, and sends no write request at all.
func TestDryRunWritesNothingAndSaysWhatItWould(t *testing.T) {
	e := newEnv(t)
	certs, app, fresh, copied, stale := e.ns("certs", nil), e.ns("app", nil), e.ns("fresh", nil), e.ns("copied", nil), e.ns("stale", nil)
	e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, map[string]string{
		e.a.ReplicationAllowed: "true", e.a.ReplicationAllowedNS: app, e.a.ReplicateTo: fresh + "," + copied,
	}))
	e.create(e.tlsPlaceholder(app, "wildcard", certs+"/wildcard"))
	e.create(secret(copied, "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "OLD-CERT", "tls.key": "OLD-KEY"}, map[string]string{e.a.ReplicatedAt: "2026-01-01T00:00:00Z"}))
	e.create(secret(stale, "wildcard", corev1.SecretTypeTLS, tlsV1, map[string]string{e.a.ReplicatedFrom: certs + "/wildcard"}))

	p := e.startReplicator("dry-run", "--annotation-prefix", e.prefix, "--dry-run", "--log-format=json")
	for _, want := range []map[string]string{
		{"kind": "Secret", "mode": "pull", "action": "update"},
		{"kind": "Secret", "mode": "push", "action": "create"},
		{"kind": "Secret", "mode": "push", "action": "adopt"},
		{"kind": "Secret", "mode": "push", "action": "delete"},
	} {
		e.eventually(wait, fmt.Sprintf("dry-run write %v counted", want), func() error {
			if v, err := p.metric("replicator_dry_run_writes_total", want); err != nil || v != 1 {
				return fmt.Errorf("%v (%v)", v, err)
			}
			return nil
		})
	}
	logs := p.logs.String()
	for _, want := range []string{`"action":"create"`, `"action":"adopt"`, `"action":"delete"`, `"action":"update"`, fresh, copied, stale, app} {
		assert.Contains(t, logs, want)
	}
	assert.Contains(t, logs, "dry run: would write")
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		v, err := p.metric("rest_client_requests_total", map[string]string{"method": method})
		require.NoError(t, err)
		assert.Zero(t, v, "%s requests sent", method)
	}
	e.waitData(app, "wildcard", tlsEmpty)
	_, err := e.get(fresh, "wildcard")
	assert.True(t, apierrors.IsNotFound(err), "no replica created")
	assert.Equal(t, "OLD-CERT", string(e.mustGet(copied, "wildcard").Data["tls.crt"]), "the copy is not adopted")
	e.mustGet(stale, "wildcard")
	assert.False(t, e.hasEvent(certs, "wildcard", replicate.ReasonAdopted), "no Event recorded")
}

// TestKubedRecipe follows cert-manager's FAQ recipe for kubed as written
// there, with --dialects=replicator,kubed: the namespace labelled
// cert-manager-tls=sandbox, the Secret annotated kubed.appscode.com/sync.
func TestKubedRecipe(t *testing.T) {
	e := newEnv(t)
	recipe := map[string]string{"cert-manager-tls": "sandbox"}
	certs, sandbox, later, plain, foreign := e.ns("cert-manager", nil), e.ns("sandbox", recipe), e.ns("later", nil), e.ns("plain", nil), e.ns("foreign", recipe)
	// kubed's annotation has no prefix of this test's own: only the source
	// here may push, so that other tests' objects carrying it (the tenancy
	// test's, say) are left to their own replicators.
	e.start(func(o *replicate.Options) {
		o.Kubed = true
		o.Push = replicate.PushPolicy{From: mustPatterns(t, certs)}
	})
	e.create(secret(foreign, "wildcard-tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "MINE", "tls.key": "MINE-KEY"}, nil))
	e.create(secret(certs, "wildcard-tls", corev1.SecretTypeTLS, tlsV1, map[string]string{replicate.KubedSyncAnnotation: "cert-manager-tls=sandbox"}))

	s := e.waitData(sandbox, "wildcard-tls", tlsV1)
	assert.Equal(t, "wildcard-tls", s.Labels["kubed.appscode.com/origin.name"], "kubed's bookkeeping on the copy")
	assert.Equal(t, certs, s.Labels["kubed.appscode.com/origin.namespace"])
	assert.Contains(t, e.waitEvent(certs, "wildcard-tls", replicate.ReasonTargetConflict), foreign)
	e.absent(time.Second, plain, "wildcard-tls")

	e.labelNamespace(later, recipe)
	e.waitData(later, "wildcard-tls", tlsV1)
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) {
		s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
	})
	e.waitData(sandbox, "wildcard-tls", tlsV2)
	e.waitData(later, "wildcard-tls", tlsV2)
	// Unlike kubed, a namespace that stops matching loses its copy.
	e.labelNamespace(later, nil)
	e.waitGone(later, "wildcard-tls")
	// The annotation removed: the copies go; the foreign object stays.
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) { delete(s.Annotations, replicate.KubedSyncAnnotation) })
	e.waitGone(sandbox, "wildcard-tls")
	// Back, then the source deleted: the copies go with it. ("" and
	// "true", every namespace, are table tests: here they would reach the
	// namespaces of the tests running beside this one.)
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) { s.Annotations[replicate.KubedSyncAnnotation] = "cert-manager-tls=sandbox" })
	e.waitData(sandbox, "wildcard-tls", tlsV2)
	e.delete(certs, "wildcard-tls")
	e.waitGone(sandbox, "wildcard-tls")
	assert.Equal(t, "MINE", string(e.mustGet(foreign, "wildcard-tls").Data["tls.crt"]))
}
