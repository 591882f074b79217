package replicate

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// This file is the current state of everything the replicator manages, for
// the replicator_objects gauge: each pull target, and each target namespace
// of each push source, with the outcome of its last reconcile. It is set by
// every reconcile and dropped when the object stops taking part, so it is
// exact as objects change, and rebuilt by the first reconcile of everything
// after a restart.

// Object states.
const (
	StateFilled      = "filled"      // holds what its source has
	StateRefused     = "refused"     // not written, for the reason of the Event raised
	StateConflict    = "conflict"    // a push target holding an object the source does not own
	StateHeld        = "held"        // the write is held back: another writer keeps undoing it
	StateFailed      = "failed"      // the last write failed; retried with backoff
	StateUnavailable = "unavailable" // the source's cluster cannot be read; the data is kept
	StatePending     = "pending"     // a dry run: the write is due but not made
)

// itemState is one managed object's state; Reason is the Event reason of a
// refusal.
type itemState struct{ state, reason string }

// stateBook holds the states of one controller's objects.
type stateBook struct {
	mu   sync.Mutex
	pull map[string]itemState
	push map[string]map[string]itemState // source key -> namespace -> state
}

func newStateBook() *stateBook {
	return &stateBook{pull: map[string]itemState{}, push: map[string]map[string]itemState{}}
}

func (b *stateBook) setPull(key string, s itemState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pull[key] = s
}

func (b *stateBook) dropPull(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pull, key)
}

// setPush replaces the states of a push source's targets; none drops it.
func (b *stateBook) setPush(source string, targets map[string]itemState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(targets) == 0 {
		delete(b.push, source)
		return
	}
	b.push[source] = targets
}

// stateCount is one series of the gauge.
type stateCount struct{ mode, state, reason string }

func (b *stateBook) counts() map[stateCount]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Filled is always there, zero or not, so that a graph has a line.
	out := map[stateCount]int{{mode: "pull", state: StateFilled}: 0, {mode: "push", state: StateFilled}: 0}
	for _, s := range b.pull {
		out[stateCount{"pull", s.state, s.reason}]++
	}
	for _, targets := range b.push {
		for _, s := range targets {
			out[stateCount{"push", s.state, s.reason}]++
		}
	}
	return out
}

// stateCollector reports a controller's stateBook as replicator_objects.
type stateCollector struct {
	desc *prometheus.Desc
	book *stateBook
}

func (m *Metrics) registerStates(kind string, book *stateBook) {
	m.reg.MustRegister(&stateCollector{book: book, desc: prometheus.NewDesc("replicator_objects",
		"Objects the replicator manages now, by kind, mode (pull: each pull target; push: each target namespace of each push source), state (filled, refused, conflict, held, failed, unavailable, pending) and reason (the Event reason of a refusal).",
		[]string{"mode", "state", "reason"}, prometheus.Labels{"kind": kind})})
}

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range s.book.counts() {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(n), k.mode, k.state, k.reason)
	}
}

// outcomeState is the state a write's outcome leaves an object in.
func outcomeState(result string) string {
	switch result {
	case "held":
		return StateHeld
	case "failed":
		return StateFailed
	case "dry_run":
		return StatePending
	}
	return StateFilled
}
