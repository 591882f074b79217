package replicate

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// This file is what reconciles come to: the Result of each (counted in
// replicator_replications_total), and the current State of everything the
// replicator manages, for the replicator_objects gauge: each pull target,
// and each target namespace of each push source, with the outcome of its
// last reconcile. The states are set by every reconcile and dropped when the
// object stops taking part, so they are exact as objects change, and
// rebuilt by the first reconcile of everything after a restart.

// Result is what one reconcile made of one pull target, or of one target
// namespace of a push source: replicator_replications_total counts them.
type Result string

const (
	ResultWritten   Result = "written"   // written by this reconcile
	ResultUnchanged Result = "unchanged" // already as it should be (a replica to delete: already gone)
	ResultRefused   Result = "refused"   // not given the source's content, for the reason of the Event raised
	// ResultUnavailable: the source's cluster cannot be read; the target
	// keeps what it has.
	ResultUnavailable Result = "unavailable"
	ResultHeld        Result = "held"    // the write guard holds the write back: another writer keeps undoing it
	ResultFailed      Result = "failed"  // the write failed
	ResultDryRun      Result = "dry_run" // a dry run: the write was reported, not made
)

// State is what a managed object is now, as replicator_objects counts it:
// the Result of its last reconcile, as it lasts.
type State string

const (
	StateFilled      State = "filled"      // holds what its source has
	StateRefused     State = "refused"     // not written, for the reason of the Event raised
	StateConflict    State = "conflict"    // a push target holding an object the source does not own
	StateHeld        State = "held"        // the write is held back: another writer keeps undoing it
	StateFailed      State = "failed"      // the last write failed; retried with backoff
	StateUnavailable State = "unavailable" // the source's cluster cannot be read; the data is kept
	// StateDryRun: a dry run holds back a write that is due (the gauge's
	// label says "pending").
	StateDryRun State = "pending"
)

// itemState is one managed object's state; reason is the Event reason of a
// refusal.
type itemState struct {
	state  State
	reason string
}

// stateBook holds the states of one controller's objects.
type stateBook struct {
	mu   sync.Mutex
	pull map[string]itemState
	push map[string]map[string]itemState // source key -> namespace -> state
}

func newStateBook() *stateBook {
	return &stateBook{pull: map[string]itemState{}, push: map[string]map[string]itemState{}}
}

// setPull keeps the state of a pull target; the zero state drops it.
func (b *stateBook) setPull(key string, s itemState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s == (itemState{}) {
		delete(b.pull, key)
		return
	}
	b.pull[key] = s
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
type stateCount struct {
	mode   Mode
	state  State
	reason string
}

func (b *stateBook) counts() map[stateCount]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Filled is always there, zero or not, so that a graph has a line.
	out := map[stateCount]int{{mode: ModePull, state: StateFilled}: 0, {mode: ModePush, state: StateFilled}: 0}
	for _, s := range b.pull {
		out[stateCount{ModePull, s.state, s.reason}]++
	}
	for _, targets := range b.push {
		for _, s := range targets {
			out[stateCount{ModePush, s.state, s.reason}]++
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
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(n), string(k.mode), string(k.state), k.reason)
	}
}

// state is the State a write's Result leaves its object in.
func (r Result) state() State {
	switch r {
	case ResultHeld:
		return StateHeld
	case ResultFailed:
		return StateFailed
	case ResultDryRun:
		return StateDryRun
	}
	return StateFilled
}
