package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNewcomerPathFromTheReadme is the first five minutes of a newcomer,
// timed: on a machine with no kubeconfig, `make run` starts a local control
// plane and the replicator and prints the KUBECONFIG line; then the
// README's walkthrough commands run as written (with that line pasted
// where the README says so) until the placeholder holds the certificate.
func TestNewcomerPathFromTheReadme(t *testing.T) {
	needTools(t)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	source := shBlock(t, string(readme), "kubectl -n certs create secret tls")
	placeholder := shBlock(t, string(readme), "replicate-from: certs/wildcard-tls")

	start := time.Now()
	home := t.TempDir()
	gocache, _ := exec.Command("go", "env", "GOCACHE").Output()
	gomodcache, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	run := exec.Command("make", "run")
	run.Dir = ".."
	// A home whose ~/.kube/config, like $KUBECONFIG, names some other
	// cluster (make run must use neither unless told to), and a control
	// plane of its own (make run keeps the data of .local between runs: a
	// second run would find the walkthrough's namespace there); the caches
	// of Go and of the tools stay where they are.
	elsewhere := "apiVersion: v1\nkind: Config\nclusters: [{name: prod, cluster: {server: \"https://192.0.2.1:6443\"}}]\n" +
		"contexts: [{name: prod, context: {cluster: prod}}]\ncurrent-context: prod\n"
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".kube"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, ".kube", "config"), []byte(elsewhere), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(home, "prod.kubeconfig"), []byte(elsewhere), 0o600))
	toolsCache := "REPLICATOR_TOOLS_CACHE=" + filepath.Dir(os.Getenv("REPLICATOR_TOOLS_BIN"))
	run.Env = append(withoutEnv(os.Environ(), "KUBECONFIG", "HOME", "REPLICATOR_LOCAL_DIR"), "HOME="+home, toolsCache, "REPLICATOR_LOCAL_DIR="+t.TempDir(),
		"KUBECONFIG="+filepath.Join(home, "prod.kubeconfig"),
		"GOCACHE="+strings.TrimSpace(string(gocache)), "GOMODCACHE="+strings.TrimSpace(string(gomodcache)))
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := run.StdoutPipe()
	require.NoError(t, err)
	run.Stderr = run.Stdout
	require.NoError(t, run.Start())
	exited := make(chan struct{})
	go func() { _ = run.Wait(); close(exited) }()
	// Ctrl-C, as the README says, stops everything make run started.
	stop := func() time.Duration {
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGINT)
		interrupted := time.Now()
		select {
		case <-exited:
			return time.Since(interrupted)
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-exited
			return time.Since(interrupted)
		}
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	var printed []string
	kubeconfig := ""
	// The lines make run prints, until its KUBECONFIG line or a deadline
	// (a make run that took some other cluster prints none and runs on).
	lines := make(chan string)
	go func() {
		scanner := bufio.NewScanner(out)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
	}()
	deadline := time.After(5 * time.Minute)
	for kubeconfig == "" {
		var line string
		var ok bool
		select {
		case line, ok = <-lines:
		case <-deadline:
		}
		if !ok {
			break
		}
		printed = append(printed, line)
		if v, found := strings.CutPrefix(strings.TrimSpace(line), "export KUBECONFIG="); found {
			kubeconfig = v
		}
	}
	go func() {
		for range lines {
		}
	}()
	require.NotEmpty(t, kubeconfig, "make run printed no KUBECONFIG line:\n%s", strings.Join(printed, "\n"))
	require.True(t, strings.HasPrefix(kubeconfig, "/"), "make run printed a KUBECONFIG line of its own local control plane, not %q", kubeconfig)
	require.NotContains(t, kubeconfig, home, "make run took a kubeconfig it was not given")
	ready := time.Since(start)

	// The commands as written; the KUBECONFIG line is the one make run
	// printed, as the README tells the reader to paste it.
	script := strings.Replace(source, "export KUBECONFIG=...", "export KUBECONFIG="+kubeconfig, 1) + "\n" + placeholder
	require.Contains(t, script, "export KUBECONFIG="+kubeconfig, "the walkthrough says where the KUBECONFIG line goes")
	// In a folder of its own (openssl writes there), where tools/ is the
	// clone's, as in the clone the README assumes.
	dir := t.TempDir()
	require.NoError(t, os.Symlink(mustAbs(t, "../tools"), filepath.Join(dir, "tools")))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(withoutEnv(os.Environ(), "KUBECONFIG"), toolsCache)
	cmdOut, err := cmd.CombinedOutput()
	require.NoError(t, err, "the walkthrough's commands failed:\n%s", redact(string(cmdOut)))

	kubectlPath := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "kubectl")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		crt, err := exec.CommandContext(ctx, kubectlPath, "--kubeconfig", kubeconfig, "-n", "shop", "get", "secret", "wildcard-tls", "-o", `jsonpath={.data.tls\.crt}`).Output()
		if err == nil && len(crt) > 100 {
			break
		}
		require.NoError(t, ctx.Err(), "the placeholder was not filled")
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("newcomer path: make run ready (build, control plane, replicator) in %s; the walkthrough's commands to a filled placeholder in %s more; %s in all",
		ready.Round(100*time.Millisecond), (time.Since(start) - ready).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	stopped = true
	took := stop()
	require.Less(t, took, 10*time.Second, "Ctrl-C on make run")
	t.Logf("newcomer path: Ctrl-C stopped make run in %s", took.Round(100*time.Millisecond))
}

// shBlock returns the README's first ```sh block that contains marker.
func shBlock(t *testing.T, readme, marker string) string {
	t.Helper()
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		if strings.Contains(m[1], marker) {
			return m[1]
		}
	}
	t.Fatalf("the README has no sh block with %q", marker)
	return ""
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}

// redact drops the data lines of `kubectl get -o yaml` from output shown
// on failure.
func redact(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "tls.crt:") || strings.Contains(l, "tls.key:") {
			l = fmt.Sprintf("%s: (redacted)", strings.SplitN(l, ":", 2)[0])
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
