package replicate

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestWriteGuard(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		writes []time.Duration // offsets of earlier writes
		at     time.Duration
		want   time.Duration
	}{
		"an object never written is written now":                   {at: 0, want: 0},
		"a few writes in a row are free":                           {writes: []time.Duration{0, time.Second}, at: 2 * time.Second, want: 0},
		"the write after the free ones waits a second":             {writes: []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}, at: 300 * time.Millisecond, want: 900 * time.Millisecond},
		"each further write waits twice as long":                   {writes: []time.Duration{0, 0, 0, time.Second, 3 * time.Second}, at: 3 * time.Second, want: 4 * time.Second},
		"the pause is capped":                                      {writes: repeat(30, 0), at: 0, want: guardMax},
		"a quiet minute forgets the fight":                         {writes: repeat(30, 0), at: guardQuiet + 2*guardMax + time.Second, want: 0},
		"writes a minute apart are never held back":                {writes: []time.Duration{0, 2 * time.Minute, 4 * time.Minute, 6 * time.Minute}, at: 8 * time.Minute, want: 0},
		"once the pause has passed the write goes through at once": {writes: []time.Duration{0, 0, 0}, at: time.Second, want: 0},
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
	for i := 0; i < 3; i++ {
		g.wrote("ns/a", "10", t0.Add(time.Second))
	}
	assert.Equal(t, time.Second, g.wait("ns/a", "10", t0.Add(time.Second)), "the same content again and again is a fight")
}

func TestContentDigest(t *testing.T) {
	a := &Object{Type: "Opaque", Data: Data{"k": {Bytes: []byte("v")}}, Labels: map[string]string{"x": "y"}}
	same := &Object{Name: "other", Type: "Opaque", Data: Data{"k": {Bytes: []byte("v")}}, Labels: map[string]string{"x": "y"}}
	assert.Equal(t, contentDigest(a), contentDigest(same), "names and metadata other than labels do not count")
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
	// Two minutes later, writes of other objects sweep the old ones out.
	later := t0.Add(2 * time.Minute)
	for i := 0; i < 256; i++ {
		g.wrote("ns/new", fmt.Sprint(i), later)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	assert.Len(t, g.entries, 1, "only the object written in the last minute is left")
}
