package replicate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// SourceCluster is another cluster objects may be pulled from.
type SourceCluster struct {
	Name string
	// Kubeconfig is the path of the kubeconfig to read the cluster with.
	// It and the files it names (token, CA bundle, client certificate and
	// key) are read again when any of them changes, and the cluster is then
	// watched afresh with them. The identity needs only list and watch, on
	// the kinds that can come from another cluster, in Namespaces.
	Kubeconfig string
	// Configure adjusts each client configuration built from Kubeconfig
	// (user agent, wire format); nil: none.
	Configure func(*rest.Config)
	// Client, instead of Kubeconfig, is a client that never changes.
	Client     kubernetes.Interface
	Namespaces []string
}

// sourceCluster is the connection to one source cluster, shared by the
// Remotes of every kind read there: it reads the credentials again when
// their files change and reconnects the Remotes with them, and it reports
// the health of the cluster as a whole.
type sourceCluster struct {
	name       string
	namespaces []string
	// client is the first client, from the credentials as they were at
	// start; creds are nil for a client that never changes.
	client  kubernetes.Interface
	creds   *credentials
	remotes []*Remote
	log     logrus.FieldLogger
	metrics *Metrics
	// credsProblem is the last reason the credentials could not be read,
	// logged once.
	credsProblem string

	mu       sync.Mutex
	lastSync time.Time
}

// newSourceCluster connects to sc: its first client, from the credentials as
// they are at start.
func newSourceCluster(sc SourceCluster, log logrus.FieldLogger, metrics *Metrics) (*sourceCluster, error) {
	s := &sourceCluster{name: sc.Name, namespaces: sc.Namespaces, client: sc.Client, log: log.WithField("cluster", sc.Name), metrics: metrics}
	// Every series of the cluster exists from the start, at 0, so that
	// alerts and dashboards can read them before anything happened (the
	// last sync 0: never).
	metrics.remoteErrors.WithLabelValues(sc.Name)
	metrics.credentialReloads.WithLabelValues(sc.Name)
	for _, reason := range []string{"credentials", "answered", "recovered"} {
		metrics.remoteReconnects.WithLabelValues(sc.Name, reason)
	}
	metrics.clusterLastSync.WithLabelValues(sc.Name)
	if sc.Kubeconfig == "" {
		if sc.Client == nil {
			return nil, fmt.Errorf("source cluster %s: neither a kubeconfig nor a client", sc.Name)
		}
		return s, nil
	}
	s.creds = &credentials{path: sc.Kubeconfig, configure: sc.Configure}
	var err error
	if s.client, err = s.creds.load(); err != nil {
		return nil, fmt.Errorf("source cluster %s: %w", sc.Name, err)
	}
	return s, nil
}

// run runs the Remotes, and once a second reads the credentials again and
// reports, until ctx ends.
func (s *sourceCluster) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range s.remotes {
		wg.Go(func() { r.Run(ctx) })
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.reload()
		s.report()
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

// reload reconnects the Remotes when the credentials changed.
func (s *sourceCluster) reload() {
	if s.creds == nil {
		return
	}
	client, err := s.creds.changed()
	if err != nil {
		if err.Error() != s.credsProblem {
			s.log.WithError(err).Warn("source cluster credentials cannot be read, the last ones stay in use")
		}
		s.credsProblem = err.Error()
		return
	}
	s.credsProblem = ""
	if client == nil {
		return
	}
	s.log.Info("source cluster credentials changed, watching again with them")
	s.metrics.credentialReloads.WithLabelValues(s.name).Inc()
	for _, r := range s.remotes {
		r.Reconnect(client)
	}
}

// report sets the cluster's metrics.
func (s *sourceCluster) report() {
	var namespaces, up int
	rejected := false
	for _, r := range s.remotes {
		h := r.health()
		namespaces, up = namespaces+h.namespaces, up+h.up
		rejected = rejected || h.rejected
	}
	connected := up == namespaces
	s.mu.Lock()
	if connected {
		s.lastSync = time.Now()
	}
	lastSync := s.lastSync
	s.mu.Unlock()
	s.metrics.clusterConnected.WithLabelValues(s.name).Set(flag(connected))
	s.metrics.clusterRejected.WithLabelValues(s.name).Set(flag(rejected))
	if len(s.remotes) > 0 {
		s.metrics.clusterNamespaces.WithLabelValues(s.name).Set(float64(len(s.remotes[0].namespaces)))
	}
	if !lastSync.IsZero() {
		s.metrics.clusterLastSync.WithLabelValues(s.name).Set(float64(lastSync.Unix()))
	}
}

// check reports whether every watched namespace can be read, for every
// kind; if not, which cannot and why, and since when the caches are stale.
func (s *sourceCluster) check() error {
	var errs []error
	for _, r := range s.remotes {
		errs = append(errs, r.Check())
	}
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	s.mu.Lock()
	lastSync := s.lastSync
	s.mu.Unlock()
	if lastSync.IsZero() {
		return fmt.Errorf("%w; never connected since start", err)
	}
	return fmt.Errorf("%w; last connected %s ago", err, time.Since(lastSync).Round(time.Second))
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
