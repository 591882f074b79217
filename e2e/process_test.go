package e2e

import (
	"bytes"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubereplicator/replicator/internal/testsupport"
)

// This file runs the built replicator as a process and reads it from
// outside.

// proc is a replicator running as a separate process, with its output.
type proc struct {
	*testsupport.Process
	name string
	logs *syncBuffer
}

// startReplicator runs the built binary against the test cluster as admin
// with args and waits until /readyz answers 200.
func (e *env) startReplicator(name string, args ...string) *proc {
	e.t.Helper()
	return e.startReplicatorWithKubeconfig(name, e.adminKubeconfig(), args...)
}

// startReplicatorWithKubeconfig is startReplicator with another identity.
func (e *env) startReplicatorWithKubeconfig(name, kubeconfig string, args ...string) *proc {
	e.t.Helper()
	return e.startBinary(name, binary, kubeconfig, args...)
}

// startBinary is startReplicatorWithKubeconfig with another build of the
// binary.
func (e *env) startBinary(name, bin, kubeconfig string, args ...string) *proc {
	e.t.Helper()
	p := &proc{name: name, logs: &syncBuffer{}}
	var err error
	p.Process, err = testsupport.Start(bin, kubeconfig, p.logs, args...)
	e.t.Cleanup(func() {
		if p.Process != nil {
			_ = p.Signal(syscall.SIGKILL)
		}
		_, _ = suiteLog.Write([]byte(p.logs.String()))
		if e.t.Failed() {
			e.t.Logf("%s output:\n%s", name, p.logs.String())
		}
	})
	require.NoError(e.t, err, "%s", name)
	return p
}

// metrics scrapes the process's /metrics.
func (p *proc) metrics() (*testsupport.Metrics, error) {
	return testsupport.Scrape("http://" + p.Addr() + "/metrics")
}

// metric reads one value from the process's /metrics.
func (p *proc) metric(name string, labels map[string]string) (float64, error) {
	m, err := p.metrics()
	if err != nil {
		return 0, err
	}
	return m.Value(name, labels), nil
}

func (p *proc) leading() bool {
	v, err := p.metric("replicator_leader", nil)
	return err == nil && v == 1
}

// waitLeading waits until p holds the leader Lease.
func (e *env) waitLeading(timeout time.Duration, what string, p *proc) {
	e.t.Helper()
	e.eventually(timeout, what, func() error {
		if !p.leading() {
			return fmt.Errorf("%s not leading", p.name)
		}
		return nil
	})
}

func (p *proc) writes() float64 {
	v, _ := p.metric("replicator_writes_total", map[string]string{"kind": "Secret"})
	return v
}

// stop ends the process with SIGTERM (it hands the leader Lease over).
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.Signal(syscall.SIGTERM))
	select {
	case <-p.Exited():
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop within 15 s of SIGTERM", p.name)
	}
}

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
	addr, err := testsupport.FreeAddr()
	require.NoError(t, err)
	return addr
}

func httpStatus(url string) (int, error) {
	code, _, err := testsupport.HTTPGet(url)
	return code, err
}

// waitReadyz waits until the process's /readyz answers want.
func (e *env) waitReadyz(timeout time.Duration, what string, p *proc, want int) {
	e.t.Helper()
	e.eventually(timeout, what, func() error {
		if code, err := httpStatus("http://" + p.Addr() + "/readyz"); err != nil || code != want {
			return fmt.Errorf("readyz %d (%v)", code, err)
		}
		return nil
	})
}
