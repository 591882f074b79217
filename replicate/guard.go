package replicate

import (
	"sync"
	"time"
)

// writeGuard keeps the replicator from fighting another writer. Every write of
// an object is counted; after guardFree writes in a row with less than
// guardQuiet between them, the next write of that object waits, 1 s at first
// and twice as long each time after, up to guardMax. A quiet spell resets it.
// A source that changes now and then, or a replica edited once by hand, is
// never held back; a controller that keeps undoing the replicator's work meets
// a write every few minutes instead of a hot loop, and other objects are not
// delayed by it.
type writeGuard struct {
	mu      sync.Mutex
	entries map[string]*guardEntry
	writes  int
}

type guardEntry struct {
	n    int
	last time.Time
}

const (
	guardFree  = 3
	guardBase  = time.Second
	guardMax   = 5 * time.Minute
	guardQuiet = time.Minute
)

func newWriteGuard() *writeGuard { return &writeGuard{entries: map[string]*guardEntry{}} }

// backoff is the pause owed after n writes in a row.
func guardBackoff(n int) time.Duration {
	if n < guardFree {
		return 0
	}
	d := guardBase
	for i := guardFree; i < n && d < guardMax; i++ {
		d *= 2
	}
	return min(d, guardMax)
}

// wait returns how long to wait before writing the object at key; 0: now.
func (g *writeGuard) wait(key string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[key]
	if e == nil {
		return 0
	}
	since := now.Sub(e.last)
	d := guardBackoff(e.n)
	if since > guardQuiet+2*d {
		delete(g.entries, key)
		return 0
	}
	if since >= d {
		return 0
	}
	return d - since
}

// wrote records a write of the object at key.
func (g *writeGuard) wrote(key string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[key]
	if e == nil {
		e = &guardEntry{}
		g.entries[key] = e
	}
	if now.Sub(e.last) > guardQuiet+2*guardBackoff(e.n) {
		e.n = 0
	}
	e.n++
	e.last = now
	// Forget objects left alone for long, now and then, so that the map
	// holds only what was written recently.
	if g.writes++; g.writes%1024 == 0 {
		for k, old := range g.entries {
			if now.Sub(old.last) > guardQuiet+2*guardMax {
				delete(g.entries, k)
			}
		}
	}
}
