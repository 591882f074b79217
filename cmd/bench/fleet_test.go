package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFitLine(t *testing.T) {
	slope, intercept, ok := fitLine([]float64{0, 10, 0, 30, 0, 100}, []float64{5, 25, 5, 65, 5, 205})
	require.True(t, ok)
	assert.InDelta(t, 2, slope, 1e-9, "points on a line give its slope")
	assert.InDelta(t, 5, intercept, 1e-9)

	// Noise around y = 1 + 0.5x: the least-squares line of these points.
	slope, intercept, ok = fitLine([]float64{0, 1, 2, 3}, []float64{1, 2, 2, 3})
	require.True(t, ok)
	assert.InDelta(t, 0.6, slope, 1e-9)
	assert.InDelta(t, 1.1, intercept, 1e-9)

	_, _, ok = fitLine([]float64{10, 10}, []float64{1, 2})
	assert.False(t, ok, "one x has no slope")
	_, _, ok = fitLine([]float64{10}, []float64{1})
	assert.False(t, ok, "one point has no slope")
}

func TestFleetSlopesUseEachRunBeforeAndWithItsSpokes(t *testing.T) {
	at := func(watches, rss float64) fleetAt {
		return fleetAt{Seconds: 10, Watches: watches, RSS: rss, Requests: map[string]float64{"GET": 20}}
	}
	rows := []fleetRow{
		{Spokes: 10, Before: at(40, 300), With: at(50, 305)},
		{Spokes: 100, Before: at(41, 302), With: at(141, 352)},
	}
	slopes := map[string]fleetSlope{}
	for _, s := range fleetSlopes(rows) {
		slopes[s.What] = s
	}
	assert.InDelta(t, 1.006, slopes["hub watches"].PerSpoke, 0.001, "about one watch per spoke")
	assert.InDelta(t, 0.513, slopes["hub RSS"].PerSpoke, 0.001)
	assert.InDelta(t, 0, slopes["hub requests at rest"].PerSpoke, 1e-9, "the same rate with and without spokes")
}

func TestCountAudit(t *testing.T) {
	from := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	to := from.Add(30 * time.Second)
	line := func(id, stage, verb, user string, at time.Time) string {
		return `{"kind":"Event","auditID":"` + id + `","stage":"` + stage + `","verb":"` + verb + `","user":{"username":"` + user +
			`"},"requestReceivedTimestamp":"` + at.Format(time.RFC3339Nano) + `"}`
	}
	log := strings.Join([]string{
		line("1", "ResponseComplete", "get", "system:apiserver", from.Add(-time.Second)), // before the window
		line("2", "ResponseComplete", "update", "system:apiserver", from),
		line("3", "ResponseStarted", "watch", "system:serviceaccount:spokes:spoke-1", from.Add(time.Second)),
		line("3", "ResponseComplete", "watch", "system:serviceaccount:spokes:spoke-1", from.Add(time.Second)), // the same watch ending
		line("4", "ResponseComplete", "list", "system:serviceaccount:spokes:spoke-2", from.Add(2*time.Second)),
		line("5", "ResponseComplete", "list", "system:serviceaccount:spokes:spoke-2", from.Add(3*time.Second)),
		line("6", "ResponseComplete", "get", "admin", from.Add(4*time.Second)),
		line("7", "ResponseComplete", "get", "system:serviceaccount:spokes:spoke-3", to), // after it
	}, "\n") + "\n"
	got, spokes, err := countAudit(strings.NewReader(log), from, to)
	require.NoError(t, err)
	assert.Equal(t, map[string]map[string]int{
		"apiserver": {"update": 1},
		"spokes":    {"watch": 1, "list": 2},
		"bench":     {"get": 1},
	}, got)
	assert.Equal(t, 1, spokes, "one spoke sent something other than a watch")

	a := fleetAt{Audit: got}
	watches, other := a.spokeRequests()
	assert.Equal(t, 1, watches)
	assert.Equal(t, 2, other)
}

func TestParseSizes(t *testing.T) {
	ns, err := parseSizes("fleet", "10, 30,100")
	require.NoError(t, err)
	assert.Equal(t, []int{10, 30, 100}, ns)
	for _, bad := range []string{"", "0", "ten", "10,,30"} {
		_, err := parseSizes("fleet", bad)
		assert.Error(t, err, bad)
	}
}
