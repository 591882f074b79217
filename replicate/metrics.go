package replicate

import (
	"context"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientmetrics "k8s.io/client-go/tools/metrics"
	"k8s.io/client-go/util/workqueue"
)

// Metrics are the replicator's Prometheus metrics. Labels carry kinds,
// modes, actions and reasons only: never object names, so cardinality stays
// bounded whatever the cluster holds.
type Metrics struct {
	results      *prometheus.CounterVec
	writes       *prometheus.CounterVec
	problems     *prometheus.CounterVec
	writeErrors  *prometheus.CounterVec
	dryRunWrites *prometheus.CounterVec
	// eventsSkipped: Normal Events over the budget.
	eventsSkipped *prometheus.CounterVec
	fights        *prometheus.CounterVec
	reconciles    *prometheus.HistogramVec
	queues        *queueMetrics
	reg           prometheus.Registerer
	// Per source cluster (cross-cluster pull).
	remoteUp      *prometheus.GaugeVec
	remoteErrors  *prometheus.CounterVec
	remoteChanges *prometheus.CounterVec
	// Per source cluster (sourceCluster.report).
	remoteReconnects  *prometheus.CounterVec
	clusterConnected  *prometheus.GaugeVec
	clusterLastSync   *prometheus.GaugeVec
	clusterNamespaces *prometheus.GaugeVec
	clusterRejected   *prometheus.GaugeVec
	credentialReloads *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_replications_total",
			Help: "Replication outcomes per pull target and per push target namespace, by kind, mode (pull or push) and result (written, unchanged, refused, failed, held, unavailable, dry_run).",
		}, []string{"kind", "mode", "result"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_writes_total",
			Help: "Objects written, by kind, mode (pull or push) and action (update, create, delete, recreate, adopt).",
		}, []string{"kind", "mode", "action"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_problems_total",
			Help: "Warnings raised as Events, by kind and reason (ReplicationDenied, InvalidAnnotation, TargetConflict, ...).",
		}, []string{"kind", "reason"}),
		eventsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_normal_events_skipped_total",
			Help: "Normal Events not recorded because the budget (--normal-event-qps, --normal-event-burst) was spent, by kind and reason. The writes they would have reported are counted in replicator_writes_total.",
		}, []string{"kind", "reason"}),
		dryRunWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_dry_run_writes_total",
			Help: "Writes a dry run (--dry-run) would have made, by kind, mode (pull or push) and action (update, create, delete, recreate, adopt).",
		}, []string{"kind", "mode", "action"}),
		fights: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_fights_total",
			Help: "Fight spells: another writer kept undoing the replicator's writes of one object (each raises one FightingWriter Event), by kind and mode (pull or push).",
		}, []string{"kind", "mode"}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_write_errors_total",
			Help: "Writes the API server refused, by kind and class (conflict, invalid, forbidden, namespace_gone, other).",
		}, []string{"kind", "class"}),
		reconciles: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "replicator_reconcile_duration_seconds",
			Help:    "Time to reconcile one object (its pull and its push), by kind and result (ok, requeue, retry, error, canceled).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"kind", "result"}),
		remoteUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replicator_source_cluster_up",
			Help: "1 while the cache of a watched namespace of a source cluster is loaded and its watch works, else 0.",
		}, []string{"cluster", "namespace"}),
		remoteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_source_cluster_request_errors_total",
			Help: "Failed list and watch requests to a source cluster.",
		}, []string{"cluster"}),
		remoteChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_source_cluster_changes_total",
			Help: "Secrets added, changed or deleted in the watched namespaces of a source cluster, as the watch delivered them.",
		}, []string{"cluster"}),
	}
	m.clusterMetrics()
	reg.MustRegister(m.results, m.writes, m.dryRunWrites, m.eventsSkipped, m.fights, m.problems, m.writeErrors, m.reconciles, m.remoteUp, m.remoteErrors, m.remoteChanges,
		m.remoteReconnects, m.clusterConnected, m.clusterLastSync, m.clusterNamespaces, m.clusterRejected, m.credentialReloads)
	m.queues = newQueueMetrics(reg)
	m.reg = reg
	return m
}

// clusterMetrics makes the metrics of each source cluster as a whole.
func (m *Metrics) clusterMetrics() {
	m.remoteReconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replicator_source_cluster_reconnects_total",
		Help: "Namespaces of a source cluster watched afresh, by reason: credentials (their files changed), answered (the cluster answered a probe after its requests failed) or recovered (the old watch came back by itself, its retry pause grown over the outage).",
	}, []string{"cluster", "reason"})
	m.clusterConnected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicator_source_cluster_connected",
		Help: "1 while every watched namespace of a source cluster is loaded and its watch works, for every kind read there, else 0.",
	}, []string{"cluster"})
	m.clusterLastSync = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicator_source_cluster_last_sync_timestamp_seconds",
		Help: "When a source cluster was last connected (Unix time, to the second): the caches of its sources are current up to then.",
	}, []string{"cluster"})
	m.clusterNamespaces = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicator_source_cluster_watched_namespaces",
		Help: "Namespaces of a source cluster watched for sources.",
	}, []string{"cluster"})
	m.clusterRejected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicator_source_cluster_credentials_rejected",
		Help: "1 while a source cluster answers the replicator's requests with 401 Unauthorized: its credentials expired or were revoked.",
	}, []string{"cluster"})
	m.credentialReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replicator_source_cluster_credential_reloads_total",
		Help: "Times a source cluster's credentials were read again because its kubeconfig or a file it names changed.",
	}, []string{"cluster"})
}

// The work queue's metrics, under the names controller-runtime uses, labelled
// by queue name. Given to each queue through its config: nothing global.
type queueMetrics struct {
	depth, unfinished, longest *prometheus.GaugeVec
	adds, retries              *prometheus.CounterVec
	latency, workDuration      *prometheus.HistogramVec
}

func newQueueMetrics(reg prometheus.Registerer) *queueMetrics {
	q := &queueMetrics{
		depth:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_depth", Help: "Current depth of the work queue."}, []string{"name"}),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_unfinished_work_seconds", Help: "Seconds of work in progress not yet observed by work_duration."}, []string{"name"}),
		longest:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_longest_running_processor_seconds", Help: "Seconds the longest running item has been processed."}, []string{"name"}),
		adds:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_adds_total", Help: "Items added to the work queue."}, []string{"name"}),
		retries:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_retries_total", Help: "Items re-added with backoff."}, []string{"name"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_queue_duration_seconds", Help: "Seconds an item waits in the queue.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"name"}),
		workDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_work_duration_seconds", Help: "Seconds processing an item takes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"name"}),
	}
	reg.MustRegister(q.depth, q.unfinished, q.longest, q.adds, q.retries, q.latency, q.workDuration)
	return q
}

func (q *queueMetrics) NewDepthMetric(name string) workqueue.GaugeMetric {
	return q.depth.WithLabelValues(name)
}
func (q *queueMetrics) NewAddsMetric(name string) workqueue.CounterMetric {
	return q.adds.WithLabelValues(name)
}
func (q *queueMetrics) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return q.latency.WithLabelValues(name)
}
func (q *queueMetrics) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return q.workDuration.WithLabelValues(name)
}
func (q *queueMetrics) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return q.unfinished.WithLabelValues(name)
}
func (q *queueMetrics) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return q.longest.WithLabelValues(name)
}
func (q *queueMetrics) NewRetriesMetric(name string) workqueue.CounterMetric {
	return q.retries.WithLabelValues(name)
}

// ClientMetrics adapts client-go's request metrics to Prometheus. client-go
// accepts them once per process (k8s.io/client-go/tools/metrics.Register),
// so main registers them. Labels are verbs, codes and hosts only: request
// paths would carry object names.
type ClientMetrics struct {
	latency     *prometheus.HistogramVec
	results     *prometheus.CounterVec
	rateLimiter *prometheus.HistogramVec
}

// NewClientMetrics creates the request metrics and registers them with reg.
func NewClientMetrics(reg prometheus.Registerer) *ClientMetrics {
	buckets := prometheus.ExponentialBuckets(0.001, 2, 14)
	c := &ClientMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rest_client_request_duration_seconds",
			Help: "API request latency, by verb.", Buckets: buckets}, []string{"verb"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rest_client_requests_total",
			Help: "API requests, by status code, method and host."}, []string{"code", "method", "host"}),
		rateLimiter: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rest_client_rate_limiter_duration_seconds",
			Help: "Time requests waited for the client-side rate limiter (--kube-api-qps), by verb.", Buckets: buckets}, []string{"verb"}),
	}
	reg.MustRegister(c.latency, c.results, c.rateLimiter)
	return c
}

// Latency is a client-go LatencyMetric for request durations.
func (c *ClientMetrics) Latency() clientmetrics.LatencyMetric { return latencyByVerb{c.latency} }

// RateLimiterWait is a client-go LatencyMetric for rate-limiter waits.
func (c *ClientMetrics) RateLimiterWait() clientmetrics.LatencyMetric {
	return latencyByVerb{c.rateLimiter}
}

// Results is a client-go ResultMetric.
func (c *ClientMetrics) Results() clientmetrics.ResultMetric { return resultByCode{c.results} }

type latencyByVerb struct{ v *prometheus.HistogramVec }

func (l latencyByVerb) Observe(_ context.Context, verb string, _ url.URL, latency time.Duration) {
	l.v.WithLabelValues(verb).Observe(latency.Seconds())
}

type resultByCode struct{ v *prometheus.CounterVec }

func (r resultByCode) Increment(_ context.Context, code, method, host string) {
	r.v.WithLabelValues(code, method, host).Inc()
}

// registerManaged reports how many objects a controller manages, counted from
// its indexes at scrape time.
func (m *Metrics) registerManaged(kind string, pullTargets, pushReplicas func() int) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "replicator_managed_objects", Help: "Objects currently managed: pull targets naming a source, and push replicas.",
			ConstLabels: prometheus.Labels{"kind": kind, "mode": string(ModePull)},
		}, func() float64 { return float64(pullTargets()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "replicator_managed_objects", Help: "Objects currently managed: pull targets naming a source, and push replicas.",
			ConstLabels: prometheus.Labels{"kind": kind, "mode": string(ModePush)},
		}, func() float64 { return float64(pushReplicas()) }),
	)
}
