package replicate

import (
	"sync"
	"time"
)

// expectationTTL bounds how long a created replica is waited for: a replica
// created and deleted again while the watch was down is never seen.
const expectationTTL = 30 * time.Second

// creations remembers, per push source, the replicas it created that the
// cache has not shown yet. A push reconcile that runs before the cache has
// caught up with its own creates would plan them again and fail with
// AlreadyExists; it waits for the cache instead, as kube's ReplicaSet
// controller does with its expectations.
type creations struct {
	mu      sync.Mutex
	pending map[string]map[string]time.Time // source key -> replica key -> created at
}

func newCreations() *creations {
	return &creations{pending: map[string]map[string]time.Time{}}
}

// expect records, before the request, that source creates replica.
func (c *creations) expect(source, replica string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.pending[source]
	if m == nil {
		m = map[string]time.Time{}
		c.pending[source] = m
	}
	m[replica] = now
}

// observed forgets replica: the cache showed it (or the create failed).
func (c *creations) observed(source, replica string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.pending[source]; m != nil {
		delete(m, replica)
		if len(m) == 0 {
			delete(c.pending, source)
		}
	}
}

// awaited reports whether a replica created for source has not been seen in
// the cache yet; replicas waited for longer than expectationTTL are
// forgotten.
func (c *creations) awaited(source string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.pending[source]
	for replica, at := range m {
		if now.Sub(at) > expectationTTL {
			delete(m, replica)
		}
	}
	if len(m) == 0 {
		delete(c.pending, source)
		return false
	}
	return true
}
