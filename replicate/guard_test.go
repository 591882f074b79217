package replicate

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// simulateFight plays a writer that undoes the replicator's write against
// the guard for d, as the controller meets it: on each revert it asks the
// guard and writes after the pause it owes. The writer reverts every period
// (a GitOps loop: at fixed times, whether or not the replicator wrote since)
// or, if reactive, that long after each write of the replicator (a client
// polling in a loop). It returns the replicator's writes and the share of
// the time the object held the replicator's content.
func simulateFight(period time.Duration, reactive bool, d time.Duration) (writes int, filled float64) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newWriteGuard()
	g.wrote("ns/a", "ours", t0) // the fill
	writes = 1
	now, end := time.Duration(0), d
	var filledFor time.Duration
	nextRevert := period
	for now < end {
		// Filled until the next revert.
		revert := min(nextRevert, end)
		filledFor += revert - now
		now = revert
		if now >= end {
			break
		}
		// Reverted: the controller sees it at once and asks.
		pause := g.wait("ns/a", "ours", t0.Add(now))
		writeAt := now + pause
		if !reactive {
			// Reverts before the write owe nothing new: the object is
			// already changed back.
			for nextRevert <= writeAt {
				nextRevert += period
			}
		}
		if writeAt >= end {
			break
		}
		now = writeAt
		if p := g.wait("ns/a", "ours", t0.Add(now)); p > 0 {
			panic(fmt.Sprintf("still %s to wait at %s", p, now))
		}
		g.wrote("ns/a", "ours", t0.Add(now))
		writes++
		if reactive {
			nextRevert = now + period
		}
	}
	return writes, float64(filledFor) / float64(d)
}

func TestWriteGuardAgainstAnotherWriter(t *testing.T) {
	tests := map[string]struct {
		period      time.Duration
		reactive    bool
		d           time.Duration
		minFilled   float64
		maxWrites   int
		minWrites   int
		firstMinute int // at most, 0: not checked
	}{
		"a GitOps controller re-applying every 5 s is answered every time": {
			period: 5 * time.Second, d: 10 * time.Minute, minFilled: 0.99, minWrites: 120, maxWrites: 121,
		},
		"a person changing it back every 30 s is answered every time": {
			period: 30 * time.Second, d: 10 * time.Minute, minFilled: 0.99, minWrites: 20, maxWrites: 21,
		},
		"a client rewriting every 50 ms costs a few writes a minute": {
			period: 50 * time.Millisecond, reactive: true, d: 10 * time.Minute, maxWrites: 15, minWrites: 5, firstMinute: 8,
		},
		"a client rewriting every 1.5 s is answered at most every 2 s after the burst": {
			period: 1500 * time.Millisecond, reactive: true, d: 5 * time.Minute, minWrites: 100, maxWrites: int(5*time.Minute/guardRefill) + guardBurst + 1,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			writes, filled := simulateFight(tt.period, tt.reactive, tt.d)
			t.Logf("%d writes, filled %.1f%% of %s", writes, 100*filled, tt.d)
			assert.GreaterOrEqual(t, filled, tt.minFilled)
			assert.LessOrEqual(t, writes, tt.maxWrites)
			assert.GreaterOrEqual(t, writes, tt.minWrites)
			if tt.firstMinute > 0 {
				w, _ := simulateFight(tt.period, tt.reactive, time.Minute)
				assert.LessOrEqual(t, w, tt.firstMinute, "writes in the first minute")
			}
		})
	}
}

func TestWriteGuard(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	tests := map[string]struct {
		writes []time.Duration // offsets of earlier writes of the same content
		at     time.Duration
		want   time.Duration
	}{
		"an object never written is written now":                   {at: 0, want: 0},
		"hot reverts: a few in a row are answered at once":         {writes: []time.Duration{0, 50 * ms, 100 * ms}, at: 150 * ms, want: 0},
		"hot reverts: then the write waits five seconds":           {writes: []time.Duration{0, 50 * ms, 100 * ms, 150 * ms}, at: 200 * ms, want: guardHotBase - 50*ms},
		"hot reverts: the pause is capped":                         {writes: repeat(40, 0), at: 0, want: guardHotMax},
		"a revert a second after the write is no hot loop":         {writes: []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}, at: 4 * time.Second, want: 0},
		"the bucket empties: a write waits for its refill":         {writes: []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second, 7 * time.Second, 8 * time.Second}, at: 9 * time.Second, want: guardRefill / 2},
		"a quiet spell forgets the fight":                          {writes: repeat(40, 0), at: guardQuiet + guardHotMax + time.Second, want: 0},
		"once the pause has passed the write goes through at once": {writes: []time.Duration{0, 0, 0, 0}, at: guardHotBase, want: 0},
		"writes minutes apart are never held back":                 {writes: []time.Duration{0, 2 * time.Minute, 4 * time.Minute, 6 * time.Minute}, at: 8 * time.Minute, want: 0},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			g := newWriteGuard()
			for _, w := range tt.writes {
				g.wrote("ns/a", "same", t0.Add(w))
			}
			assert.Equal(t, tt.want, g.wait("ns/a", "same", t0.Add(tt.at)))
			assert.Zero(t, g.wait("ns/other", "same", t0.Add(tt.at)), "other objects are not held back")
			assert.Zero(t, g.wait("ns/a", "new content", t0.Add(tt.at)), "new content is never held back")
		})
	}
}

func TestWriteGuardMeasuresTheRevertWhenItWasSeen(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newWriteGuard()
	for _, w := range []time.Duration{0, 10, 20, 30} {
		g.wrote("ns/a", "same", t0.Add(w*time.Millisecond))
	}
	// Seen 50 ms after the last write: held. When the pause is over, the
	// write still answers a hot revert, so the next pause doubles.
	require.Positive(t, g.wait("ns/a", "same", t0.Add(80*time.Millisecond)))
	g.wrote("ns/a", "same", t0.Add(5*time.Second))
	assert.Equal(t, 2*guardHotBase-50*time.Millisecond, g.wait("ns/a", "same", t0.Add(5*time.Second+50*time.Millisecond)))
}

func TestWriteGuardOpensOneSpellPerFight(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newWriteGuard()
	var spells []int
	for i := range 50 {
		at := t0.Add(time.Duration(i) * 5 * time.Second)
		if g.wrote("ns/a", "same", at) {
			spells = append(spells, i)
		}
	}
	assert.Equal(t, []int{guardSpell - 1}, spells, "the third write of the same content in a row opens the spell, once")
	assert.False(t, g.wrote("ns/b", "x", t0), "a first write is no fight")
	assert.False(t, g.wrote("ns/b", "x", t0.Add(time.Minute)), "nor is one repair")
	// After a quiet spell, a new fight is a new spell.
	later := t0.Add(50*5*time.Second + guardQuiet + time.Second)
	assert.False(t, g.wrote("ns/a", "same", later))
	assert.False(t, g.wrote("ns/a", "same", later.Add(5*time.Second)))
	assert.True(t, g.wrote("ns/a", "same", later.Add(10*time.Second)))
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestWriteGuardResetsOnNewContent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newWriteGuard()
	for i := 0; i < 10; i++ {
		// A source updated every 100 ms: each write has new content.
		g.wrote("ns/a", fmt.Sprint(i), t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	assert.Zero(t, g.wait("ns/a", "10", t0.Add(time.Second)))
	for i := 0; i < 4; i++ {
		g.wrote("ns/a", "10", t0.Add(time.Second))
	}
	assert.Equal(t, guardHotBase, g.wait("ns/a", "10", t0.Add(time.Second)), "the same content again and again is a fight")
}

func TestContentDigest(t *testing.T) {
	a := &Object{Type: "Opaque", Data: Data{"k": {Bytes: []byte("v")}}, Labels: map[string]string{"x": "y"}}
	same := &Object{Name: "other", Type: "Opaque", Data: Data{"k": {Bytes: []byte("v")}}, Labels: map[string]string{"x": "y"}}
	assert.Equal(t, contentDigest(a), contentDigest(same), "names and metadata other than labels do not count")
	assert.Equal(t, contentDigest(a), contentDigest(&Object{Type: "Opaque", Data: Data{"k": {Bytes: digest([]byte("v")), Digest: true}}, Labels: map[string]string{"x": "y"}}),
		"content and its digest (as the cache holds a target) are the same content")
	for name, o := range map[string]*Object{
		"another value":        {Type: "Opaque", Data: Data{"k": {Bytes: []byte("w")}}, Labels: map[string]string{"x": "y"}},
		"another type":         {Type: "kubernetes.io/tls", Data: Data{"k": {Bytes: []byte("v")}}, Labels: map[string]string{"x": "y"}},
		"binary":               {Type: "Opaque", Data: Data{"k": {Bytes: []byte("v"), Binary: true}}, Labels: map[string]string{"x": "y"}},
		"another label":        {Type: "Opaque", Data: Data{"k": {Bytes: []byte("v")}}, Labels: map[string]string{"x": "z"}},
		"key and value joined": {Type: "Opaque", Data: Data{"kv": {Bytes: []byte("")}}, Labels: map[string]string{"x": "y"}},
	} {
		assert.NotEqual(t, contentDigest(a), contentDigest(o), name)
	}
}

func TestWriteGuardForgetsObjectsNoLongerWritten(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newWriteGuard()
	for i := 0; i < 1000; i++ {
		g.wrote(fmt.Sprintf("ns/%d", i), "x", t0)
	}
	for i := 0; i < 3; i++ {
		g.wrote("ns/fought", "x", t0)
	}
	// Three minutes later, writes of other objects sweep the old ones out.
	later := t0.Add(guardQuiet + time.Minute)
	for i := 0; i < 256; i++ {
		g.wrote("ns/new", fmt.Sprint(i), later)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	assert.Len(t, g.entries, 1, "only the object written lately is left")
}

func TestWriteGuardForgetsAFanOutWhileNothingIsWritten(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newWriteGuard()
	for i := 0; i < 1000; i++ {
		g.wrote(fmt.Sprintf("ns/%d", i), "x", t0)
	}
	g.prune(t0.Add(time.Minute))
	assert.Len(t, g.entries, 1000, "a minute later each write is still remembered")
	g.prune(t0.Add(guardQuiet + time.Second))
	assert.Empty(t, g.entries, "after a quiet spell the guard holds nothing")
}

func TestWriteGuardStartsAfreshAfterADelete(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newWriteGuard()
	// A source pushing, then not, then again: create, delete, create of
	// the same content, twice over.
	for i := 0; i < 3; i++ {
		assert.False(t, g.wrote("ns/replica", "x", t0.Add(time.Duration(i)*time.Second)), "create %d is no fight", i)
		g.forget("ns/replica")
	}
	assert.Empty(t, g.entries)
}
