// Package testsupport is what the end-to-end tests, make bench and make soak
// share: the replicator built and run as a separate process (started against
// a kubeconfig with its status endpoints on a free loopback port, read from
// outside: /proc for memory, /metrics for counters), a control plane with a
// client for the test's own requests, and small HTTP helpers.
package testsupport

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build compiles the replicator (the module in the working directory) into
// dir and returns the binary's path.
func Build(dir string) (string, error) {
	binary := filepath.Join(dir, "replicator")
	if b, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the replicator: %v: %s", err, b)
	}
	return binary, nil
}

// Process is a running replicator.
type Process struct {
	cmd    *exec.Cmd
	status string
	done   chan struct{}
	err    error
}

// Start runs binary against kubeconfig with its status endpoints on a free
// loopback port, its output to out, and waits until /readyz answers 200.
func Start(binary, kubeconfig string, out io.Writer, args ...string) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p := &Process{status: addr, done: make(chan struct{})}
	args = append([]string{"--kubeconfig", kubeconfig, "--status-addr", p.status}, args...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	// Never outlive the test or tool that started it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	err = Poll(60*time.Second, func() (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("exited: %v", p.err)
		default:
		}
		code, _, err := HTTPGet("http://" + p.status + "/readyz")
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("replicator not ready: %w", err)
	}
	return p, nil
}

// Addr is the address of the status endpoints.
func (p *Process) Addr() string { return p.status }

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited is closed once the process has exited; ExitErr then says how.
func (p *Process) Exited() <-chan struct{} { return p.done }

// ExitErr is the process's exit status once Exited is closed.
func (p *Process) ExitErr() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM and waits for the exit.
func (p *Process) Stop() {
	_ = p.Signal(syscall.SIGTERM)
	<-p.done
}

// Memory reads a field of /proc/PID/status (VmRSS, VmHWM), in MiB; -1 if
// it cannot be read.
func (p *Process) Memory(field string) float64 { return ProcMemory(p.cmd.Process.Pid, field) }

// ProcMemory reads a field of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...)
// in MiB; -1 if it cannot be read.
func ProcMemory(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// Metrics scrapes /metrics.
func (p *Process) Metrics() (*Metrics, error) { return Scrape("http://" + p.status + "/metrics") }

// SaveHeapProfile writes /debug/pprof/heap (the process must run with
// --profiling) to path, after a garbage collection: what it shows is live.
func (p *Process) SaveHeapProfile(path string) error {
	return p.saveProfile(path, "heap?gc=1")
}

// SaveCPUProfile writes a CPU profile of the next d to path (the process
// must run with --profiling).
func (p *Process) SaveCPUProfile(path string, d time.Duration) error {
	return p.saveProfile(path, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())))
}

func (p *Process) saveProfile(path, query string) error {
	resp, err := http.Get("http://" + p.status + "/debug/pprof/" + query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Poll calls done every 50 ms until it is true, fails, or timeout passes.
func Poll(timeout time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not done within %s", timeout)
}
