package replicate

import (
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
				g.wrote("ns/a", t0.Add(w))
			}
			assert.Equal(t, tt.want, g.wait("ns/a", t0.Add(tt.at)))
			assert.Zero(t, g.wait("ns/other", t0.Add(tt.at)), "other objects are not held back")
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
