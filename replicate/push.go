package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// This file is the push side: what the caches show of a source, the
// namespaces and the replicas it owns is gathered for the planner
// (PlanPush), whose changes go to the one write path, several at a time;
// what they come to is reported. The push expectations keep a source from
// planning again before the cache shows its last writes (observeReplica
// tells them what each event shows).

// reconcilePush plans the replicas of the push source at key (source: its
// view, nil when it is gone) from what the caches show, hands the writes
// the plan asks for to the write path, and reports what it all came to.
func (c *Controller) reconcilePush(ctx context.Context, key string, obj any, source *Object) error {
	owned, _ := c.objects.GetIndexer().ByIndex(indexPushMarker, key)
	if !Pushes(source, len(owned), c.opts.Annotations) {
		c.states.setPush(key, nil)
		return nil
	}
	if c.expected.awaited(key, time.Now()) {
		// The cache does not show every write to this source's replicas
		// yet: planning now would make them again. Their events enqueue
		// the source; the delay is a fallback.
		return &requeue{after: time.Second, why: "push waits for the cache to show its own writes"}
	}
	plan := c.planPush(key, source, owned, false)
	c.reportPushPlan(obj, source, plan)
	written, results, err := c.writeAll(ctx, key, obj, plan.Changes)
	c.reportPushWrites(key, obj, source, plan, written, results)
	return err
}

// reportPushPlan tells what a push plan refuses and takes over: the
// problems of the source's annotations and the policy's refusals, objects
// it does not own, copies it adopts; the refusals are counted.
func (c *Controller) reportPushPlan(obj any, source *Object, plan PushPlan) {
	for i := range plan.Problems {
		c.event(obj, source, &plan.Problems[i])
	}
	refused := len(plan.Conflicts) + len(plan.Refused)
	if plan.SourceRefused {
		refused++
	}
	c.opts.Metrics.results.WithLabelValues(c.name, string(ModePush), string(ResultRefused)).Add(float64(refused))
	if len(plan.Conflicts) > 0 {
		c.event(obj, source, warning(ReasonTargetConflict, "not overwriting objects this source does not own in namespaces: %s", strings.Join(plan.Conflicts, ", ")))
	}
	if len(plan.Adopted) > 0 {
		c.event(obj, source, &Event{Type: Normal, Reason: ReasonAdopted, Message: "taking over the copies another replicator made in namespaces: " + strings.Join(plan.Adopted, ", ")})
	}
}

// reportPushWrites keeps the state of each target namespace of the source
// at key (results: what each write came to, by namespace) and tells how
// many replica writes were made.
func (c *Controller) reportPushWrites(key string, obj any, source *Object, plan PushPlan, written int, results map[string]Result) {
	states := map[string]itemState{}
	for _, ns := range plan.Targets {
		states[ns] = itemState{results[ns].state(), ""}
	}
	for _, ns := range plan.Conflicts {
		states[ns] = itemState{StateConflict, ""}
	}
	for _, ns := range plan.Refused {
		states[ns] = itemState{StateRefused, ReasonPushDenied}
	}
	c.states.setPush(key, states)
	if written > 0 && source != nil {
		c.event(obj, source, &Event{Type: Normal, Reason: ReasonReplicated, Message: fmt.Sprintf("%d replica writes", written)})
	}
}

// planPush plans the replicas of the push source at key from the cache;
// owned are the cached objects whose marker names it. explain asks the plan
// to say what decided each namespace (PushOptions.Explain).
func (c *Controller) planPush(key string, source *Object, owned []any, explain bool) PushPlan {
	ns, name, _ := strings.Cut(key, "/")
	var ownedViews []*Object
	// The replicas of the source's own name, by namespace: what Existing
	// answers for most targets without a second view of the same object.
	ownedHere := map[string]*Object{}
	for _, o := range owned {
		if v := c.kind.View(o); v != nil {
			ownedViews = append(ownedViews, v)
			if v.Name == name {
				ownedHere[v.Namespace] = v
			}
		}
	}
	return PlanPush(PushInput{
		SourceRef:  Ref{Namespace: ns, Name: name},
		Source:     source,
		Namespaces: c.namespaceViews(),
		Owned:      ownedViews,
		Existing: func(namespace string) *Object {
			if v, ok := ownedHere[namespace]; ok {
				return v
			}
			_, v := c.get(namespace + "/" + name)
			return v
		},
		Options: PushOptions{
			Annotations: c.opts.Annotations, Exclude: c.opts.Exclude, Now: c.opts.Now(), Parse: c.patterns,
			Policy: c.opts.Push, GrantsRights: c.rules.GrantsRights, AdoptUnproven: c.opts.AdoptUnproven,
			Explain: explain,
		},
	})
}

// writeAll writes the changes of the push source at key. They touch
// different namespaces, so they are written concurrently: a fan-out to a
// thousand namespaces is not one long sequence of round trips (the client's
// rate limit still applies). It returns how many were written, the Result
// of each by namespace, and the errors worth a retry.
func (c *Controller) writeAll(ctx context.Context, key string, obj any, changes []Change) (int, map[string]Result, error) {
	var (
		mu       sync.Mutex
		errs     []error
		written  int
		outcomes = map[string]Result{}
		wg       sync.WaitGroup
		// As many writes at once as pull targets get (--workers).
		slots = make(chan struct{}, c.opts.Workers)
	)
	for i := range changes {
		ch := changes[i]
		// Let go of each change once handed out: a fan-out's plan (with
		// the views of the cached replicas it updates, which keep the
		// replaced versions alive) is freed as it is written, not only
		// after the last write.
		changes[i] = Change{}
		var current any
		if ch.Action == Update || ch.Action == Adopt {
			// What the update builds on; the request carries the
			// resourceVersion it was planned from.
			current, _ = c.get(ch.Current.Key())
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			out := c.write(ctx, writeOp{
				mode: ModePush, change: ch, current: current, owner: key, report: obj, reason: pushReason(ch.Action),
				fields: logrus.Fields{"source": key, "namespace": ch.Object.Namespace, "action": ch.Action},
			})
			c.opts.Metrics.results.WithLabelValues(c.name, string(ModePush), string(out.result)).Inc()
			mu.Lock()
			defer mu.Unlock()
			outcomes[ch.Object.Namespace] = out.result
			if out.result == ResultWritten {
				written++
			}
			if out.err != nil {
				errs = append(errs, out.err)
			}
		})
	}
	wg.Wait()
	return written, outcomes, errors.Join(errs...)
}

// pushReason says why a push plan makes a change, for a dry run's log.
func pushReason(a Action) string {
	switch a {
	case Create:
		return "a target namespace has no replica"
	case Update:
		return "the replica differs from the source"
	case Recreate:
		return "the replica's type (or another immutable part) differs from the source's"
	case Delete:
		return "the namespace is no longer a target, or the source stopped pushing"
	case Adopt:
		return "a copy the replicator being replaced made"
	}
	return string(a)
}

// namespaceViews returns the planner's view of every cached namespace.
func (c *Controller) namespaceViews() []Namespace {
	var namespaces []Namespace
	for _, o := range c.namespaces.GetIndexer().List() {
		if n, ok := o.(*corev1.Namespace); ok {
			namespaces = append(namespaces, Namespace{Name: n.Name, Labels: n.Labels, Terminating: terminating(n)})
		}
	}
	return namespaces
}

// Push expectations: a push source plans again only once the cache shows
// its last writes.

// expectationTTL bounds how long a write is waited for: a replica created and
// deleted again while the watch was down is never seen.
const expectationTTL = 30 * time.Second

// expectations remember, per push source, the writes to its replicas that
// the cache has not shown yet, as kube's ReplicaSet controller does. A push
// reconcile that runs before the cache has caught up with its own writes
// would plan them again: creates that fail with AlreadyExists, and updates
// and deletes sent with the version they replaced, which the API server
// refuses with a conflict after doing most of an update's work. The replicas
// of a fan-out change the cache one by one while the source, enqueued again
// by their events, waits to be reconciled: at 3,000 namespaces a fifth of
// the fan-out was sent a second time that way. It waits for the cache
// instead.
type expectations struct {
	mu      sync.Mutex
	pending map[string]*awaitedWrites // source key -> its writes not seen yet
}

// awaitedWrites are one source's writes the cache has not shown yet.
type awaitedWrites struct {
	writes map[string]expectedWrite // replica key -> the write
	// oldest is no later than the oldest write's time: expired writes are
	// looked for only once it is older than expectationTTL.
	oldest time.Time
}

// expectedWrite is a write waited for: the cache shows it once it holds the
// replica in a version other than from, the version it was planned from
// (empty for a create: any version).
type expectedWrite struct {
	at   time.Time
	from string
}

func newExpectations() *expectations {
	return &expectations{pending: map[string]*awaitedWrites{}}
}

// expect records, before the request, that source writes replica, planned
// from the replica's version from (empty for a create).
func (e *expectations) expect(source, replica, from string, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.pending[source]
	if a == nil {
		a = &awaitedWrites{writes: map[string]expectedWrite{}, oldest: now}
		e.pending[source] = a
	}
	if now.Before(a.oldest) {
		a.oldest = now
	}
	a.writes[replica] = expectedWrite{at: now, from: from}
}

// observed is told of every version of source's replica the cache shows: a
// version other than the one a write was planned from is that write's
// result, or later.
func (e *expectations) observed(source, replica, version string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.pending[source]; a != nil {
		if w, ok := a.writes[replica]; ok && (w.from == "" || version != w.from) {
			e.drop(source, a, replica)
		}
	}
}

// forget stops waiting for a write the cache will not show: it failed, or
// the API server found nothing to change.
func (e *expectations) forget(source, replica string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.pending[source]; a != nil {
		e.drop(source, a, replica)
	}
}

func (e *expectations) drop(source string, a *awaitedWrites, replica string) {
	delete(a.writes, replica)
	if len(a.writes) == 0 {
		delete(e.pending, source)
	}
}

// awaited reports whether a write of source has not been seen in the cache
// yet; writes waited for longer than expectationTTL are forgotten.
func (e *expectations) awaited(source string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.pending[source]
	if a == nil {
		return false
	}
	if now.Sub(a.oldest) > expectationTTL {
		a.oldest = now
		for replica, w := range a.writes {
			if now.Sub(w.at) > expectationTTL {
				delete(a.writes, replica)
			} else if w.at.Before(a.oldest) {
				a.oldest = w.at
			}
		}
		if len(a.writes) == 0 {
			delete(e.pending, source)
			return false
		}
	}
	return true
}

// observeReplica shows the push expectations what an informer event of
// the objects shows: a version of a replica (obj carries the marker of its
// source) is the result of a write waited for, or later. A replica deleted
// while the watch was down (a tombstone) never shows its last version: its
// write is not waited for any more. It reads only the event's object.
func (c *Controller) observeReplica(obj any) {
	missed := false
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, missed = d.Obj, true
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	marker := m.GetAnnotations()[c.opts.Annotations.ReplicatedFrom]
	if marker == "" {
		return
	}
	replica := m.GetNamespace() + "/" + m.GetName()
	if missed {
		c.expected.forget(marker, replica)
	} else {
		c.expected.observed(marker, replica, m.GetResourceVersion())
	}
}
