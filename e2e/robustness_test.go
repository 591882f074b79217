package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubereplicator/replicator/replicate"
)

func TestSteadyStateAndRestartCauseZeroWrites(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	certs, app, team := e.ns("certs", nil), e.ns("app", nil), e.ns("team", nil)
	e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, with(e.allow(app), e.a.ReplicateTo, team)))
	e.create(e.tlsPlaceholder(app, "wildcard", certs+"/wildcard"))
	e.create(secret(app, "with-local", corev1.SecretTypeOpaque, map[string]string{"local": "x"}, map[string]string{e.a.ReplicateFrom: certs + "/wildcard"}))
	e.waitData(app, "wildcard", tlsV1)
	e.waitData(app, "with-local", map[string]string{"local": "x", "tls.crt": tlsV1["tls.crt"], "tls.key": tlsV1["tls.key"]})
	e.waitData(team, "wildcard", tlsV1)

	// The echoes of the controller's own writes seen and answered.
	e.caughtUp(r)
	before := e.resourceVersions(certs, app, team)
	writes := e.writes.Load()
	e.noWrites(r, 10*time.Second, "writes while idle")
	assert.Equal(t, before, e.resourceVersions(certs, app, team), "objects written while idle")

	// Started again, it reconciles every object it finds: the marker comes
	// after them all.
	r.stop()
	r = e.start()
	e.caughtUp(r)
	assert.Equal(t, writes, e.writes.Load(), "writes after a restart")
	assert.Equal(t, before, e.resourceVersions(certs, app, team), "objects written after a restart")
}

func TestBadInputIsReportedAndDoesNotStopReplication(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, app, push := e.ns("src", nil), e.ns("app", nil), e.ns("push", nil)
	e.create(secret(src, "s", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, e.allow(app)))

	malformed := map[string]string{
		"three-parts": "a/b/c",
		"empty":       "",
		"blank":       "   ",
		"bad-ns":      "Not_A_Namespace/s",
		"unknown-cls": "elsewhere:" + src + "/s",
	}
	for name, ref := range malformed {
		e.create(secret(app, name, corev1.SecretTypeOpaque, map[string]string{"own": "data"}, map[string]string{e.a.ReplicateFrom: ref}))
	}
	e.create(secret(src, "bad-regex", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateTo: "(" + push}))
	e.create(secret(src, "bad-selector", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateToMatching: "a in (b"}))
	e.create(secret(app, "missing", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/does-not-exist"}))
	e.create(secret(src, "bad-clusters", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, with(e.allow(app), e.a.ReplicationAllowedClusters, "(spoke")))

	// A good pair created after all of that still replicates.
	e.create(secret(app, "good", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/s"}))
	e.waitData(app, "good", map[string]string{"k": "v"})
	e.caughtUp(r)

	for name := range malformed {
		e.waitEvent(app, name, replicate.ReasonInvalidAnnotation)
		assert.Equal(t, map[string]string{"own": "data"}, stringData(e.mustGet(app, name)), "a malformed reference writes nothing")
	}
	e.waitEvent(src, "bad-regex", replicate.ReasonInvalidAnnotation)
	e.waitEvent(src, "bad-selector", replicate.ReasonInvalidAnnotation)
	assert.Contains(t, e.waitEvent(src, "bad-clusters", replicate.ReasonInvalidAnnotation), e.a.ReplicationAllowedClusters)
	e.waitEvent(app, "missing", replicate.ReasonSourceNotFound)

	// No hot loop: nothing keeps being written.
	e.noWrites(r, 3*time.Second, "bad input causes no repeated writes")
}

func TestOversizedResultIsRejectedCleanly(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, app := e.ns("src", nil), e.ns("app", nil)
	// The largest Secret the API accepts (1 MiB of data), pulled into a
	// target that has a local key of its own: the result is too large.
	big := strings.Repeat("x", 1024*1024-16)
	e.create(secret(src, "big", corev1.SecretTypeOpaque, map[string]string{"blob": big}, e.allow(app)))
	e.create(secret(app, "fits", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/big"}))
	e.create(secret(app, "overflows", corev1.SecretTypeOpaque, map[string]string{"local": strings.Repeat("y", 1024)}, map[string]string{e.a.ReplicateFrom: src + "/big"}))
	e.eventually(wait, "1 MiB source replicated", func() error {
		s, err := e.get(app, "fits")
		if err != nil {
			return err
		}
		if len(s.Data["blob"]) != len(big) {
			return assert.AnError
		}
		return nil
	})
	msg := e.waitEvent(app, "overflows", replicate.ReasonWriteFailed)
	assert.NotContains(t, msg, "xxxx", "no data in events")
	e.noWrites(r, 3*time.Second, "a rejected write is not retried in a loop")
}

func TestNamespaceDeletedMidFanOut(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src := e.ns("src", nil)
	var targets []string
	for _, s := range []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"} {
		targets = append(targets, e.ns(s, map[string]string{"fan": "out"}))
	}
	// Delete half of the namespaces while the fan-out is under way.
	e.create(secret(src, "cfg", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateToMatching: "fan=out"}))
	for _, ns := range targets[:4] {
		require.NoError(t, admin.CoreV1().Namespaces().Delete(e.ctx, ns, metav1.DeleteOptions{}))
	}
	for _, ns := range targets[4:] {
		e.waitData(ns, "cfg", map[string]string{"k": "v"})
	}
	// A later change still reaches the live namespaces.
	e.modify(src, "cfg", func(s *corev1.Secret) { s.Data["k"] = []byte("v2") })
	for _, ns := range targets[4:] {
		e.waitData(ns, "cfg", map[string]string{"k": "v2"})
	}
	e.noWrites(r, 3*time.Second, "terminating namespaces are not retried")
}

// The cache keeps no data for Secrets without our annotations; one that gains
// them later must replicate with its full data.
func TestSecretsGainingAnnotationsAfterStartReplicateFully(t *testing.T) {
	e := newEnv(t)
	e.start()
	src, app, push := e.ns("src", nil), e.ns("app", nil), e.ns("push", nil)
	e.create(secret(src, "plain", corev1.SecretTypeOpaque, map[string]string{"k": "pulled"}, nil))
	e.create(secret(src, "later-push", corev1.SecretTypeOpaque, map[string]string{"k": "pushed"}, nil))
	e.create(secret(app, "copy", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/plain"}))
	e.waitEvent(app, "copy", replicate.ReasonDenied)

	e.modify(src, "plain", func(s *corev1.Secret) {
		s.Annotations[e.a.ReplicationAllowed] = "true"
		s.Annotations[e.a.ReplicationAllowedNS] = app
	})
	e.waitData(app, "copy", map[string]string{"k": "pulled"})

	e.modify(src, "later-push", func(s *corev1.Secret) { s.Annotations[e.a.ReplicateTo] = push })
	e.waitData(push, "later-push", map[string]string{"k": "pushed"})

	// Losing the annotations again revokes, as always.
	e.modify(src, "plain", func(s *corev1.Secret) { s.Annotations = nil })
	e.waitData(app, "copy", map[string]string{})
}

// Pattern lists too long to be reasonable are refused with an Event, quickly,
// and match nothing; replication elsewhere goes on.
func TestHugeAnnotationsAreRefusedCleanly(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, app := e.ns("src", nil), e.ns("app", nil)
	var many []string
	for i := 0; i < 10000; i++ {
		many = append(many, fmt.Sprintf("%s-%d", app, i))
	}
	manyList := strings.Join(append(many, app), ",")
	require.Greater(t, len(manyList), 100*1024)
	longEntry := app + "|" + strings.Repeat("x", 100*1024)

	start := time.Now()
	e.create(secret(src, "push-many", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateTo: manyList}))
	e.create(secret(src, "allow-many", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, e.allow(manyList)))
	e.create(secret(src, "allow-long", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, e.allow(longEntry)))
	e.create(secret(app, "many", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/allow-many"}))
	e.create(secret(app, "long", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/allow-long"}))

	msg := e.waitEvent(src, "push-many", replicate.ReasonInvalidAnnotation)
	assert.Contains(t, msg, "10001 entries")
	assert.Less(t, len(msg), 1024, "the Event does not repeat the annotation")
	assert.Contains(t, e.waitEvent(src, "allow-many", replicate.ReasonInvalidAnnotation), "10001 entries")
	assert.Contains(t, e.waitEvent(src, "allow-long", replicate.ReasonInvalidAnnotation), "bytes long")
	e.waitEvent(app, "many", replicate.ReasonDenied)
	e.waitEvent(app, "long", replicate.ReasonDenied)
	t.Logf("refused within %s", time.Since(start).Round(time.Millisecond))
	e.caughtUp(r)
	e.absent(app, "push-many")

	// Others are not held up.
	e.create(secret(src, "normal", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, e.allow(app)))
	e.create(secret(app, "normal", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/normal"}))
	e.waitData(app, "normal", map[string]string{"k": "v"})
}

// Another client keeps rewriting a replica in a hot loop: the replicator
// restores it, but with growing pauses, and other objects are served without
// delay meanwhile.
func TestFightingAnotherWriterIsBounded(t *testing.T) {
	e := newEnv(t)
	e.start()
	src, team := e.ns("src", nil), e.ns("team", nil)
	e.create(secret(src, "shared", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateTo: team}))
	e.waitData(team, "shared", map[string]string{"k": "v"})

	fight, stop := context.WithCancel(e.ctx)
	fought := make(chan int)
	go func() {
		n := 0
		for fight.Err() == nil {
			if s, err := e.get(team, "shared"); err == nil && string(s.Data["k"]) != "theirs" {
				s.Data["k"] = []byte("theirs")
				if _, err := admin.CoreV1().Secrets(team).Update(e.ctx, s, metav1.UpdateOptions{}); err == nil {
					n++
				}
			}
			time.Sleep(50 * time.Millisecond) // the other writer's pace
		}
		fought <- n
	}()
	before, fightStart := e.writes.Load(), time.Now()
	// The fight is named: the replicator holds its writes back from now.
	e.waitEvent(team, "shared", replicate.ReasonFightingWriter)
	// Meanwhile a new pull target is filled at once.
	app := e.ns("app", nil)
	e.create(secret(src, "other", corev1.SecretTypeOpaque, map[string]string{"x": "y"}, e.allow(app)))
	start := time.Now()
	e.create(secret(app, "other", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/other"}))
	e.waitData(app, "other", map[string]string{"x": "y"})
	assert.Less(t, time.Since(start), 2*time.Second, "other objects are not delayed")
	// The bounds below are the write guard's schedule over 15 s: the
	// window is about time.
	time.Sleep(time.Until(fightStart.Add(15 * time.Second)))
	stop()
	theirs := <-fought
	ours := e.writes.Load() - before - 1 // the fill of app/other
	t.Logf("in 15 s the other writer wrote %d times, the replicator %d", theirs, ours)
	// A hot loop: three restores at once, then pauses of 5 and 10 s.
	assert.LessOrEqual(t, ours, int64(8), "bounded writes")
	assert.GreaterOrEqual(t, ours, int64(3), "it did keep restoring")
	// Once the other writer stops, the replica is restored.
	e.eventually(40*time.Second, "replica restored", func() error {
		s, err := e.get(team, "shared")
		if err != nil {
			return err
		}
		if string(s.Data["k"]) != "v" {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
