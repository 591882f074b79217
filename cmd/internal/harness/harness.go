// Package harness runs the replicator as a separate process for make bench
// and make soak: built from this module, started against a kubeconfig with
// its status endpoints on a free loopback port, and read from outside
// (/proc for memory, /metrics for counters).
package harness

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
}

// Start runs binary against kubeconfig without leader election, its output
// to out, and waits until /readyz answers 200.
func Start(binary, kubeconfig string, out io.Writer, args ...string) (*Process, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Process{status: l.Addr().String()}
	l.Close()
	args = append([]string{"--kubeconfig", kubeconfig, "--status-addr", p.status, "--leader-elect=false"}, args...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	err = Poll(60*time.Second, func() (bool, error) {
		resp, err := http.Get("http://" + p.status + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("replicator not ready: %w", err)
	}
	return p, nil
}

// Stop sends SIGTERM and waits for the exit.
func (p *Process) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// Memory reads a field of /proc/PID/status (VmRSS, VmHWM), in MiB; -1 if
// it cannot be read.
func (p *Process) Memory(field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
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
func (p *Process) Metrics() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + p.status + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(body))
}

// SaveHeapProfile writes /debug/pprof/heap (the process must run with
// --profiling) to path.
func (p *Process) SaveHeapProfile(path string) error {
	resp, err := http.Get("http://" + p.status + "/debug/pprof/heap")
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

// Sum adds up a family's values (counters and gauges), by the value of one
// label ("" for all together).
func Sum(families map[string]*dto.MetricFamily, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range families[name].GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		out[key] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return out
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
