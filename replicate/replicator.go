package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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

// SourceCluster is another cluster objects may be pulled from.
type SourceCluster struct {
	Name string
	// Client needs only list and watch, on the kinds that can come from
	// another cluster, in Namespaces.
	Client     kubernetes.Interface
	Namespaces []string
}

// Replicator is the controllers of the enabled kinds over one shared
// informer factory, and the source clusters they pull from.
type Replicator struct {
	factory     informers.SharedInformerFactory
	controllers []*Controller
	// remotes are the source clusters' watches, by kind, then by cluster.
	remotes map[string]map[string]*Remote
}

// NewReplicator wires a Replicator from s.
func NewReplicator(s Setup) (*Replicator, error) {
	// The cache reads the dialects read on any kind: sources and mirrors
	// that only carry another dialect's annotations keep their data.
	a := s.Options.Annotations
	r := &Replicator{
		factory: informers.NewSharedInformerFactoryWithOptions(s.Client, s.Resync,
			informers.WithTransform(CacheTransform(a, s.Options.AllowAll))),
		remotes: map[string]map[string]*Remote{},
	}
	for _, k := range s.Kinds {
		opts := s.Options
		if k.FromOtherClusters() {
			remotes, err := newRemotes(k, s, a)
			if err != nil {
				return nil, err
			}
			r.remotes[k.Name()], opts.Remotes = remotes, remotes
		}
		c, err := NewController(k, s.Client, r.factory, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.Name(), err)
		}
		r.controllers = append(r.controllers, c)
	}
	return r, nil
}

// newRemotes watches kind in each of s's source clusters, by cluster name.
func newRemotes(kind Kind, s Setup, a Annotations) (map[string]*Remote, error) {
	remotes := map[string]*Remote{}
	for _, sc := range s.SourceClusters {
		remote, err := NewRemote(RemoteOptions{
			Name: sc.Name, Kind: kind, Client: sc.Client, Namespaces: sc.Namespaces,
			// --allow-all never opens another cluster's objects: keep
			// only the data of those that opt in.
			Transform: CacheTransform(a, false),
			Resync:    s.Resync, Log: s.Options.Log, Metrics: s.Options.Metrics,
		})
		if err != nil {
			return nil, err
		}
		remotes[sc.Name] = remote
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
	byCluster := map[string][]func() error{}
	for _, remotes := range r.remotes {
		for name, remote := range remotes {
			byCluster[name] = append(byCluster[name], remote.Check)
		}
	}
	checks := map[string]func() error{}
	for name, kinds := range byCluster {
		checks[name] = kinds[0]
		if len(kinds) > 1 {
			checks[name] = func() error {
				var errs []error
				for _, check := range kinds {
					errs = append(errs, check())
				}
				return errors.Join(errs...)
			}
		}
	}
	return checks
}

// Start starts the informers and the watches of the source clusters, until
// ctx ends. The function it returns waits for them to stop after that.
func (r *Replicator) Start(ctx context.Context) (wait func()) {
	r.factory.Start(ctx.Done())
	var remotes sync.WaitGroup
	for _, byCluster := range r.remotes {
		for _, remote := range byCluster {
			remotes.Go(func() { remote.Run(ctx) })
		}
	}
	return func() {
		remotes.Wait()
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
