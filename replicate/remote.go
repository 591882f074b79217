package replicate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	// it: list and watch of Kind in Namespaces is all it needs. Reconnect
	// replaces it.
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
	// ProbeAfter is how long a namespace's informer must have been running
	// before the cluster is asked directly, once a second while its
	// requests fail, whether it answers again; zero means 1 s. After ten
	// informers started that way without the namespace becoming available
	// it doubles with each further one (up to 30 s, as client-go's own
	// backoff), so that a namespace that answers a list but keeps failing
	// otherwise (a Role without watch, say) is not listed anew every
	// second; the ten cover a cluster that takes a while to serve
	// everything after a restart.
	ProbeAfter time.Duration
	Log        logrus.FieldLogger
	// Metrics receives counts; nil means metrics registered nowhere.
	Metrics *Metrics
}

// Remote is another cluster that placeholders here may pull objects of one
// kind from: one informer per configured namespace there, and whether each
// can be trusted right now. A namespace whose list or watch fails keeps its
// last cached state; Get then reports it unavailable instead of answering
// from it.
//
// A namespace's informer is replaced by a fresh one when the credentials
// change (Reconnect) and when the cluster answers again after its requests
// failed: client-go's own retries back off to 30 s, which a hub back after
// an upgrade should not have to wait for. The last cache answers until the
// new one has loaded.
type Remote struct {
	name    string
	kind    Kind
	log     logrus.FieldLogger
	metrics *Metrics
	timeout time.Duration
	grace   time.Duration
	probe   time.Duration
	// quickProbes is how many informers probes may start at the pace of
	// probe before it doubles.
	quickProbes int
	transform   cache.TransformFunc
	resync      time.Duration
	// client is what new informers read with: set by NewRemote, then
	// only by Run's goroutine, from reconnects.
	client     kubernetes.Interface
	reconnects chan kubernetes.Interface
	// loaded wakes Run when a new informer has loaded.
	loaded     chan struct{}
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
	// unavailable, or is read from a new cache.
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
	name string
	// The informer in use, how to stop it and when it started: Run's
	// goroutine only.
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
	started  time.Time
	// probed counts the informers started because the cluster answered a
	// probe since the namespace was last available.
	probed int
	// downAt is when the namespace last became unavailable.
	downAt time.Time

	mu sync.Mutex
	// generation counts the informers started; only the requests of the
	// one in use count.
	generation int
	// store is what Get reads: the informer's cache once it has loaded,
	// until then the one before it (nil at first).
	store cache.Indexer
	// err is the outcome of the last list or watch request: nil after a
	// success. failingSince is when the requests started failing.
	err          error
	failingSince time.Time
	// state, why and the class of the error are what was last reported.
	state remoteState
	why   string
	class string
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
	opts = remoteDefaults(opts)
	r := &Remote{
		name:        opts.Name,
		kind:        opts.Kind,
		log:         opts.Log.WithField("cluster", opts.Name),
		metrics:     opts.Metrics,
		timeout:     opts.SyncTimeout,
		grace:       opts.FailureGrace,
		probe:       opts.ProbeAfter,
		quickProbes: 10,
		transform:   opts.Transform,
		resync:      opts.Resync,
		client:      opts.Client,
		reconnects:  make(chan kubernetes.Interface, 1),
		loaded:      make(chan struct{}, 1),
		namespaces:  map[string]*remoteNamespace{},
	}
	for _, ns := range opts.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("cluster %s: namespace %q: %s", opts.Name, ns, strings.Join(errs, "; "))
		}
		r.namespaces[ns] = &remoteNamespace{name: ns}
		r.setUp(ns, 0)
	}
	return r, nil
}

// remoteDefaults fills in what opts leaves out.
func remoteDefaults(opts RemoteOptions) RemoteOptions {
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	if opts.FailureGrace <= 0 {
		opts.FailureGrace = 2 * time.Second
	}
	if opts.ProbeAfter <= 0 {
		opts.ProbeAfter = time.Second
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	return opts
}

// start replaces the informer of rn by a new one reading with r.client, and
// stops the old one. Run's goroutine only.
func (r *Remote) start(ctx context.Context, wg *sync.WaitGroup, rn *remoteNamespace) {
	if rn.stop != nil {
		rn.stop()
	}
	rn.mu.Lock()
	rn.generation++
	generation := rn.generation
	rn.err, rn.failingSince = nil, time.Time{}
	rn.mu.Unlock()
	informer := cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(r.listWatch(rn, generation), r.client),
		r.kind.newObject(),
		cache.SharedIndexInformerOptions{ResyncPeriod: r.resync},
	)
	if r.transform != nil {
		// Cannot fail: the informer has not started.
		_ = informer.SetTransform(r.transform)
	}
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.changed(obj) },
		UpdateFunc: func(_, obj any) { r.changed(obj) },
		DeleteFunc: r.changed,
	})
	ictx, stop := context.WithCancel(ctx)
	rn.informer, rn.stop, rn.started = informer, stop, time.Now()
	wg.Go(func() { informer.RunWithContext(ictx) })
	wg.Go(func() {
		if cache.WaitForCacheSync(ictx.Done(), informer.HasSynced) {
			select {
			case r.loaded <- struct{}{}:
			default:
			}
		}
	})
}

// listWatch lists and watches the objects of one remote namespace and
// remembers whether the last request of the informer generation made
// succeeded.
func (r *Remote) listWatch(rn *remoteNamespace, generation int) *cache.ListWatch {
	record := func(err error) {
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, context.Canceled) {
			// The watch fell behind the server's history (the
			// reflector lists again, which is routine), or the
			// informer was stopped.
			return
		}
		rn.mu.Lock()
		defer rn.mu.Unlock()
		if generation != rn.generation {
			return
		}
		if err != nil {
			r.metrics.remoteErrors.WithLabelValues(r.name).Inc()
		}
		switch {
		case err == nil:
			rn.err, rn.failingSince = nil, time.Time{}
		case rn.err == nil:
			rn.err, rn.failingSince = err, time.Now()
		default:
			rn.err = err
		}
	}
	objects := r.kind.remoteListWatch(r.client, rn.name)
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

// Reconnect has every namespace watched again with client (the
// credentials changed): each keeps its cache until the new watch has
// loaded. Only the last client given counts.
func (r *Remote) Reconnect(client kubernetes.Interface) {
	for {
		select {
		case r.reconnects <- client:
			return
		default:
		}
		select {
		case <-r.reconnects:
		default:
		}
	}
}

// Run starts the informers and watches their state until ctx ends.
func (r *Remote) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, rn := range r.namespaces {
		r.start(ctx, &wg, rn)
	}
	r.log.WithField("namespaces", strings.Join(r.Namespaces(), ",")).Info("watching source cluster")
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, rn := range r.namespaces {
			r.observe(rn)
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case client := <-r.reconnects:
			r.client = client
			for _, rn := range r.namespaces {
				r.start(ctx, &wg, rn)
			}
			r.metrics.remoteReconnects.WithLabelValues(r.name, "credentials").Add(float64(len(r.namespaces)))
		case <-r.loaded:
		case <-t.C:
			r.probeFailing(ctx, &wg)
		}
	}
}

// probeFailing asks the cluster, for each namespace whose requests have
// been failing for a while (or that is down and whose new informer has not
// loaded), for one object; when it answers, the namespace
// is watched afresh at once instead of after client-go's backoff. A probe
// is one list request a second per failing namespace, only while it fails.
func (r *Remote) probeFailing(ctx context.Context, wg *sync.WaitGroup) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for _, rn := range r.namespaces {
		rn.mu.Lock()
		// Failing, or down and its new informer not loaded yet: a
		// list made while the cluster was starting can hang until the
		// server's request timeout (a minute).
		failing := rn.err != nil || rn.state == stateDown && !rn.informer.HasSynced()
		// Back by the old informer's own retries: its backoff grew
		// over the outage (to 30 s), and a watch the cluster ends
		// while it starts would wait that long again. A fresh one
		// starts over at 0.8 s.
		recovered := rn.state == stateUp && rn.started.Before(rn.downAt)
		rn.mu.Unlock()
		if recovered {
			r.log.WithField("namespace", rn.name).Info("source cluster namespace back, watching afresh")
			r.metrics.remoteReconnects.WithLabelValues(r.name, "recovered").Inc()
			r.start(ctx, wg, rn)
			continue
		}
		if !failing || time.Since(rn.started) < r.probeGate(rn.probed) || pctx.Err() != nil {
			continue
		}
		if _, err := r.kind.remoteListWatch(r.client, rn.name).ListWithContextFunc(pctx, metav1.ListOptions{Limit: 1}); err != nil {
			// As telling as the informer's own requests: the
			// reason shown follows the cluster (down, then
			// rejecting the credentials, say).
			r.metrics.remoteErrors.WithLabelValues(r.name).Inc()
			rn.mu.Lock()
			if rn.err != nil && !errors.Is(err, context.DeadlineExceeded) {
				rn.err = err
			}
			rn.mu.Unlock()
			continue
		}
		r.log.WithField("namespace", rn.name).Info("source cluster answers again, watching afresh")
		r.metrics.remoteReconnects.WithLabelValues(r.name, "answered").Inc()
		rn.probed++
		r.start(ctx, wg, rn)
	}
}

// probeGate is how long an informer must have run before a probe may
// replace it, after probed informers started by probes.
func (r *Remote) probeGate(probed int) time.Duration {
	if probed < r.quickProbes {
		return r.probe
	}
	return min(r.probe<<min(probed-r.quickProbes+1, 5), 30*time.Second)
}

// observe updates the state of rn and tells the listeners when it changed.
func (r *Remote) observe(rn *remoteNamespace) {
	synced := rn.informer.HasSynced()
	rn.mu.Lock()
	// A new informer's cache replaces the last one once loaded. Its first
	// events were reconciled against the last one, so its placeholders are
	// looked at again.
	swapped := false
	if idx := rn.informer.GetIndexer(); synced && rn.store != idx {
		rn.store, swapped = idx, rn.store != nil
	}
	state, why := r.stateOf(rn, synced)
	// A namespace that stays down for another kind of reason (down, then
	// rejecting the credentials) is news too; the text alone varies with
	// each request.
	class := errorClass(rn.err)
	if class == "" {
		// Watched afresh, or within the grace: nothing new to say.
		class = rn.class
	}
	changed := state != rn.state || state == stateDown && class != rn.class
	rn.state, rn.why, rn.class = state, why, class
	rn.mu.Unlock()
	if changed {
		r.report(rn, state, why)
	}
	if changed || swapped {
		for _, l := range r.listeners {
			l.StateChanged(rn.name)
		}
	}
}

// report logs and counts that rn became state (for why).
func (r *Remote) report(rn *remoteNamespace, state remoteState, why string) {
	log := r.log.WithField("namespace", rn.name)
	switch state {
	case stateUp:
		rn.probed = 0
		log.Info("source cluster namespace available")
		r.setUp(rn.name, 1)
	case stateDown:
		rn.downAt = time.Now()
		log.WithField("reason", why).Warn("source cluster namespace unavailable, its placeholders keep their data")
		r.setUp(rn.name, 0)
	}
}

// stateOf is the state of rn now; rn.mu held.
func (r *Remote) stateOf(rn *remoteNamespace, synced bool) (remoteState, string) {
	switch {
	case rn.err != nil && time.Since(rn.failingSince) >= r.grace:
		return stateDown, describeRemoteError(rn.err)
	case rn.err != nil:
		// Within the grace: as before.
		return rn.state, rn.why
	case synced:
		return stateUp, ""
	case time.Since(rn.started) > r.timeout:
		return stateDown, fmt.Sprintf("not loaded after %s", r.timeout)
	case rn.store != nil || rn.state == stateDown:
		// Watched afresh: as before until the new watch has loaded.
		return rn.state, rn.why
	}
	return statePending, "loading"
}

// errorClass sorts a failed request by what would fix it.
func errorClass(err error) string {
	var unknownAuthority x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var verification *tls.CertificateVerificationError
	switch {
	case err == nil:
		return ""
	case apierrors.IsUnauthorized(err):
		return "unauthorized"
	case apierrors.IsForbidden(err):
		return "forbidden"
	case errors.As(err, &unknownAuthority), errors.As(err, &invalid), errors.As(err, &hostname), errors.As(err, &verification):
		return "certificate"
	case apierrors.ReasonForError(err) != metav1.StatusReasonUnknown:
		return "refused"
	}
	return "unreachable"
}

// describeRemoteError says what a failed request to a source cluster means
// for whoever reads the Event or the readiness endpoint.
func describeRemoteError(err error) string {
	switch {
	case apierrors.IsUnauthorized(err):
		return "the cluster rejects the credentials (401 Unauthorized): expired or revoked; they are read again when their files change"
	case apierrors.IsForbidden(err):
		return "the credentials may not read there (403 Forbidden): " + err.Error()
	}
	return err.Error()
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
	state, why, store := rn.state, rn.why, rn.store
	rn.mu.Unlock()
	if state != stateUp || store == nil {
		return nil, &UnavailableError{Cluster: r.name, Namespace: namespace, Pending: state == statePending, Reason: why}
	}
	obj, exists, err := store.GetByKey(namespace + "/" + name)
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

// remoteHealth is a Remote's namespaces at a glance.
type remoteHealth struct {
	namespaces, up int
	// rejected: some namespace's requests are refused as Unauthorized.
	rejected bool
}

func (r *Remote) health() remoteHealth {
	h := remoteHealth{namespaces: len(r.namespaces)}
	for _, rn := range r.namespaces {
		rn.mu.Lock()
		if rn.state == stateUp && rn.err == nil {
			h.up++
		}
		if apierrors.IsUnauthorized(rn.err) {
			h.rejected = true
		}
		rn.mu.Unlock()
	}
	return h
}
