package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubereplicator/replicator/internal/testsupport"
	"github.com/kubereplicator/replicator/replicate"
)

// TestBinaryWithDefaultPrefix runs the built binary the way a user would:
// kubernetes-replicator's annotations, health endpoints, trace logging with no
// secret data in it, and a clean stop on SIGTERM.
func TestBinaryWithDefaultPrefix(t *testing.T) {
	e := newEnv(t)
	e.a = replicate.NewAnnotations(replicate.DefaultPrefix)
	p := e.startReplicator("replicator", "--log-level", "trace", "--log-format", "json")
	status, logs := p.Addr(), p.logs
	code, err := httpStatus("http://" + status + "/healthz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)

	certs, app := e.ns("certs", nil), e.ns("app", nil)
	const secretValue = "PRIVATE-KEY-MATERIAL-3f9a"
	e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "CERT", "tls.key": secretValue}, e.allow(app)))
	created := time.Now()
	e.create(e.tlsPlaceholder(app, "wildcard", certs+"/wildcard"))
	e.waitData(app, "wildcard", map[string]string{"tls.crt": "CERT", "tls.key": secretValue})
	t.Logf("placeholder filled by the binary %s after creation", time.Since(created).Round(time.Millisecond))
	e.create(e.tlsPlaceholder(app, "denied", certs+"/nothing-here"))
	e.waitEvent(app, "denied", replicate.ReasonSourceNotFound)

	// The metrics endpoint counts what happened, without object names.
	e.eventually(wait, "metrics", func() error {
		m, err := testsupport.Scrape("http://" + status + "/metrics")
		if err != nil {
			return err
		}
		if got := m.Value("replicator_writes_total", map[string]string{"kind": "Secret", "mode": "pull", "action": "update"}); got < 1 {
			return fmt.Errorf("pull writes = %v", got)
		}
		if got := m.Value("replicator_problems_total", map[string]string{"kind": "Secret", "reason": replicate.ReasonSourceNotFound}); got < 1 {
			return fmt.Errorf("SourceNotFound problems = %v", got)
		}
		for name, labels := range map[string]map[string]string{
			"workqueue_adds_total":                  {"name": "secrets"},
			"rest_client_requests_total":            {"method": "PUT"},
			"replicator_managed_objects":            {"kind": "Secret", "mode": "pull"},
			"replicator_reconcile_duration_seconds": nil,
		} {
			if _, ok := m.Families[name]; !ok {
				return fmt.Errorf("no %s", name)
			}
			if name != "replicator_reconcile_duration_seconds" && m.Value(name, labels) < 1 {
				return fmt.Errorf("%s%v = %v", name, labels, m.Value(name, labels))
			}
		}
		if got := m.Value("replicator_managed_objects", map[string]string{"kind": "Secret", "mode": "pull"}); got != 2 {
			return fmt.Errorf("managed pull targets = %v, want 2", got)
		}
		if got := m.Value("replicator_build_info", nil); got != 1 {
			return fmt.Errorf("build info = %v", got)
		}
		if strings.Contains(m.Raw, secretValue) || strings.Contains(m.Raw, "wildcard") {
			return fmt.Errorf("object names or data in metrics")
		}
		return nil
	})

	require.NoError(t, p.Signal(syscall.SIGTERM))
	select {
	case <-p.Exited():
		assert.NoError(t, p.ExitErr(), "clean exit on SIGTERM")
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10 s of SIGTERM")
	}
	out := logs.String()
	assert.Contains(t, out, "pull target written")
	assert.NotContains(t, out, secretValue, "secret data in the logs")
}

func TestBinaryRejectsInvalidFlags(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	t.Parallel()
	for _, args := range [][]string{
		{"--workers", "0"},
		{"--log-format", "xml"},
		{"--log-level", "loud"},
		{"--exclude-namespaces", "kube-(system"},
		{"--annotation-prefix", "not a prefix"},
		{"--kube-api-qps", "0"},
		{"--no-such-flag"},
	} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%v", args)
		assert.Equal(t, 2, exit.ExitCode(), "%v: %s", args, out)
		assert.NotContains(t, string(out), "panic", "%v", args)
	}
}
