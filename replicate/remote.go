package replicate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// RemoteOptions configure a Remote.
type RemoteOptions struct {
	// Name is how placeholders here name the cluster: "<name>:<ns>/<name>".
	Name string
	// Kind is the kind watched there: one that can come from another
	// cluster (Kind.FromOtherClusters).
	Kind Kind
	// Client reads the remote cluster with the credentials configured for
	// it: list and watch of Kind in Namespaces is all it needs.
	Client kubernetes.Interface
	// Namespaces of the remote cluster watched for sources; nothing else
	// there is read.
	Namespaces []string
	// Transform is applied to every cached object (CacheTransform).
	Transform cache.TransformFunc
	Resync    time.Duration
	// SyncTimeout is how long a namespace may take to load before it counts
	// as unavailable; zero means 30 s.
	SyncTimeout time.Duration
	// FailureGrace is how long the requests of a namespace must keep
	// failing before it counts as unavailable; zero means 2 s. A single
	// failed request (a dropped connection, say) is retried at once and is
	// not worth an alarm.
	FailureGrace time.Duration
	Log          logrus.FieldLogger
	// Metrics receives counts; nil means metrics registered nowhere.
	Metrics *Metrics
}

// Remote is another cluster that placeholders here may pull objects of one
// kind from: one informer per configured namespace there, and whether each can be
// trusted right now. A namespace whose list or watch fails keeps its last
// cached state; Get then reports it unavailable instead of answering from it.
type Remote struct {
	name       string
	kind       Kind
	log        logrus.FieldLogger
	metrics    *Metrics
	timeout    time.Duration
	grace      time.Duration
	namespaces map[string]*remoteNamespace
	// listeners are added before Run and only read after.
	listeners []RemoteListener
}

// RemoteListener is told about a Remote's changes. Both functions only
// enqueue.
type RemoteListener struct {
	// Changed is called with "namespace/name" of a remote object that was
	// added, updated or deleted.
	Changed func(key string)
	// StateChanged is called when a remote namespace becomes available or
	// unavailable.
	StateChanged func(namespace string)
}

// remoteState is the state of one remote namespace's cache.
type remoteState int

const (
	// statePending: not loaded yet, and nothing has failed (yet).
	statePending remoteState = iota
	stateUp
	stateDown
)

type remoteNamespace struct {
	name     string
	informer cache.SharedIndexInformer

	mu sync.Mutex
	// err is the outcome of the last list or watch request: nil after a
	// success. failingSince is when the requests started failing.
	err          error
	failingSince time.Time
	// state and why are what was last reported.
	state remoteState
	why   string
}

// ErrNotWatched means a reference names a namespace of a remote cluster that
// is not configured to be watched.
var ErrNotWatched = errors.New("namespace not watched")

// UnavailableError means a remote namespace cannot be read right now. Pending
// is set while it is loading for the first time without having failed.
type UnavailableError struct {
	Cluster, Namespace string
	Pending            bool
	Reason             string
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("cluster %s, namespace %s: %s", e.Cluster, e.Namespace, e.Reason)
}

// NewRemote returns a Remote for opts.Kind; call Run to start it.
func NewRemote(opts RemoteOptions) (*Remote, error) {
	if errs := validation.IsDNS1123Label(opts.Name); len(errs) > 0 {
		return nil, fmt.Errorf("cluster name %q: %s", opts.Name, strings.Join(errs, "; "))
	}
	if opts.Kind == nil || !opts.Kind.FromOtherClusters() {
		return nil, fmt.Errorf("cluster %s: no kind that can come from another cluster to watch", opts.Name)
	}
	if len(opts.Namespaces) == 0 {
		return nil, fmt.Errorf("cluster %s: no namespaces to watch", opts.Name)
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	if opts.FailureGrace <= 0 {
		opts.FailureGrace = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	r := &Remote{
		name:       opts.Name,
		kind:       opts.Kind,
		log:        opts.Log.WithField("cluster", opts.Name),
		metrics:    opts.Metrics,
		timeout:    opts.SyncTimeout,
		grace:      opts.FailureGrace,
		namespaces: map[string]*remoteNamespace{},
	}
	for _, ns := range opts.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("cluster %s: namespace %q: %s", opts.Name, ns, strings.Join(errs, "; "))
		}
		if _, dup := r.namespaces[ns]; dup {
			continue
		}
		if err := r.watch(ns, opts); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// watch adds the informer of remote namespace ns.
func (r *Remote) watch(ns string, opts RemoteOptions) error {
	rn := &remoteNamespace{name: ns}
	rn.informer = cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(r.listWatch(opts.Client, rn), opts.Client),
		r.kind.newObject(),
		cache.SharedIndexInformerOptions{ResyncPeriod: opts.Resync},
	)
	if opts.Transform != nil {
		if err := rn.informer.SetTransform(opts.Transform); err != nil {
			return err
		}
	}
	if _, err := rn.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.changed(obj) },
		UpdateFunc: func(_, obj any) { r.changed(obj) },
		DeleteFunc: r.changed,
	}); err != nil {
		return err
	}
	r.namespaces[ns] = rn
	r.setUp(ns, 0)
	return nil
}

// listWatch lists and watches the objects of one remote namespace and
// remembers whether the last request succeeded.
func (r *Remote) listWatch(client kubernetes.Interface, rn *remoteNamespace) *cache.ListWatch {
	record := func(err error) {
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			// The watch fell behind the server's history: the reflector
			// lists again, which is routine.
			return
		}
		if err != nil {
			r.metrics.remoteErrors.WithLabelValues(r.name).Inc()
		}
		rn.mu.Lock()
		defer rn.mu.Unlock()
		switch {
		case err == nil:
			rn.err, rn.failingSince = nil, time.Time{}
		case rn.err == nil:
			rn.err, rn.failingSince = err, time.Now()
		default:
			rn.err = err
		}
	}
	objects := r.kind.remoteListWatch(client, rn.name)
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list, err := objects.ListWithContextFunc(ctx, opts)
			record(err)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			w, err := objects.WatchFuncWithContext(ctx, opts)
			record(err)
			return w, err
		},
	}
}

func (r *Remote) changed(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	r.metrics.remoteChanges.WithLabelValues(r.name).Inc()
	for _, l := range r.listeners {
		l.Changed(m.GetNamespace() + "/" + m.GetName())
	}
}

// Namespaces are the watched namespaces, sorted.
func (r *Remote) Namespaces() []string {
	names := make([]string, 0, len(r.namespaces))
	for n := range r.namespaces {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AddListener registers l; call it before Run.
func (r *Remote) AddListener(l RemoteListener) {
	r.listeners = append(r.listeners, l)
}

// Run starts the informers and watches their state until ctx ends.
func (r *Remote) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, rn := range r.namespaces {
		wg.Go(func() { rn.informer.RunWithContext(ctx) })
	}
	r.log.WithField("namespaces", strings.Join(r.Namespaces(), ",")).Info("watching source cluster")
	started := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, rn := range r.namespaces {
			r.observe(rn, time.Since(started))
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

// observe updates the state of rn and tells the listeners when it changed.
func (r *Remote) observe(rn *remoteNamespace, running time.Duration) {
	synced := rn.informer.HasSynced()
	rn.mu.Lock()
	state, why := statePending, "loading"
	switch {
	case rn.err != nil && time.Since(rn.failingSince) >= r.grace:
		state, why = stateDown, rn.err.Error()
	case rn.err != nil:
		// Within the grace: as before.
		state, why = rn.state, rn.why
	case synced:
		state, why = stateUp, ""
	case running > r.timeout:
		state, why = stateDown, fmt.Sprintf("not loaded after %s", r.timeout)
	}
	changed := state != rn.state
	rn.state, rn.why = state, why
	rn.mu.Unlock()
	if !changed {
		return
	}
	log := r.log.WithField("namespace", rn.name)
	switch state {
	case stateUp:
		log.Info("source cluster namespace available")
		r.setUp(rn.name, 1)
	case stateDown:
		log.WithField("reason", why).Warn("source cluster namespace unavailable, its placeholders keep their data")
		r.setUp(rn.name, 0)
	}
	for _, l := range r.listeners {
		l.StateChanged(rn.name)
	}
}

func (r *Remote) setUp(namespace string, v float64) {
	r.metrics.remoteUp.WithLabelValues(r.name, namespace).Set(v)
}

// Get returns the planner's view of the remote object namespace/name, nil if
// it does not exist there. It fails with ErrNotWatched for a namespace that
// is not configured, and with an *UnavailableError while the namespace's
// cache cannot be trusted.
func (r *Remote) Get(namespace, name string) (*Object, error) {
	rn := r.namespaces[namespace]
	if rn == nil {
		return nil, ErrNotWatched
	}
	rn.mu.Lock()
	state, why := rn.state, rn.why
	rn.mu.Unlock()
	if state != stateUp {
		return nil, &UnavailableError{Cluster: r.name, Namespace: namespace, Pending: state == statePending, Reason: why}
	}
	obj, exists, err := rn.informer.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !exists {
		return nil, nil
	}
	return r.kind.View(obj), nil
}

// Check reports whether every watched namespace is available, for a
// readiness endpoint of its own.
func (r *Remote) Check() error {
	var problems []string
	for _, ns := range r.Namespaces() {
		rn := r.namespaces[ns]
		rn.mu.Lock()
		if rn.state != stateUp {
			problems = append(problems, fmt.Sprintf("namespace %s: %s", ns, rn.why))
		}
		rn.mu.Unlock()
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
