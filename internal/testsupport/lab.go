package testsupport

import (
	"context"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubereplicator/replicator/controlplane"
)

// Lab is a private control plane, the replicator built for it, and a client
// for the lab's own requests, all in one temporary folder.
type Lab struct {
	Dir     string
	Binary  string
	Cluster *controlplane.ControlPlane
	// Client has no client-side rate limit: the lab's own requests are
	// not what is measured.
	Client kubernetes.Interface
}

// NewLab builds the replicator and starts a control plane from the binaries
// in binDir. Close removes everything.
func NewLab(ctx context.Context, name, binDir string) (*Lab, error) {
	dir, err := os.MkdirTemp("", "replicator-"+name+"-")
	if err != nil {
		return nil, err
	}
	l := &Lab{Dir: dir}
	if l.Binary, err = Build(dir); err != nil {
		l.Close()
		return nil, err
	}
	if l.Cluster, err = controlplane.Start(ctx, controlplane.Options{BinDir: binDir, Dir: filepath.Join(dir, "cluster")}); err != nil {
		l.Close()
		return nil, err
	}
	cfg := rest.CopyConfig(l.Cluster.Config)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.WarningHandler = rest.NoWarnings{} // the test certificates are not PEM
	l.Client = kubernetes.NewForConfigOrDie(cfg)
	return l, nil
}

// Close stops the control plane and removes the folder.
func (l *Lab) Close() {
	if l.Cluster != nil {
		l.Cluster.Stop()
	}
	os.RemoveAll(l.Dir)
}
