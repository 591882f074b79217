package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Setup is what a Replicator is made of. The binary and the end-to-end tests
// fill it alike, so the tests run the wiring users run.
type Setup struct {
	// Client reads and writes this cluster.
	Client kubernetes.Interface
	// Kinds are the kinds to replicate; only theirs are watched.
	Kinds []Kind
	// Options are given to the controller of every kind.
	Options Options
	// Resync is how often the informers hand every cached object over
	// again.
	Resync time.Duration
	// SourceClusters are other clusters placeholders here may pull from,
	// for the kinds that can come from another cluster
	// (Kind.FromOtherClusters).
	SourceClusters []SourceCluster
}

// Replicator is the controllers of the enabled kinds over one shared
// informer factory, and the source clusters they pull from.
type Replicator struct {
	factory     informers.SharedInformerFactory
	controllers []*Controller
	// clusters are the source clusters, each with its Remotes.
	clusters []*sourceCluster
}

// NewReplicator wires a Replicator from s.
func NewReplicator(s Setup) (*Replicator, error) {
	// The cache reads the dialects read on any kind: sources and mirrors
	// that only carry another dialect's annotations keep their data.
	a := s.Options.Annotations
	if s.Options.Log == nil {
		s.Options.Log = logrus.StandardLogger()
	}
	if s.Options.Metrics == nil {
		s.Options.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	r := &Replicator{
		factory: informers.NewSharedInformerFactoryWithOptions(s.Client, s.Resync,
			informers.WithTransform(CacheTransform(a, s.Options.AllowAll))),
	}
	for _, sc := range s.SourceClusters {
		cluster, err := newSourceCluster(sc, s.Options.Log, s.Options.Metrics)
		if err != nil {
			return nil, err
		}
		r.clusters = append(r.clusters, cluster)
	}
	for _, k := range s.Kinds {
		opts := s.Options
		if k.FromOtherClusters() {
			remotes, err := r.newRemotes(k, s)
			if err != nil {
				return nil, err
			}
			opts.Remotes = remotes
		}
		c, err := NewController(k, s.Client, r.factory, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.Name(), err)
		}
		r.controllers = append(r.controllers, c)
	}
	return r, nil
}

// newRemotes watches kind in each source cluster, by cluster name.
func (r *Replicator) newRemotes(kind Kind, s Setup) (map[string]*Remote, error) {
	remotes := map[string]*Remote{}
	for _, cluster := range r.clusters {
		remote, err := NewRemote(RemoteOptions{
			Name: cluster.name, Kind: kind, Client: cluster.client, Namespaces: cluster.namespaces,
			// --allow-all never opens another cluster's objects: keep
			// only the data of those that opt in.
			Transform: CacheTransform(s.Options.Annotations, false),
			Resync:    s.Resync, Log: s.Options.Log, Metrics: s.Options.Metrics,
		})
		if err != nil {
			return nil, err
		}
		cluster.remotes = append(cluster.remotes, remote)
		remotes[cluster.name] = remote
	}
	return remotes, nil
}

// ReadyChecks returns a check per kind ("secrets", ...): whether its caches
// have synced.
func (r *Replicator) ReadyChecks() map[string]func() error {
	checks := map[string]func() error{}
	for _, c := range r.controllers {
		checks[strings.ToLower(c.kind.Plural())] = c.Ready
	}
	return checks
}

// SourceClusterChecks returns a check per source cluster: whether every
// watched namespace there can be read (for every kind watched there).
func (r *Replicator) SourceClusterChecks() map[string]func() error {
	checks := map[string]func() error{}
	for _, c := range r.clusters {
		checks[c.name] = c.check
	}
	return checks
}

// Start starts the informers and the watches of the source clusters, until
// ctx ends. The function it returns waits for them to stop after that.
func (r *Replicator) Start(ctx context.Context) (wait func()) {
	r.factory.Start(ctx.Done())
	var clusters sync.WaitGroup
	for _, c := range r.clusters {
		clusters.Go(func() { c.run(ctx) })
	}
	return func() {
		clusters.Wait()
		r.factory.Shutdown()
	}
}

// Run works every kind's queue until ctx ends: what the leader does.
func (r *Replicator) Run(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range r.controllers {
		wg.Go(func() {
			if err := c.Run(ctx); err != nil && ctx.Err() == nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", c.kind.Name(), err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Work reports how much work the controllers have done so far (items
// reconciled and writes made), and whether nothing is queued or being
// reconciled now.
func (r *Replicator) Work() (done uint64, idle bool) {
	idle = true
	for _, c := range r.controllers {
		done += c.work.Load()
		idle = idle && c.idle()
	}
	return done, idle
}

// WaitSettled waits until every controller has reconciled what it found at
// start-up, or ctx ends (then it returns ctx's error).
func (r *Replicator) WaitSettled(ctx context.Context) error {
	for _, c := range r.controllers {
		select {
		case <-c.Settled():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
