package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	corev1 "k8s.io/api/core/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Options configure a Controller.
type Options struct {
	Annotations Annotations
	// AllowAll switches the pull permission check off.
	AllowAll bool
	// Exclude lists namespaces in which nothing is ever written.
	Exclude Patterns
	// Push is what the operator allows push to do; its zero value allows
	// no push.
	Push PushPolicy
	// AdoptUnproven are the namespaces where the operator vouches for
	// copies with kubernetes-replicator's bookkeeping: adopted without
	// proof that they came from the source (PushOptions.AdoptUnproven).
	AdoptUnproven Patterns
	// DryRun writes nothing, Events included: each write is logged and
	// counted instead.
	DryRun bool
	// Observe, with DryRun, receives each write and Event the dry run
	// reports (explain).
	Observe func(Observation)
	Workers int
	// Recorder receives Events about the objects concerned.
	Recorder record.EventRecorder
	// NormalEvents, when not nil, is the budget of Normal Events shared by
	// all controllers: a fan-out to ten thousand namespaces does not send
	// ten thousand Events through the API server along with its writes,
	// nor push Warnings out of the recorder's queue. Warnings are not
	// limited by it.
	NormalEvents *rate.Limiter
	Log          logrus.FieldLogger
	// Now stamps the replicated-at annotations; nil means time.Now. The
	// write guard and the push expectations measure real time.
	Now func() time.Time
	// Metrics receives counts; nil means metrics registered nowhere.
	Metrics *Metrics
	// Cluster is this cluster's name: what remote sources' cluster lists
	// are matched against; a reference naming it means this cluster.
	Cluster string
	// Remotes are the other clusters placeholders may pull from, by name.
	// Only for Secrets.
	Remotes map[string]*Remote
}

// Controller replicates the objects of one kind.
type Controller struct {
	kind Kind
	// name and rules are the kind's (Kind.Name, Kind.Rules).
	name       string
	rules      Rules
	client     kubernetes.Interface
	opts       Options
	log        logrus.FieldLogger
	objects    cache.SharedIndexInformer
	namespaces cache.SharedIndexInformer
	queue      workqueue.TypedRateLimitingInterface[string]
	// settled is closed the first time the queue is empty after the workers
	// started: the initial reconcile of every cached object is done.
	settled     chan struct{}
	settledOnce sync.Once
	// patterns parses the pattern lists of annotations, with a cache.
	patterns PatternParser
	// gate is the pull permission check with this controller's settings.
	gate Gate
	// listKeys are the annotations holding pattern lists and selectors in
	// the dialects read: what makes an item costly (listBytes).
	listKeys []string
	// guard holds back writes of objects someone keeps changing back.
	guard *writeGuard
	// expected are the writes to push replicas not yet seen in the cache.
	expected *expectations
	// dryRun holds what a dry run reported.
	dryRun *dryRunLog
	// states are the managed objects' current states (replicator_objects).
	states *stateBook
	// work counts the items reconciled and the writes made (a push
	// source's fan-out is one item and many writes).
	work atomic.Uint64
	// busy counts the items being reconciled now.
	busy atomic.Int64
	// costlySlot admits one costly item at a time (see costly); the others
	// wait in deferred, so that they cannot take every worker from the
	// objects behind them in the queue.
	costlySlot chan struct{}
	deferred   deferredKeys
}

// deferredKeys are the costly keys put back on the queue for later because
// another costly item was being reconciled.
type deferredKeys struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (d *deferredKeys) add(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = map[string]bool{}
	}
	d.keys[key] = true
}

func (d *deferredKeys) remove(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.keys, key)
}

func (d *deferredKeys) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys)
}

// costlyWait is how long a costly item waits for its turn before it is
// looked at again.
const costlyWait = 100 * time.Millisecond

// idle reports whether nothing is queued or being reconciled: a push
// source's fan-out is one item, out of the queue while it writes.
func (c *Controller) idle() bool {
	return c.queue.Len() == 0 && c.busy.Load() == 0 && c.deferred.len() == 0
}

// Settled is closed once the controller has reconciled everything it found at
// start-up.
func (c *Controller) Settled() <-chan struct{} { return c.settled }

// NewController wires a controller for kind onto the shared informer factory.
// Call it before factory.Start.
func NewController(kind Kind, client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	opts = opts.withDefaults(kind)
	c := &Controller{
		kind:       kind,
		name:       kind.Name(),
		rules:      kind.Rules(),
		settled:    make(chan struct{}),
		costlySlot: make(chan struct{}, 1),
		patterns:   CachedPatternParser(patternCacheBytes),
		guard:      newWriteGuard(),
		expected:   newExpectations(),
		dryRun:     &dryRunLog{seen: map[string]string{}},
		states:     newStateBook(),
		client:     client,
		opts:       opts,
		log:        opts.Log.WithField("kind", kind.Name()),
		objects:    kind.Informer(factory),
		namespaces: factory.InformerFor(&corev1.Namespace{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
			return coreinformers.NewNamespaceInformer(c, resync, cache.Indexers{})
		}),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 5*time.Minute),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: strings.ToLower(kind.Name()) + "s", MetricsProvider: opts.Metrics.queues},
		),
	}
	c.gate = Gate{Annotations: opts.Annotations, AllowAll: opts.AllowAll, Cluster: opts.Cluster, Parse: c.patterns}
	c.listKeys = append(opts.Annotations.listKeys(), opts.Annotations.selectorKeys()...)
	for name, r := range opts.Remotes {
		if kind.Name() != r.kind.Name() {
			return nil, fmt.Errorf("source cluster %s serves %ss, not %ss", name, r.kind.Name(), kind.Name())
		}
		r.AddListener(c.remoteListener(name))
	}
	opts.Metrics.registerManaged(kind.Name(), func() int { return c.countIndexed(indexPullSource) }, func() int { return c.countIndexed(indexPushMarker) })
	opts.Metrics.registerStates(kind.Name(), c.states)
	if err := c.wireInformers(); err != nil {
		return nil, err
	}
	return c, nil
}

// withDefaults fills in what opts leaves out, and the annotation keys of
// the dialects read for kind.
func (opts Options) withDefaults(kind Kind) Options {
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	opts.Annotations = opts.Annotations.forKind(kind)
	return opts
}

// wireInformers adds the controller's indexes and event handlers to the
// informers.
func (c *Controller) wireInformers() error {
	indexers := cache.Indexers{
		indexPullSource: c.indexPullSource,
		indexPushMarker: c.indexPushMarker,
		indexPushName:   c.indexPushName,
	}
	if c.opts.Annotations.Dialects.Reads(DialectReflector) {
		// Only reflector's sources allow namespaces by label: only then
		// does relabelling a namespace concern its pull targets.
		indexers[indexPullNamespace] = c.indexPullNamespace
	}
	if err := c.objects.AddIndexers(indexers); err != nil {
		return fmt.Errorf("adding indexers: %w", err)
	}
	if _, err := c.objects.AddEventHandler(c.objectHandler()); err != nil {
		return fmt.Errorf("adding object handler: %w", err)
	}
	if _, err := c.namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueuePushSources() },
		UpdateFunc: c.namespaceChanged,
	}); err != nil {
		return fmt.Errorf("adding namespace handler: %w", err)
	}
	return nil
}

// objectHandler is what the objects' informer calls on each event: the push
// expectations observe it first (observeReplica), then it becomes keys on
// the queue (objectChanged), so that a push source its replica's event
// enqueues finds that event observed. One handler, not two: the informer
// calls each handler from a goroutine of its own, in no order between
// them.
func (c *Controller) objectHandler() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			c.observeReplica(obj)
			c.objectChanged(nil, obj)
		},
		UpdateFunc: func(old, obj any) {
			c.observeReplica(obj)
			c.objectChanged(old, obj)
		},
		DeleteFunc: func(obj any) {
			c.observeReplica(obj)
			c.objectChanged(nil, obj)
		},
	}
}

// Run waits for the caches, then works the queue with the configured number
// of workers until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	c.log.Info("waiting for informer caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.objects.HasSynced, c.namespaces.HasSynced) {
		c.queue.ShutDown()
		return fmt.Errorf("caches did not sync: %w", ctx.Err())
	}
	c.log.WithField("workers", c.opts.Workers).Info("caches synced, starting workers")
	var workers sync.WaitGroup
	for i := 0; i < c.opts.Workers; i++ {
		workers.Go(func() { wait.UntilWithContext(ctx, c.worker, time.Second) })
	}
	workers.Go(func() { wait.UntilWithContext(ctx, func(context.Context) { c.guard.prune(time.Now()) }, guardQuiet) })
	if c.queue.Len() == 0 {
		// Nothing was there to reconcile.
		c.settledOnce.Do(func() { close(c.settled) })
	}
	<-ctx.Done()
	c.log.Info("stopping workers")
	// Let the items in progress end (their requests fail fast with the
	// cancelled context) so that nothing is written or recorded after Run.
	c.queue.ShutDown()
	workers.Wait()
	return nil
}

// Ready reports whether the caches have synced. A standby that does not hold
// the leader Lease is ready too: it can take over at once.
func (c *Controller) Ready() error {
	if !c.objects.HasSynced() || !c.namespaces.HasSynced() {
		return fmt.Errorf("%s caches not synced", c.name)
	}
	return nil
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNextItem(ctx) {
	}
}

func (c *Controller) processNextItem(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	c.busy.Add(1)
	defer func() {
		c.queue.Done(key)
		c.work.Add(1)
		c.busy.Add(-1)
		if c.queue.Len() == 0 && c.deferred.len() == 0 {
			c.settledOnce.Do(func() { close(c.settled) })
		}
	}()
	c.deferred.remove(key)
	if c.costly(key) {
		select {
		case c.costlySlot <- struct{}{}:
			defer func() { <-c.costlySlot }()
		default:
			// Another costly item is being reconciled: this one waits
			// for its turn, and the workers go on with the queue.
			c.deferred.add(key)
			c.queue.AddAfter(key, costlyWait)
			return true
		}
	}
	start := time.Now()
	result := "ok"
	if err := c.reconcile(ctx, key); err != nil {
		result = c.afterError(ctx, key, err)
	} else {
		c.queue.Forget(key)
	}
	c.opts.Metrics.reconciles.WithLabelValues(c.name, result).Observe(time.Since(start).Seconds())
	return true
}

// afterError puts key, whose reconcile returned err, back on the queue as
// err asks, and returns the reconcile's result for the metric: a requeue
// after a pause, a quiet retry, a retry with backoff, or nothing while
// shutting down.
func (c *Controller) afterError(ctx context.Context, key string, err error) string {
	log := c.log.WithField("object", key).WithError(err)
	after, onlyRequeue := requeueAfter(err)
	switch {
	case onlyRequeue:
		// Nothing failed: look again after the pause asked for.
		log.Debug("reconciling again later")
		c.queue.Forget(key)
		c.queue.AddAfter(key, after)
		return "requeue"
	case errors.Is(err, errRetry):
		// Conflicts and cache lag: expected under concurrency, retried
		// quietly.
		log.Debug("retrying object")
		c.queue.AddRateLimited(key)
		return "retry"
	case ctx.Err() != nil:
		// Shutting down: the item is picked up again at the next start.
		return "canceled"
	}
	log.Error("reconcile failed, retrying with backoff")
	c.queue.AddRateLimited(key)
	return "error"
}

// reconcile brings everything that depends on the object at key to its
// desired state: the object as a pull target, and its push replicas.
func (c *Controller) reconcile(ctx context.Context, key string) error {
	obj, view := c.get(key)
	var errs []error
	pull := false
	if view != nil {
		if why, cut := view.Annotations[refusedMark]; cut {
			// The cache holds it cut to its name (CacheTransform).
			c.event(obj, view, warning(ReasonInvalidAnnotation, "%s", why))
		} else {
			// The problems of its pull permission annotations; the push
			// plan reports those of the push ones.
			for _, e := range c.gate.Problems(view) {
				c.event(obj, view, &e)
			}
			if _, _, pull = c.opts.Annotations.pullReference(view.Annotations); pull {
				errs = append(errs, c.reconcilePull(ctx, obj, view))
			}
		}
	}
	if !pull {
		c.states.setPull(key, itemState{})
	}
	errs = append(errs, c.reconcilePush(ctx, key, obj, view))
	return errors.Join(errs...)
}
