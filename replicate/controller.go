package replicate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Index names on a kind's informer. Each is derived from the annotations of
// the cached objects, so it can never disagree with the cache.
const (
	// indexPullSource maps a source key to the pull targets naming it.
	indexPullSource = "replicator/pull-source"
	// indexPushMarker maps a source key to the push replicas it owns.
	indexPushMarker = "replicator/push-marker"
	// indexPushName maps an object name to the push sources of that name.
	indexPushName = "replicator/push-name"
)

// pushParallelism bounds the concurrent writes of one push source's changes.
const pushParallelism = 16

// maxChain bounds how far replicate-from references are followed when
// looking for a cycle.
const maxChain = 32

// Options configure a Controller.
type Options struct {
	Annotations Annotations
	// AllowAll switches the pull permission check off.
	AllowAll bool
	// Exclude lists namespaces in which nothing is ever written.
	Exclude Patterns
	// Push is what the operator allows push to do; its zero value allows
	// no push.
	Push    PushPolicy
	Workers int
	// Recorder receives Events about the objects concerned.
	Recorder record.EventRecorder
	Log      logrus.FieldLogger
	// Now is the clock; nil means time.Now.
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
	kind       Kind
	client     kubernetes.Interface
	opts       Options
	log        logrus.FieldLogger
	objects    cache.SharedIndexInformer
	namespaces cache.SharedIndexInformer
	queue      workqueue.TypedRateLimitingInterface[string]
	running    atomic.Int32
	started    atomic.Bool
	// settled is closed the first time the queue is empty after the workers
	// started: the initial reconcile of every cached object is done.
	settled     chan struct{}
	settledOnce sync.Once
	// patterns parses the pattern lists of annotations, with a cache.
	patterns PatternParser
	// guard holds back writes of objects someone keeps changing back.
	guard *writeGuard
	// creations are push replicas created and not yet seen in the cache.
	creations *creations
}

// Settled is closed once the controller has reconciled everything it found at
// start-up.
func (c *Controller) Settled() <-chan struct{} { return c.settled }

// NewController wires a controller for kind onto the shared informer factory.
// Call it before factory.Start.
func NewController(kind Kind, client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
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
	c := &Controller{
		kind:       kind,
		settled:    make(chan struct{}),
		patterns:   CachedPatternParser(512),
		guard:      newWriteGuard(),
		creations:  newCreations(),
		client:     client,
		opts:       opts,
		log:        opts.Log.WithField("kind", kind.Name()),
		objects:    kind.Informer(factory),
		namespaces: factory.Core().V1().Namespaces().Informer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 5*time.Minute),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: strings.ToLower(kind.Name()) + "s", MetricsProvider: opts.Metrics.queues},
		),
	}
	for name, r := range opts.Remotes {
		if kind.Name() != r.kind.Name() {
			return nil, fmt.Errorf("source cluster %s serves %ss, not %ss", name, r.kind.Name(), kind.Name())
		}
		r.AddListener(RemoteListener{
			Changed: func(key string) { c.enqueueIndexed(indexPullSource, name+":"+key) },
			StateChanged: func(namespace string) {
				prefix := name + ":" + namespace + "/"
				for _, v := range c.objects.GetIndexer().ListIndexFuncValues(indexPullSource) {
					if strings.HasPrefix(v, prefix) {
						c.enqueueIndexed(indexPullSource, v)
					}
				}
			},
		})
	}
	opts.Metrics.registerManaged(kind.Name(), func() int { return c.countIndexed(indexPullSource) }, func() int { return c.countIndexed(indexPushMarker) })
	if err := c.objects.AddIndexers(cache.Indexers{
		indexPullSource: c.indexPullSource,
		indexPushMarker: c.indexPushMarker,
		indexPushName:   c.indexPushName,
	}); err != nil {
		return nil, fmt.Errorf("adding indexers: %w", err)
	}
	if _, err := c.objects.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.objectChanged(nil, obj) },
		UpdateFunc: c.objectChanged,
		DeleteFunc: func(obj any) { c.objectChanged(nil, obj) },
	}); err != nil {
		return nil, fmt.Errorf("adding object handler: %w", err)
	}
	if _, err := c.namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.enqueuePushSources() },
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Namespace)
			n, ok2 := cur.(*corev1.Namespace)
			if !ok1 || !ok2 || o.Status.Phase != n.Status.Phase || !maps.Equal(o.Labels, n.Labels) || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) {
				c.enqueuePushSources()
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("adding namespace handler: %w", err)
	}
	return c, nil
}

// Run waits for the caches, then works the queue with the configured number
// of workers until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("waiting for informer caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.objects.HasSynced, c.namespaces.HasSynced) {
		return fmt.Errorf("caches did not sync: %w", ctx.Err())
	}
	c.log.WithField("workers", c.opts.Workers).Info("caches synced, starting workers")
	var workers sync.WaitGroup
	for i := 0; i < c.opts.Workers; i++ {
		c.running.Add(1)
		workers.Go(func() {
			defer c.running.Add(-1)
			wait.UntilWithContext(ctx, c.worker, time.Second)
		})
	}
	// Only now: Healthy compares the running workers with the configured
	// number once started.
	c.started.Store(true)
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
		return fmt.Errorf("%s caches not synced", c.kind.Name())
	}
	return nil
}

// Healthy reports whether all workers are running once started.
func (c *Controller) Healthy() error {
	if c.started.Load() && int(c.running.Load()) < c.opts.Workers {
		return fmt.Errorf("%s: %d of %d workers running", c.kind.Name(), c.running.Load(), c.opts.Workers)
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
	defer func() {
		c.queue.Done(key)
		if c.queue.Len() == 0 {
			c.settledOnce.Do(func() { close(c.settled) })
		}
	}()
	start := time.Now()
	err := c.reconcile(ctx, key)
	result := "ok"
	switch {
	case err == nil:
		c.queue.Forget(key)
	case errors.Is(err, errRetry):
		// Conflicts and cache lag: expected under concurrency, retried
		// quietly.
		result = "retry"
		c.log.WithField("object", key).WithError(err).Debug("retrying object")
		c.queue.AddRateLimited(key)
	case ctx.Err() != nil:
		// Shutting down: the item is picked up again at the next start.
		result = "canceled"
	default:
		result = "error"
		c.log.WithField("object", key).WithError(err).Error("reconcile failed, retrying with backoff")
		c.queue.AddRateLimited(key)
	}
	c.opts.Metrics.reconciles.WithLabelValues(c.kind.Name(), result).Observe(time.Since(start).Seconds())
	return true
}

// errRetry marks errors that are retried without an error log.
var errRetry = errors.New("retry")

// objectChanged enqueues everything an add, update or delete of obj may
// affect: obj itself if it carries our annotations, the pull targets naming
// it, the push source owning it, and push sources of the same name (whose
// target slot may have been taken or freed).
func (c *Controller) objectChanged(old, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := metaOf(obj)
	if err != nil {
		return
	}
	key := m.GetNamespace() + "/" + m.GetName()
	a := c.opts.Annotations
	relevant := a.Relevant(m.GetAnnotations())
	if old != nil {
		if om, err := metaOf(old); err == nil && a.Relevant(om.GetAnnotations()) {
			relevant = true
			if marker := om.GetAnnotations()[a.ReplicatedFrom]; marker != "" {
				c.queue.Add(marker)
			}
		}
	}
	if relevant {
		c.queue.Add(key)
	}
	if marker := m.GetAnnotations()[a.ReplicatedFrom]; marker != "" {
		c.creations.observed(marker, key)
		c.queue.Add(marker)
	}
	c.enqueueIndexed(indexPullSource, key)
	c.enqueueIndexed(indexPushName, m.GetName())
}

func (c *Controller) enqueueIndexed(index, value string) {
	keys, err := c.objects.GetIndexer().IndexKeys(index, value)
	if err != nil {
		return
	}
	for _, k := range keys {
		c.queue.Add(k)
	}
}

// countIndexed returns how many objects an index holds.
func (c *Controller) countIndexed(index string) int {
	n := 0
	indexer := c.objects.GetIndexer()
	for _, v := range indexer.ListIndexFuncValues(index) {
		keys, _ := indexer.IndexKeys(index, v)
		n += len(keys)
	}
	return n
}

func (c *Controller) enqueuePushSources() {
	for _, name := range c.objects.GetIndexer().ListIndexFuncValues(indexPushName) {
		c.enqueueIndexed(indexPushName, name)
	}
}

func metaOf(obj any) (metav1.Object, error) {
	if obj == nil {
		return nil, fmt.Errorf("no object")
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("object of type %T has no metadata", obj)
	}
	return m, nil
}

func (c *Controller) indexPullSource(obj any) ([]string, error) {
	m, err := metaOf(obj)
	if err != nil {
		return nil, nil
	}
	v, ok := m.GetAnnotations()[c.opts.Annotations.ReplicateFrom]
	if !ok {
		return nil, nil
	}
	ref, err := c.parseRef(v, m.GetNamespace())
	if err != nil {
		return nil, nil
	}
	return []string{ref.String()}, nil
}

// parseRef parses a replicate-from value; a cluster prefix naming this
// cluster means this cluster.
func (c *Controller) parseRef(value, namespace string) (Ref, error) {
	ref, err := ParseRef(value, namespace, c.kind.ValidName)
	if err == nil && ref.Cluster != "" && ref.Cluster == c.opts.Cluster {
		ref.Cluster = ""
	}
	return ref, err
}

func (c *Controller) indexPushMarker(obj any) ([]string, error) {
	m, err := metaOf(obj)
	if err != nil {
		return nil, nil
	}
	if v := m.GetAnnotations()[c.opts.Annotations.ReplicatedFrom]; v != "" {
		return []string{v}, nil
	}
	return nil, nil
}

func (c *Controller) indexPushName(obj any) ([]string, error) {
	m, err := metaOf(obj)
	if err != nil {
		return nil, nil
	}
	if c.opts.Annotations.IsPushSource(m.GetAnnotations()) {
		return []string{m.GetName()}, nil
	}
	return nil, nil
}

// get returns the cached object and its view, or nils.
func (c *Controller) get(key string) (any, *Object) {
	obj, exists, err := c.objects.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return nil, nil
	}
	return obj, c.kind.View(obj)
}

func (c *Controller) namespace(name string) *corev1.Namespace {
	obj, exists, err := c.namespaces.GetIndexer().GetByKey(name)
	if err != nil || !exists {
		return nil
	}
	ns, _ := obj.(*corev1.Namespace)
	return ns
}

func terminating(ns *corev1.Namespace) bool {
	return ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating
}

// reconcile brings everything that depends on the object at key to its
// desired state: the object as a pull target, and its push replicas.
func (c *Controller) reconcile(ctx context.Context, key string) error {
	obj, view := c.get(key)
	var errs []error
	if view != nil {
		c.reportSourceProblems(obj, view)
		if _, ok := view.Annotations[c.opts.Annotations.ReplicateFrom]; ok {
			errs = append(errs, c.reconcilePull(ctx, obj, view))
		}
	}
	errs = append(errs, c.reconcilePush(ctx, key, obj, view))
	return errors.Join(errs...)
}

// reportSourceProblems raises an Event for each invalid entry in the pull
// permission annotations of a source (the push ones are reported by the push
// plan).
func (c *Controller) reportSourceProblems(obj any, o *Object) {
	a := c.opts.Annotations
	if v, ok := o.Annotations[a.ReplicationAllowed]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			c.event(obj, o, warning(ReasonInvalidAnnotation, "%s: %q is not a boolean", a.ReplicationAllowed, v))
		}
	}
	for _, key := range []string{a.ReplicationAllowedNS, a.ReplicationAllowedClusters} {
		if v, ok := o.Annotations[key]; ok {
			_, errs := c.patterns(v)
			for _, err := range errs {
				c.event(obj, o, warning(ReasonInvalidAnnotation, "%s: %v", key, err))
			}
		}
	}
}

func (c *Controller) reconcilePull(ctx context.Context, obj any, target *Object) error {
	a := c.opts.Annotations
	log := c.log.WithFields(logrus.Fields{"namespace": target.Namespace, "name": target.Name})
	if c.opts.Exclude.Match(target.Namespace) {
		log.Debug("pull target in excluded namespace, left alone")
		return nil
	}
	if ns := c.namespace(target.Namespace); ns == nil || terminating(ns) {
		return nil
	}
	// Every way out below is a refusal unless the plan says otherwise.
	result := "refused"
	defer func() { c.opts.Metrics.results.WithLabelValues(c.kind.Name(), "pull", result).Inc() }()
	ref, err := c.parseRef(target.Annotations[a.ReplicateFrom], target.Namespace)
	if err != nil {
		c.event(obj, target, warning(ReasonInvalidAnnotation, "%s: %v", a.ReplicateFrom, err))
		return nil
	}
	var source *Object
	if ref.Cluster == "" {
		self := Ref{Namespace: target.Namespace, Name: target.Name}
		if ref == self {
			c.event(obj, target, warning(ReasonCycle, "%s names the object itself", a.ReplicateFrom))
			return nil
		}
		next := func(r Ref) (Ref, bool) {
			_, o := c.get(r.Namespace + "/" + r.Name)
			if o == nil {
				return Ref{}, false
			}
			v, ok := o.Annotations[a.ReplicateFrom]
			if !ok {
				return Ref{}, false
			}
			n, err := c.parseRef(v, o.Namespace)
			return n, err == nil && n.Cluster == ""
		}
		if FindCycle(self, ref, next, maxChain) {
			c.event(obj, target, warning(ReasonCycle, "%s leads to a cycle (or a chain longer than %d) through %s", a.ReplicateFrom, maxChain, ref))
			return nil
		}
		_, source = c.get(ref.Namespace + "/" + ref.Name)
	} else {
		remote := c.opts.Remotes[ref.Cluster]
		if remote == nil {
			c.event(obj, target, warning(ReasonInvalidAnnotation, "%s: cluster %q is not configured as a source cluster for %ss", a.ReplicateFrom, ref.Cluster, c.kind.Name()))
			return nil
		}
		var unavailable *UnavailableError
		source, err = remote.Get(ref.Namespace, ref.Name)
		switch {
		case errors.Is(err, ErrNotWatched):
			c.event(obj, target, warning(ReasonInvalidAnnotation, "%s: namespace %s of cluster %s is not watched by this replicator", a.ReplicateFrom, ref.Namespace, ref.Cluster))
			return nil
		case errors.As(err, &unavailable):
			// The cache may be stale: neither fill nor empty from it. What
			// was replicated last stays until the cluster can be read again.
			result = "unavailable"
			if unavailable.Pending {
				log.WithField("source", ref.String()).Debug("source cluster still loading, pull target left as it is")
				return nil
			}
			c.event(obj, target, warning(ReasonClusterUnavailable, "source %s cannot be read (%s); the data replicated last is kept", ref, unavailable.Reason))
			return nil
		}
	}
	d := PlanPull(PullInput{
		Target: *target,
		Source: source,
		Ref:    ref,
		Gate:   Gate{Annotations: a, AllowAll: c.opts.AllowAll, Cluster: c.opts.Cluster, Parse: c.patterns},
		Rules:  c.kind.Rules(),
		Now:    c.opts.Now(),
	})
	if d.Event == nil || d.Event.Type != Warning {
		result = "unchanged"
	}
	if d.Write != nil {
		digest := contentDigest(d.Write)
		if wait := c.guard.wait(target.Key(), digest, time.Now()); wait > 0 {
			// Written several times in a row: someone else keeps changing
			// it. Try again later instead of fighting.
			result = "held"
			log.WithField("wait", wait.String()).Debug("write held back, the object keeps changing")
			c.queue.AddAfter(target.Key(), wait)
			return nil
		}
		c.guard.wrote(target.Key(), digest, time.Now())
		if err := c.kind.Update(ctx, c.client, obj, d.Write); err != nil {
			result = "failed"
			return c.writeFailed(obj, target.Key(), "update", err)
		}
		if result == "unchanged" {
			result = "written"
		}
		c.opts.Metrics.writes.WithLabelValues(c.kind.Name(), "pull", string(Update)).Inc()
		log.WithFields(logrus.Fields{"source": ref.String(), "keys": len(d.Write.Data)}).Info("pull target written")
	}
	if d.Event != nil {
		c.event(obj, target, d.Event)
	}
	return nil
}

func (c *Controller) reconcilePush(ctx context.Context, key string, obj any, source *Object) error {
	ns, name, _ := strings.Cut(key, "/")
	owned, _ := c.objects.GetIndexer().ByIndex(indexPushMarker, key)
	if source == nil && len(owned) == 0 {
		return nil
	}
	if source != nil && !c.opts.Annotations.IsPushSource(source.Annotations) && len(owned) == 0 {
		return nil
	}
	if c.creations.awaited(key, time.Now()) {
		// The cache does not show every replica this source created yet:
		// planning now would create them again. Their Add events enqueue
		// the source; the delay is a fallback.
		c.log.WithField("source", key).Debug("push waits for the cache to show its own creates")
		c.queue.AddAfter(key, time.Second)
		return nil
	}
	current := map[string]any{}
	var ownedViews []*Object
	for _, o := range owned {
		if v := c.kind.View(o); v != nil {
			ownedViews = append(ownedViews, v)
			current[v.Namespace] = o
		}
	}
	var namespaces []Namespace
	for _, o := range c.namespaces.GetIndexer().List() {
		n, ok := o.(*corev1.Namespace)
		if !ok {
			continue
		}
		namespaces = append(namespaces, Namespace{Name: n.Name, Labels: n.Labels, Terminating: terminating(n)})
	}
	plan := PlanPush(PushInput{
		SourceRef:  Ref{Namespace: ns, Name: name},
		Source:     source,
		Namespaces: namespaces,
		Owned:      ownedViews,
		Existing: func(namespace string) *Object {
			o, v := c.get(namespace + "/" + name)
			if o != nil {
				current[namespace] = o
			}
			return v
		},
		Options: PushOptions{
			Annotations: c.opts.Annotations, Exclude: c.opts.Exclude, Now: c.opts.Now(), Parse: c.patterns,
			Policy: c.opts.Push, GrantsRights: c.kind.Rules().GrantsRights,
		},
	})
	for i := range plan.Problems {
		c.event(obj, source, &plan.Problems[i])
	}
	c.opts.Metrics.results.WithLabelValues(c.kind.Name(), "push", "refused").Add(float64(len(plan.Conflicts) + len(plan.Refused)))
	if len(plan.Conflicts) > 0 {
		c.event(obj, source, warning(ReasonTargetConflict, "not overwriting objects this source does not own in namespaces: %s", strings.Join(plan.Conflicts, ", ")))
	}
	// The changes of one source touch different namespaces: write them
	// concurrently, so a fan-out to a thousand namespaces is not one long
	// sequence of round trips. The client's rate limit still applies.
	var (
		mu      sync.Mutex
		errs    []error
		written int
		wg      sync.WaitGroup
		slots   = make(chan struct{}, pushParallelism)
	)
	var held time.Duration
	for _, ch := range plan.Changes {
		target, digest := ch.Object.Key(), contentDigest(&ch.Object)
		if wait := c.guard.wait(target, digest, time.Now()); wait > 0 {
			c.opts.Metrics.results.WithLabelValues(c.kind.Name(), "push", "held").Inc()
			c.log.WithFields(logrus.Fields{"source": key, "namespace": ch.Object.Namespace, "wait": wait.String()}).Debug("write held back, the replica keeps changing")
			if held == 0 || wait < held {
				held = wait
			}
			continue
		}
		c.guard.wrote(target, digest, time.Now())
		creates := ch.Action == Create || ch.Action == Recreate
		if creates {
			// Before the request: the informer may show the new replica
			// before the request returns.
			c.creations.expect(key, target, time.Now())
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			err := c.apply(ctx, ch, current[ch.Object.Namespace])
			if err != nil {
				if creates {
					c.creations.observed(key, target)
				}
				c.opts.Metrics.results.WithLabelValues(c.kind.Name(), "push", "failed").Inc()
				if err = c.writeFailed(obj, key, string(ch.Action)+" in "+ch.Object.Namespace, err); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				return
			}
			mu.Lock()
			written++
			mu.Unlock()
			c.opts.Metrics.results.WithLabelValues(c.kind.Name(), "push", "written").Inc()
			c.opts.Metrics.writes.WithLabelValues(c.kind.Name(), "push", string(ch.Action)).Inc()
			c.log.WithFields(logrus.Fields{"source": key, "namespace": ch.Object.Namespace, "action": ch.Action}).Info("push replica written")
		})
	}
	wg.Wait()
	if held > 0 {
		c.queue.AddAfter(key, held)
	}
	if written > 0 && source != nil {
		c.event(obj, source, &Event{Type: Normal, Reason: ReasonReplicated, Message: fmt.Sprintf("%d replica writes", written)})
	}
	return errors.Join(errs...)
}

// apply carries out one change of a push plan. current is the cached object
// the change was computed from, if any.
func (c *Controller) apply(ctx context.Context, ch Change, current any) error {
	switch ch.Action {
	case Create:
		return c.kind.Create(ctx, c.client, &ch.Object)
	case Update:
		return c.kind.Update(ctx, c.client, current, &ch.Object)
	case Delete, Recreate:
		uid := types.UID(ch.Current.UID)
		rv := ch.Current.ResourceVersion
		err := c.kind.Delete(ctx, c.client, ch.Current.Namespace, ch.Current.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if ch.Action == Delete {
			return nil
		}
		ch.Object.UID, ch.Object.ResourceVersion = "", ""
		return c.kind.Create(ctx, c.client, &ch.Object)
	}
	return fmt.Errorf("unknown action %q", ch.Action)
}

// writeFailed classifies a failed write for the object at key (obj, if it
// still exists, receives the Event). It returns nil when retrying cannot help,
// errRetry-wrapped errors for expected races, and the error itself for
// failures worth a backoff.
func (c *Controller) writeFailed(obj any, key, what string, err error) error {
	log := c.log.WithFields(logrus.Fields{"object": key, "write": what})
	switch {
	case isNamespaceGone(err):
		// The namespace went away between the cache and the write; there is
		// nothing to retry.
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "namespace_gone").Inc()
		log.Warn("write skipped, namespace terminating or gone")
		c.recordEvent(obj, Warning, ReasonNamespaceGone, what+" skipped: the namespace is terminating or gone")
		return nil
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsNotFound(err):
		// The cache is behind the server: retry once it has caught up.
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "conflict").Inc()
		return fmt.Errorf("%s: %w: %v", what, errRetry, err)
	case apierrors.IsInvalid(err), apierrors.IsRequestEntityTooLargeError(err), apierrors.IsBadRequest(err):
		// The same write would fail again; it is retried when the objects
		// change.
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "invalid").Inc()
		log.WithError(err).Warn("write rejected")
		c.recordEvent(obj, Warning, ReasonWriteFailed, fmt.Sprintf("%s rejected: %s", what, apierrors.ReasonForError(err)))
		return nil
	case apierrors.IsForbidden(err):
		// Most often RBAC's escalation check: a Role or RoleBinding grants
		// what the replicator does not hold. Permissions can be granted
		// later, so it is retried with backoff.
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "forbidden").Inc()
		c.recordEvent(obj, Warning, ReasonWriteFailed, fmt.Sprintf("%s forbidden: the replicator lacks the permission (to replicate a Role or RoleBinding it must hold what it grants, or escalate and bind); retrying", what))
		return fmt.Errorf("%s: %w", what, err)
	default:
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "other").Inc()
		c.recordEvent(obj, Warning, ReasonWriteFailed, fmt.Sprintf("%s failed: %s, retrying", what, apierrors.ReasonForError(err)))
		return fmt.Errorf("%s: %w", what, err)
	}
}

// isNamespaceGone reports whether a create failed because its namespace is
// terminating or does not exist.
func isNamespaceGone(err error) bool {
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		d := status.Status().Details
		return apierrors.IsNotFound(err) && d != nil && d.Kind == "namespaces"
	}
	return false
}

// event records an Event on obj and logs warnings with the object's fields.
func (c *Controller) event(obj any, o *Object, e *Event) {
	if e.Type == Warning {
		c.opts.Metrics.problems.WithLabelValues(c.kind.Name(), e.Reason).Inc()
	}
	if e.Type == Warning && o != nil {
		c.log.WithFields(logrus.Fields{"namespace": o.Namespace, "name": o.Name, "reason": e.Reason, "detail": e.Message}).Warn("replication refused")
	}
	if obj != nil {
		c.recordEvent(obj, e.Type, e.Reason, e.Message)
	}
}

func (c *Controller) recordEvent(obj any, typ EventType, reason, message string) {
	if ro, ok := obj.(runtime.Object); ok {
		c.opts.Recorder.Event(ro, string(typ), reason, message)
	}
}
