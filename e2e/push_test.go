package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubereplicator/replicator/replicate"
)

func TestPushByNamesPatternsAndLabels(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src := e.ns("src", map[string]string{"tls": "yes"})
	byName, byRegex1, byRegex2 := e.ns("named", nil), e.ns("team-x", nil), e.ns("team-y", nil)
	byLabel, none := e.ns("labelled", map[string]string{"tls": "yes"}), e.ns("unrelated", nil)
	s := secret(src, "wildcard", corev1.SecretTypeTLS, tlsV1, map[string]string{
		e.a.ReplicateTo:                fmt.Sprintf("%s, e%d-team-.*", byName, e.id),
		e.a.ReplicateToMatching:        "tls=yes",
		"unrelated.example/annotation": "not copied",
	})
	s.Labels = map[string]string{"app": "web"}
	e.create(s)
	for _, ns := range []string{byName, byRegex1, byRegex2, byLabel} {
		r := e.waitData(ns, "wildcard", tlsV1)
		assert.Equal(t, corev1.SecretTypeTLS, r.Type)
		assert.Equal(t, src+"/wildcard", r.Annotations[e.a.ReplicatedFrom])
		assert.Equal(t, map[string]string{"app": "web"}, r.Labels)
		assert.NotContains(t, r.Annotations, e.a.ReplicateTo, "source annotations are not copied")
		assert.NotContains(t, r.Annotations, "unrelated.example/annotation")
	}
	e.caughtUp(r)
	e.absent(none, "wildcard")
	// The source's own namespace matches the selector but is never written.
	assert.Equal(t, "", e.mustGet(src, "wildcard").Annotations[e.a.ReplicatedFrom])

	// Renewal reaches every replica.
	e.modify(src, "wildcard", func(s *corev1.Secret) {
		s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
	})
	for _, ns := range []string{byName, byRegex1, byRegex2, byLabel} {
		e.waitData(ns, "wildcard", tlsV2)
	}
	e.explainAgrees(nil, "secret/"+src+"/wildcard", "secret/"+byName+"/wildcard", "secret/"+byLabel+"/wildcard")
}

// The API server labels every namespace with its name; the cache does not
// keep that label (it repeats the name) and selectors still see it.
func TestPushByTheNamespaceNameLabel(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, chosen, other := e.ns("src", nil), e.ns("chosen", nil), e.ns("other", nil)
	e.create(secret(src, "shared", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{
		e.a.ReplicateToMatching: "kubernetes.io/metadata.name in (" + chosen + ")",
	}))
	e.waitData(chosen, "shared", map[string]string{"k": "v"})
	e.caughtUp(r)
	e.absent(other, "shared")
	e.explainAgrees(nil, "secret/"+src+"/shared", "secret/"+chosen+"/shared")
}

func TestPushFollowsNewAndRelabelledNamespaces(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src := e.ns("src", nil)
	e.create(secret(src, "shared", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{
		e.a.ReplicateTo:         fmt.Sprintf("e%d-later", e.id),
		e.a.ReplicateToMatching: "env in (prod)",
	}))
	later := e.ns("later", nil)
	e.waitData(later, "shared", map[string]string{"k": "v"})

	moving := e.ns("moving", map[string]string{"env": "dev"})
	// Namespaces are watched in order: once one created after it receives
	// its replica, the replicator has seen moving, as a dev namespace.
	e.waitData(e.ns("marker", map[string]string{"env": "prod"}), "shared", map[string]string{"k": "v"})
	e.caughtUp(r)
	e.absent(moving, "shared")
	e.labelNamespace(moving, map[string]string{"env": "prod"})
	e.waitData(moving, "shared", map[string]string{"k": "v"})
	e.labelNamespace(moving, map[string]string{"env": "dev"})
	e.waitGone(moving, "shared")
}

func TestPushNeverOverwritesForeignObjects(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, mine, theirs := e.ns("src", nil), e.ns("mine", nil), e.ns("theirs", nil)
	foreign := e.create(secret(theirs, "db", corev1.SecretTypeOpaque, map[string]string{"password": "their-password"}, nil))
	e.create(secret(src, "db", corev1.SecretTypeOpaque, map[string]string{"password": "ours"}, map[string]string{
		e.a.ReplicateTo: mine + "," + theirs,
	}))
	e.waitData(mine, "db", map[string]string{"password": "ours"})
	msg := e.waitEvent(src, "db", replicate.ReasonTargetConflict)
	assert.Contains(t, msg, theirs)
	e.caughtUp(r)
	e.unchanged(foreign, "a foreign object is never overwritten")

	// Once the foreign object goes, the slot is ours.
	e.delete(theirs, "db")
	e.waitData(theirs, "db", map[string]string{"password": "ours"})
	e.explainAgrees(nil, "secret/"+src+"/db", "secret/"+theirs+"/db")
}

func TestPushRepairsEditedAndDeletedReplicas(t *testing.T) {
	e := newEnv(t)
	e.start()
	src, dst := e.ns("src", nil), e.ns("dst", nil)
	s := secret(src, "creds", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateTo: dst})
	s.Labels = map[string]string{"team": "a"}
	e.create(s)
	e.waitData(dst, "creds", map[string]string{"k": "v"})

	e.modify(dst, "creds", func(s *corev1.Secret) {
		s.Data["k"] = []byte("tampered")
		s.Data["extra"] = []byte("x")
		s.Labels = map[string]string{"team": "b"}
	})
	restored := e.waitData(dst, "creds", map[string]string{"k": "v"})
	e.eventually(wait, "labels restored", func() error {
		if l := e.mustGet(dst, "creds").Labels["team"]; l != "a" {
			return fmt.Errorf("label team=%q", l)
		}
		return nil
	})
	_ = restored

	e.delete(dst, "creds")
	e.eventually(wait, "replica recreated", func() error {
		_, err := e.get(dst, "creds")
		return err
	})
	e.waitData(dst, "creds", map[string]string{"k": "v"})
	e.explainAgrees(nil, "secret/"+src+"/creds", "secret/"+dst+"/creds")
}

func TestPushStripLabels(t *testing.T) {
	e := newEnv(t)
	e.start()
	src, dst := e.ns("src", nil), e.ns("dst", nil)
	s := secret(src, "creds", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateTo: dst, e.a.StripLabels: "true"})
	s.Labels = map[string]string{"team": "a"}
	e.create(s)
	r := e.waitData(dst, "creds", map[string]string{"k": "v"})
	assert.Empty(t, r.Labels)
	e.explainAgrees(nil, "secret/"+src+"/creds", "secret/"+dst+"/creds")
}

func TestPushCleanupRemovesOnlyOurReplicas(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, other, a, b, c, d := e.ns("src", nil), e.ns("other", nil), e.ns("a", nil), e.ns("b", nil), e.ns("c", nil), e.ns("d", nil)
	// c holds a foreign object; another source pushes an object of the same
	// name elsewhere.
	foreign := e.create(secret(c, "cfg", corev1.SecretTypeOpaque, map[string]string{"k": "foreign-value"}, nil))
	e.create(secret(src, "cfg", corev1.SecretTypeOpaque, map[string]string{"k": "src"}, map[string]string{e.a.ReplicateTo: a + "," + b + "," + c}))
	e.create(secret(other, "cfg", corev1.SecretTypeOpaque, map[string]string{"k": "other"}, map[string]string{e.a.ReplicateTo: d}))
	e.waitData(a, "cfg", map[string]string{"k": "src"})
	e.waitData(b, "cfg", map[string]string{"k": "src"})
	e.waitData(d, "cfg", map[string]string{"k": "other"})
	e.caughtUp(r)
	others := e.mustGet(d, "cfg")

	// Narrowing the list deletes the replica that is no longer wanted.
	e.modify(src, "cfg", func(s *corev1.Secret) { s.Annotations[e.a.ReplicateTo] = a + "," + c })
	e.waitGone(b, "cfg")

	// Removing the push annotations deletes the rest.
	e.modify(src, "cfg", func(s *corev1.Secret) { delete(s.Annotations, e.a.ReplicateTo) })
	e.waitGone(a, "cfg")

	// Deleting the source deletes its replicas, and only those.
	e.modify(src, "cfg", func(s *corev1.Secret) { s.Annotations[e.a.ReplicateTo] = a })
	e.waitData(a, "cfg", map[string]string{"k": "src"})
	e.delete(src, "cfg")
	e.waitGone(a, "cfg")
	e.caughtUp(r)
	e.unchanged(foreign, "a foreign object is never touched")
	e.unchanged(others, "another source's replica of the same name is not ours to clean up")
	e.explainAgrees(nil, "secret/"+c+"/cfg", "secret/"+other+"/cfg")
}

func TestPushSkipsTerminatingNamespaces(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, live, dying := e.ns("src", nil), e.ns("live", map[string]string{"push": "yes"}), e.ns("dying", map[string]string{"push": "yes"})
	// No namespace controller runs here, so a deleted namespace stays
	// Terminating for the rest of the run.
	assert.NoError(t, admin.CoreV1().Namespaces().Delete(e.ctx, dying, metav1.DeleteOptions{}))
	e.eventually(wait, "namespace terminating", func() error {
		n, err := admin.CoreV1().Namespaces().Get(e.ctx, dying, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Status.Phase != corev1.NamespaceTerminating {
			return fmt.Errorf("phase %s", n.Status.Phase)
		}
		return nil
	})
	e.create(secret(src, "cfg", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateToMatching: "push=yes"}))
	e.waitData(live, "cfg", map[string]string{"k": "v"})
	e.noWrites(r, 2*time.Second, "no attempts to write into the terminating namespace")
	assert.Empty(t, e.eventsFor(admin, eventsOn{Namespace: src, Name: "cfg", Reason: replicate.ReasonWriteFailed}))
}
