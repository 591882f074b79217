package e2e

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"

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
