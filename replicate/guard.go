package replicate

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"sync"
	"time"
)

// writeGuard keeps the replicator from fighting another writer in a hot
// loop, while answering every writer that undoes its work at a human or
// GitOps pace. It counts, per object, the writes of the same content (the
// same digest) in a row: each one after the first answers someone who
// changed the object back.
//
//   - A revert seen a second or more after our write (a person, a GitOps
//     controller re-applying a manifest every few seconds) is answered at
//     once, within a budget: a bucket of guardBurst writes that refills one
//     write every guardRefill, so a writer slower than that is answered
//     every time and a faster one at most at that rate.
//   - A revert seen sooner than guardHot after our write is a hot loop:
//     guardFreeHot of those in a row are answered at once, then each waits,
//     guardHotBase at first and twice as long each time after, up to
//     guardHotMax.
//
// New content (the source changed) or a quiet spell (guardQuiet without a
// write, besides any pause owed) starts afresh. The guardSpell-th write of
// the same content in a row opens a fight spell: the caller names the other
// writer in an Event, once per spell. Other objects are never delayed.
type writeGuard struct {
	mu      sync.Mutex
	entries map[string]*guardEntry
	writes  int
}

type guardEntry struct {
	digest string
	// last is the time of our last write; wanted, when not zero, the time
	// a write was first wanted and held back since then (when the revert
	// was seen).
	last, wanted time.Time
	// writes counts the writes of this content in a row; hot the hot
	// reverts among the last ones in a row.
	writes, hot int
	// tokens is the bucket's level after the last write.
	tokens float64
}

const (
	guardHot     = time.Second
	guardFreeHot = 3
	guardHotBase = 5 * time.Second
	guardHotMax  = 5 * time.Minute
	guardBurst   = 5
	guardRefill  = 2 * time.Second
	guardSpell   = 3
	guardQuiet   = 2 * time.Minute
)

func newWriteGuard() *writeGuard { return &writeGuard{entries: map[string]*guardEntry{}} }

// hotPause is the pause owed before a write that answers a hot revert.
func (e *guardEntry) hotPause() time.Duration {
	if e.hot < guardFreeHot {
		return 0
	}
	d := guardHotBase
	for i := guardFreeHot; i < e.hot && d < guardHotMax; i++ {
		d *= 2
	}
	return min(d, guardHotMax)
}

// stale reports whether a write at now would start afresh: the object has
// been left alone for a quiet spell longer than any pause it owes.
func (e *guardEntry) stale(now time.Time) bool {
	return now.Sub(e.last) > guardQuiet+e.hotPause()
}

// level is the bucket's level at now.
func (e *guardEntry) level(now time.Time) float64 {
	return min(guardBurst, e.tokens+float64(now.Sub(e.last))/float64(guardRefill))
}

// hotRevert reports whether a write at now answers a revert seen sooner
// than guardHot after our last write.
func (e *guardEntry) hotRevert(now time.Time) bool {
	seen := now
	if !e.wanted.IsZero() {
		seen = e.wanted
	}
	return seen.Sub(e.last) < guardHot
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
	var pause time.Duration
	if level := e.level(now); level < 1 {
		pause = time.Duration((1 - level) * float64(guardRefill))
	}
	if e.hotRevert(now) {
		pause = max(pause, e.last.Add(e.hotPause()).Sub(now))
	}
	if pause > 0 && e.wanted.IsZero() {
		e.wanted = now
	}
	return max(0, pause)
}

// wrote records a write of the object at key with content digest, made by
// the API server, and reports whether it opens a fight spell.
func (g *writeGuard) wrote(key, digest string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[key]
	if e == nil || e.digest != digest || e.stale(now) {
		e = &guardEntry{digest: digest, tokens: guardBurst, last: now}
		g.entries[key] = e
	} else {
		if e.hotRevert(now) {
			e.hot++
		} else {
			e.hot = 0
		}
		e.tokens = e.level(now)
	}
	e.tokens = max(0, e.tokens-1)
	e.writes++
	e.last, e.wanted = now, time.Time{}
	// Now and then, forget the objects a write would start afresh anyway,
	// so that the map holds only objects written in the last few minutes,
	// and those being fought over.
	if g.writes++; g.writes%256 == 0 {
		g.pruneLocked(now)
	}
	return e.writes == guardSpell
}

// forget drops what the guard knows of the object at key.
func (g *writeGuard) forget(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.entries, key)
}

// prune forgets the objects a write at now would start afresh anyway: after
// a fan-out to every namespace, the guard does not keep an entry for each
// one while nothing is written.
func (g *writeGuard) prune(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pruneLocked(now)
}

func (g *writeGuard) pruneLocked(now time.Time) {
	for k, e := range g.entries {
		if e.stale(now) {
			delete(g.entries, k)
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
		// The content's digest: the same whether the object holds the
		// content or, as the cache does for targets, only its digest.
		field(v.sum())
		if v.Binary {
			field([]byte{1})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
		field([]byte(k))
		field([]byte(o.Labels[k]))
	}
	return string(h.Sum(nil))
}
