package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

func TestLeaderElectionOneWriterAndFailover(t *testing.T) {
	e := newEnv(t)
	args := []string{"--annotation-prefix", e.prefix, "--leader-elect-lease-name", fmt.Sprintf("e%d-lease", e.id), "--leader-elect-namespace", "default"}
	a, b := e.startReplicator("a", args...), e.startReplicator("b", args...)

	var leader, standby *proc
	e.eventually(30*time.Second, "one leader", func() error {
		switch {
		case a.leading() && !b.leading():
			leader, standby = a, b
		case b.leading() && !a.leading():
			leader, standby = b, a
		default:
			return fmt.Errorf("a leading %v, b leading %v", a.leading(), b.leading())
		}
		return nil
	})

	src, app := e.ns("src", nil), e.ns("app", nil)
	e.create(secret(src, "wildcard", corev1.SecretTypeTLS, tlsV1, e.allow(app)))
	fill := func(names ...string) {
		for _, n := range names {
			e.create(e.tlsPlaceholder(app, n, src+"/wildcard"))
		}
		for _, n := range names {
			e.waitData(app, n, tlsV1)
		}
	}
	fill("p1", "p2", "p3", "p4", "p5")
	e.caughtUp(leader)
	assert.Equal(t, 5.0, leader.writes(), "the leader wrote each placeholder once")
	assert.Equal(t, 0.0, standby.writes(), "the standby wrote nothing")

	// SIGTERM: the leader releases the Lease and exits; the standby takes
	// over within a retry period or two.
	stopped := time.Now()
	require.NoError(t, leader.Signal(syscall.SIGTERM))
	select {
	case <-leader.Exited():
		assert.NoError(t, leader.ExitErr(), "clean exit")
		t.Logf("leader exited %s after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("leader did not exit within 10 s of SIGTERM")
	}
	e.waitLeading(10*time.Second, "standby takes over after a release", standby)
	t.Logf("takeover after SIGTERM: %s", time.Since(stopped).Round(time.Millisecond))
	fill("p6", "p7")
	// The new leader has reconciled everything it had queued as a standby,
	// and the new placeholders: a rewrite the takeover caused has been made.
	e.caughtUp(standby)
	assert.Equal(t, 2.0, standby.writes(), "the new leader rewrote nothing that was in sync")

	// SIGKILL: no release; a fresh standby takes over once the Lease expires.
	c := e.startReplicator("c", args...)
	leader = standby
	killed := time.Now()
	require.NoError(t, leader.Signal(syscall.SIGKILL))
	e.waitLeading(30*time.Second, "standby takes over after the lease expires", c)
	takeover := time.Since(killed)
	t.Logf("takeover after SIGKILL: %s (lease duration 15 s)", takeover.Round(time.Millisecond))
	assert.Less(t, takeover, 25*time.Second)
	fill("p8")
	e.caughtUp(c)
	assert.Equal(t, 1.0, c.writes(), "no write storm after the failover")
}
