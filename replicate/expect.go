package replicate

import (
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"
)

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
	m, err := metaOf(obj)
	if err != nil {
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
