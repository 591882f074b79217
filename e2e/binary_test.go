package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubereplicator/replicator/replicate"
)

// syncBuffer is a bytes.Buffer safe for a process writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func httpStatus(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestBinaryWithDefaultPrefix runs the built binary the way a user would:
// kubernetes-replicator's annotations, health endpoints, trace logging with no
// secret data in it, and a clean stop on SIGTERM.
func TestBinaryWithDefaultPrefix(t *testing.T) {
	e := newEnv(t)
	e.a = replicate.NewAnnotations(replicate.DefaultPrefix)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, cluster.WriteKubeconfig(kubeconfig, cluster.Config))
	status := freeAddr(t)
	var logs syncBuffer
	cmd := exec.Command(binary, "--kubeconfig", kubeconfig, "--status-addr", status, "--log-level", "trace", "--log-format", "json")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("replicator output:\n%s", logs.String())
		}
	})

	e.eventually(wait, "readyz", func() error {
		code, err := httpStatus("http://" + status + "/readyz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
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

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		assert.NoError(t, err, "clean exit on SIGTERM")
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
