// Command controlplane runs a local etcd and kube-apiserver for `make run`,
// prints the KUBECONFIG line to use them, and stops them on Ctrl-C. Objects
// persist in the data folder between runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubereplicator/replicator/controlplane"
)

func main() {
	binDir := flag.String("bin-dir", controlplane.BinDirFromEnv(), "folder with etcd and kube-apiserver (tools/build.sh prints it)")
	dir := flag.String("dir", ".local/controlplane", "folder for data, certificates, logs and the kubeconfig")
	readyFile := flag.String("ready-file", "", "once ready, write the kubeconfig path into this file")
	flag.Parse()
	if *binDir == "" {
		fmt.Fprintln(os.Stderr, "controlplane: -bin-dir (or REPLICATOR_TOOLS_BIN) is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: *binDir, Dir: *dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
	fmt.Printf("export KUBECONFIG=%s\n", cp.KubeconfigPath)
	fmt.Printf("# control plane ready in %s at %s; Ctrl-C stops it\n", time.Since(start).Round(time.Millisecond), cp.APIServerURL)
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, []byte(cp.KubeconfigPath), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "controlplane:", err)
		}
	}
	<-ctx.Done()
	if err := cp.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane: stopping:", err)
		os.Exit(1)
	}
}
