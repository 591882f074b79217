// Package e2e tests the replicator against a real kube-apiserver and etcd
// started on loopback. `make test` builds them (tools/build.sh) and sets
// REPLICATOR_TOOLS_BIN; under CI=true a missing control plane is a failure.
//
// Every test gets its own namespaces and runs its own controller with its own
// annotation prefix, so tests run in parallel without seeing each other's
// objects.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubereplicator/replicator/controlplane"
)

var (
	cluster   *controlplane.ControlPlane
	admin     kubernetes.Interface
	binary    string // the replicator, built once for the tests that run it as a process
	skipWhy   string
	envSerial atomic.Int64
	// suiteLog collects what every controller of the run logged, at trace
	// level, and the output of every replicator process; secretValues are
	// the Secret data the tests wrote. No value may appear in the log.
	suiteLog     syncBuffer
	secretValues sync.Map
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin := controlplane.BinDirFromEnv()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: REPLICATOR_TOOLS_BIN is not set; under CI=true the end-to-end tests must run (use make test)")
			return 1
		}
		skipWhy = "REPLICATOR_TOOLS_BIN is not set (make test builds the control plane and sets it)"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "replicator-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	cluster, err = controlplane.Start(ctx, controlplane.Options{BinDir: bin, Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting control plane:", err)
		return 1
	}
	defer cluster.Stop()
	fmt.Printf("e2e: control plane ready in %s at %s\n", time.Since(start).Round(time.Millisecond), cluster.APIServerURL)
	// The tests' TLS data is not PEM; the API server's warnings about it are
	// noise.
	cluster.Config.WarningHandler = rest.NoWarnings{}
	admin = kubernetes.NewForConfigOrDie(cluster.Config)
	server, err := admin.Discovery().ServerVersion()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: reading the API server's version:", err)
		return 1
	}
	fmt.Printf("e2e: kube-apiserver %s\n", server.GitVersion)
	// make test-compat names the version it built: a run against another
	// one would prove nothing about it.
	if want := os.Getenv("REPLICATOR_EXPECT_KUBERNETES"); want != "" && server.GitVersion != want {
		fmt.Fprintf(os.Stderr, "e2e: the API server is %s, not the %s this run is for\n", server.GitVersion, want)
		return 1
	}

	binary = filepath.Join(dir, "replicator")
	build := exec.Command("go", append(append([]string{"build"}, raceFlags...), "-o", binary, "..")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the replicator:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		code = checkNoSecretData()
	}
	return code
}

// checkNoSecretData fails the run if any Secret value the tests wrote (of six
// characters or more, shorter ones occur by chance) is in suiteLog.
func checkNoSecretData() int {
	log := suiteLog.String()
	found, values := 0, 0
	secretValues.Range(func(k, _ any) bool {
		values++
		if v := k.(string); len(v) >= 6 && strings.Contains(log, v) {
			fmt.Fprintf(os.Stderr, "e2e: Secret data %q appears in the logs of the run\n", v)
			found++
		}
		return true
	})
	fmt.Printf("e2e: %d bytes of controller logs (trace level) checked for %d Secret values\n", len(log), values)
	if found > 0 {
		return 1
	}
	return 0
}
