package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets a test run the real program in a child process: the test
// binary re-executed with REPLICATOR_RUN_MAIN set runs run() with the
// arguments in that variable and exits with its code.
func TestMain(m *testing.M) {
	if raw := os.Getenv("REPLICATOR_RUN_MAIN"); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			panic(err)
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestExitsSoonAfterSIGTERM stops the replicator once client-go has been
// backing off from a bad API server for a while (its backoff then exceeds
// the grace period), and checks that the process is gone within 5 s.
func TestExitsSoonAfterSIGTERM(t *testing.T) {
	const runFor = 14 * time.Second
	tests := map[string]struct {
		server func(t *testing.T) string
		flags  []string
	}{
		"the API server cannot be reached": {server: unreachableServer},
		"the API server refuses every request": {server: func(t *testing.T) string {
			s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
			}))
			t.Cleanup(s.Close)
			return s.URL
		}},
		"the API server accepts connections and never answers":      {server: hangingServer},
		"the API server cannot be reached, without leader election": {server: unreachableServer, flags: []string{"--leader-elect=false"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kubeconfig := writeKubeconfig(t, tc.server(t))
			args := append([]string{"--kubeconfig", kubeconfig, "--status-addr", "127.0.0.1:0", "--log-format", "json"}, tc.flags...)
			raw, err := json.Marshal(args)
			require.NoError(t, err)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "REPLICATOR_RUN_MAIN="+string(raw))
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			select {
			case err := <-exited:
				t.Fatalf("the replicator exited before it was stopped: %v\n%s", err, out.String())
			case <-time.After(runFor):
			}
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			signalled := time.Now()
			select {
			case err := <-exited:
				took := time.Since(signalled)
				t.Logf("exited %.1f s after SIGTERM", took.Seconds())
				assert.NoError(t, err, "a requested stop is a clean exit")
				assert.Less(t, took, 5*time.Second)
				assert.Contains(t, out.String(), `"msg":"replicator shut down"`)
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running 10 s after SIGTERM\n%s", out.String())
			}
		})
	}
}

// unreachableServer is an address where nothing listens.
func unreachableServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "https://" + addr
}

// hangingServer accepts connections and never reads or answers.
func hangingServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "https://" + l.Addr().String()
}

func writeKubeconfig(t *testing.T, server string) string {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	config := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "` + server + `", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: test}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	return path
}
