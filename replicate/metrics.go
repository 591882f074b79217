package replicate

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the replicator's Prometheus metrics. Labels carry kinds,
// modes, actions and reasons only: never object names, so cardinality stays
// bounded whatever the cluster holds.
type Metrics struct {
	writes      *prometheus.CounterVec
	problems    *prometheus.CounterVec
	writeErrors *prometheus.CounterVec
	reconciles  *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_writes_total",
			Help: "Objects written, by kind, mode (pull or push) and action (update, create, delete, recreate).",
		}, []string{"kind", "mode", "action"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_problems_total",
			Help: "Warnings raised as Events, by kind and reason (ReplicationDenied, InvalidAnnotation, TargetConflict, ...).",
		}, []string{"kind", "reason"}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_write_errors_total",
			Help: "Writes the API server refused, by kind and class (conflict, invalid, namespace_gone, other).",
		}, []string{"kind", "class"}),
		reconciles: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "replicator_reconcile_duration_seconds",
			Help:    "Time to reconcile one object (its pull and its push), by kind and result (ok, retry, error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"kind", "result"}),
	}
	reg.MustRegister(m.writes, m.problems, m.writeErrors, m.reconciles)
	return m
}
