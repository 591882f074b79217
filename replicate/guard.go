package replicate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"slices"
	"sync"
	"time"
)

// writeGuard keeps the replicator from fighting another writer. Writes of an
// object with the same content (the same digest) are counted; after guardFree
// of them in a row with less than guardQuiet between them, the next waits,
// 1 s at first and twice as long each time after, up to guardMax. New content
// (the source changed) or a quiet spell resets the count. So a source that
// changes, however often, or a replica edited once by hand is never held back;
// a controller that keeps undoing the replicator's work meets a write every
// few minutes instead of a hot loop, and other objects are not delayed by it.
type writeGuard struct {
	mu      sync.Mutex
	entries map[string]*guardEntry
	writes  int
}

type guardEntry struct {
	n      int
	last   time.Time
	digest string
}

const (
	guardFree  = 3
	guardBase  = time.Second
	guardMax   = 5 * time.Minute
	guardQuiet = time.Minute
)

// stale reports whether a write at now would start the count afresh: the
// object has been left alone for a quiet spell longer than its pause.
func (e *guardEntry) stale(now time.Time) bool {
	return now.Sub(e.last) > guardQuiet+2*guardBackoff(e.n)
}

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

// wait returns how long to wait before writing the object at key with
// content digest; 0: now.
func (g *writeGuard) wait(key, digest string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[key]
	if e == nil || e.digest != digest {
		return 0
	}
	if e.stale(now) {
		delete(g.entries, key)
		return 0
	}
	return max(0, guardBackoff(e.n)-now.Sub(e.last))
}

// wrote records a write of the object at key with content digest.
func (g *writeGuard) wrote(key, digest string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[key]
	if e == nil {
		e = &guardEntry{}
		g.entries[key] = e
	}
	if e.digest != digest || e.stale(now) {
		e.n = 0
		e.digest = digest
	}
	e.n++
	e.last = now
	// Now and then, forget the objects whose count a write would reset
	// anyway, so that the map holds only objects written in the last minute
	// or so, and those being fought over.
	if g.writes++; g.writes%256 == 0 {
		for k, old := range g.entries {
			if old.stale(now) {
				delete(g.entries, k)
			}
		}
	}
}

// contentDigest identifies what a write makes of an object: its type, data
// and labels.
func contentDigest(o *Object) string {
	h := sha256.New()
	// Each field is written with its length, so that no two different
	// objects run together into the same bytes.
	field := func(b []byte) {
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	field([]byte(o.Type))
	for _, k := range slices.Sorted(maps.Keys(o.Data)) {
		v := o.Data[k]
		field([]byte(k))
		field(v.Bytes)
		if v.Binary {
			field([]byte{1})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
		field([]byte(k))
		field([]byte(o.Labels[k]))
	}
	return hex.EncodeToString(h.Sum(nil))
}
