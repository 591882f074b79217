// Command replicator shares Secrets, ConfigMaps, Roles, RoleBindings and
// ServiceAccounts across namespaces (and Secrets across clusters), driven by
// annotations compatible with kubernetes-replicator's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clientmetrics "k8s.io/client-go/tools/metrics"
	"k8s.io/client-go/tools/record"

	"github.com/kubereplicator/replicator/liveness"
	"github.com/kubereplicator/replicator/replicate"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "explain" {
		return runExplain(args[1:], stdout, stderr)
	}
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "replicator: %v\n", err)
		return 2
	}
	if c.showVersion {
		fmt.Fprintf(stdout, "replicator %s\n", version)
		return 0
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(c.logLevel)
	if c.logFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serveUntil(ctx, shutdownGrace, func() error { return serve(ctx, c, log) }, log); err != nil {
		log.WithError(err).Error("replicator stopped")
		return 1
	}
	log.Info("replicator shut down")
	return 0
}

// shutdownGrace is how long the process waits, once asked to stop, for its
// goroutines to end (the Lease released, the informers stopped) before it
// exits anyway: well inside Kubernetes' 30 s grace period and a person's
// patience at Ctrl-C.
const shutdownGrace = 3 * time.Second

// serveUntil runs serve and returns what it returns, or nil once ctx has
// ended and grace has passed without serve returning. Some of client-go's
// waits do not heed a context: a reflector backing off from an API server it
// cannot reach sleeps its whole backoff (up to 30 s), and releasing the Lease
// waits on a server that may not answer. Nothing is lost by not waiting for
// them: replicas are written synchronously, so no write is half-done when
// the process ends.
func serveUntil(ctx context.Context, grace time.Duration, serve func() error, log *logrus.Logger) error {
	done := make(chan error, 1)
	go func() { done <- serve() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		log.WithField("grace", grace).Warn("shutdown did not finish in time: exiting without waiting for the API server")
		return nil
	}
}

func restConfig(c *config) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if c.kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	}
	if err != nil {
		return nil, err
	}
	cfg.QPS = float32(c.qps)
	cfg.Burst = c.burst
	withClientDefaults(cfg)
	return cfg, nil
}

// withClientDefaults sets the user agent and the wire format of every client.
func withClientDefaults(cfg *rest.Config) {
	cfg.UserAgent = "replicator/" + version
	// Protobuf, as kube's own controllers use: smaller on the wire and
	// cheaper to decode than JSON.
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
}

func serve(ctx context.Context, c *config, log *logrus.Logger) error {
	logSettings(c, log)
	client, eventClient, err := clients(c)
	if err != nil {
		return err
	}
	broadcaster := eventBroadcaster(ctx, eventClient)
	defer broadcaster.Shutdown()
	registry, metrics, leader := newMetrics()
	rep, err := newReplicator(c, client, log, metrics, broadcaster)
	if err != nil {
		return err
	}
	serveErrs, err := serveStatus(ctx, c, client, registry, rep, log)
	if err != nil {
		return err
	}

	// A failing status server stops everything: without probes the pod
	// would be killed anyway.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failed := make(chan error, 1)
	go func() {
		if err := <-serveErrs; err != nil {
			failed <- fmt.Errorf("status endpoints: %w", err)
			cancel()
		}
	}()
	stopped := start(ctx, rep, log)
	defer func() {
		cancel()
		stopped()
	}()
	err = work(ctx, c, client, rep, leader, log)
	select {
	case serveErr := <-failed:
		return serveErr
	default:
		return err
	}
}

// logSettings logs the settings worth knowing at start-up, and warns of
// the dangerous ones.
func logSettings(c *config, log *logrus.Logger) {
	log.WithFields(logrus.Fields{"version": version, "prefix": c.prefix, "workers": c.workers}).Info("replicator starting")
	log.WithFields(logrus.Fields{"from": c.pushFromRaw, "rbacFrom": c.pushRBACFromRaw, "toSystem": c.pushToSystemRaw}).Info("push policy")
	if c.dryRun {
		log.Warn("--dry-run is set: nothing is written (no objects, no Events, no Lease); each write that would be made is logged as \"dry run: would write\" and counted")
	}
	if c.allowAll {
		log.Warn("--allow-all is set: the pull permission check is OFF, any namespace can copy any Secret that names it")
	}
	if len(c.kinds()) == 0 {
		log.Warn("every kind is switched off: nothing to replicate")
	}
}

// eventBroadcaster sends Events through eventClient until ctx ends or it is
// shut down.
func eventBroadcaster(ctx context.Context, eventClient kubernetes.Interface) record.EventBroadcaster {
	// client-go's Event correlator keeps three caches keyed by object (to
	// aggregate and rate-limit each object's Events), of 4,096 entries by
	// default: after a fan-out to thousands of namespaces that is several
	// MiB held for Events long sent. A smaller cache only forgets sooner
	// that an object had an Event.
	broadcaster := record.NewBroadcaster(record.WithContext(ctx), record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: eventCacheSize}))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventClient.CoreV1().Events("")})
	return broadcaster
}

// newReplicator wires the replicator the flags ask for, recording its
// Events through broadcaster.
func newReplicator(c *config, client kubernetes.Interface, log *logrus.Logger, metrics *replicate.Metrics, broadcaster record.EventBroadcaster) (*replicate.Replicator, error) {
	setup := replicatorSetup(c, client, log, metrics)
	setup.Options.Recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: replicate.EventComponent})
	if c.eventQPS >= 0 {
		setup.Options.NormalEvents = rate.NewLimiter(rate.Limit(c.eventQPS), c.eventBurst)
	}
	return replicate.NewReplicator(setup)
}

// serveStatus serves the status endpoints until ctx ends; the channel
// receives why they stopped serving.
func serveStatus(ctx context.Context, c *config, client kubernetes.Interface, registry *prometheus.Registry, rep *replicate.Replicator, log *logrus.Logger) (<-chan error, error) {
	health := statusServer(c, registry, rep)
	// Not ready while the API server cannot be reached: a replica that
	// cannot write should not count as available. Liveness is not affected,
	// so an outage does not restart the pod; it reconnects by itself.
	apiserver := liveness.NewProbe()
	health.AddReady("apiserver", apiserver.Check)
	go apiserver.Run(ctx, 5*time.Second, 3*time.Second, func(ctx context.Context) error {
		return client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
	})
	addr, serveErrs, err := health.ListenAndServe(ctx, c.statusAddr)
	if err != nil {
		return nil, err
	}
	log.WithField("address", addr.String()).Info("status endpoints listening")
	return serveErrs, nil
}

// work runs the controllers until ctx ends, while this process leads when
// leader election is on.
func work(ctx context.Context, c *config, client kubernetes.Interface, rep *replicate.Replicator, leader prometheus.Gauge, log *logrus.Logger) error {
	run := func(ctx context.Context) {
		leader.Set(1)
		defer leader.Set(0)
		if err := rep.Run(ctx); err != nil {
			log.WithError(err).Error("controller stopped")
		}
	}
	if c.leaderElect {
		return lead(ctx, c, client, log, run)
	}
	run(ctx)
	return nil
}

// start sets the memory settings, starts the informers and source clusters'
// watches, and returns what waits for them to stop once ctx ends.
func start(ctx context.Context, rep *replicate.Replicator, log *logrus.Logger) (stopped func()) {
	if limit := softMemoryLimit(cgroupMemoryMax); limit > 0 {
		log.WithField("bytes", limit).Info("soft memory limit set from the container's limit")
	}
	tightenGC()
	stopped = rep.Start(ctx)
	go releaseAfterBursts(ctx, rep.Work, 10*time.Second, debug.FreeOSMemory)
	go func() {
		// Start-up ends when, on the leader, the caches are loaded and
		// everything found has been reconciled once.
		if rep.WaitSettled(ctx) == nil {
			log.Info("start-up reconcile done")
		}
	}()
	return stopped
}

// clients returns the client for replication and one for Events, so that
// Events never take from the request budget of replica writes.
func clients(c *config) (kubernetes.Interface, kubernetes.Interface, error) {
	cfg, err := restConfig(c)
	if err != nil {
		return nil, nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("creating client: %w", err)
	}
	eventClient, err := kubernetes.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("creating event client: %w", err)
	}
	return client, eventClient, nil
}

// replicatorSetup is what the flags ask of the replicator (the Event
// recorder aside).
func replicatorSetup(c *config, client kubernetes.Interface, log *logrus.Logger, metrics *replicate.Metrics) replicate.Setup {
	s := replicate.Setup{
		Client:  client,
		Kinds:   c.kinds(),
		Resync:  c.resyncPeriod,
		Options: c.options(),
	}
	s.Options.Log, s.Options.Metrics = log, metrics
	for _, sc := range c.sourceClusters {
		// Only lists and watches, so the default rate limit is plenty.
		s.SourceClusters = append(s.SourceClusters, replicate.SourceCluster{Name: sc.name, Kubeconfig: sc.kubeconfig, Configure: withClientDefaults, Namespaces: sc.namespaces})
	}
	return s
}

// options are the replicator's settings the flags give (no log, metrics or
// source clusters).
func (c *config) options() replicate.Options {
	return replicate.Options{
		Annotations:   replicate.NewAnnotations(c.prefix).WithDialects(c.dialects),
		AllowAll:      c.allowAll,
		Exclude:       c.exclude,
		Push:          c.push,
		AdoptUnproven: c.adoptUnproven,
		DryRun:        c.dryRun,
		Workers:       c.workers,
		Cluster:       c.clusterName,
	}
}

// statusServer returns the health, readiness and metrics endpoints.
func statusServer(c *config, registry *prometheus.Registry, rep *replicate.Replicator) *liveness.Server {
	health := liveness.New()
	health.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	if c.profiling {
		health.Handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
		health.Handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		health.Handle("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	for name, check := range rep.ReadyChecks() {
		health.AddReady(name, check)
	}
	// Not part of /readyz: a source cluster that cannot be reached does not
	// stop replication in this one.
	for name, check := range rep.SourceClusterChecks() {
		health.Add("/readyz/clusters", name, check)
	}
	return health
}

// newMetrics returns the Prometheus registry with everything registered: the
// replicator's metrics, client-go's request metrics, build info and the
// leader gauge.
func newMetrics() (*prometheus.Registry, *replicate.Metrics, prometheus.Gauge) {
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		// The standard Go metrics, and the live heap: what the last
		// garbage collection kept, the figure that grows with the cluster.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "replicator_build_info", Help: "Always 1; the version label says which build runs."}, []string{"version"})
	buildInfo.WithLabelValues(version).Set(1)
	leader := prometheus.NewGauge(prometheus.GaugeOpts{Name: "replicator_leader", Help: "1 while this process holds the leader Lease (or runs without leader election), else 0."})
	registry.MustRegister(buildInfo, leader)
	requests := replicate.NewClientMetrics(registry)
	// client-go takes these once per process.
	clientmetrics.Register(clientmetrics.RegisterOpts{
		RequestLatency:     requests.Latency(),
		RequestResult:      requests.Results(),
		RateLimiterLatency: requests.RateLimiterWait(),
	})
	return registry, replicate.NewMetrics(registry), leader
}

// lead runs work while this process holds the leader Lease. Standbys keep
// their caches warm (and report ready) so that they can take over at once.
// On shutdown the Lease is released, so a standby takes over within one
// retry period instead of a whole lease duration.
func lead(ctx context.Context, c *config, client kubernetes.Interface, log *logrus.Logger, work func(context.Context)) error {
	host, _ := os.Hostname()
	identity := host + "_" + string(uuid.NewUUID())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.leaseNamespace, Name: c.leaseName},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	entry := log.WithFields(logrus.Fields{"identity": identity, "lease": c.leaseNamespace + "/" + c.leaseName})
	var lost atomic.Bool
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            c.leaseName,
		LeaseDuration:   c.leaseDuration,
		RenewDeadline:   c.renewDeadline,
		RetryPeriod:     c.retryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				entry.Info("leading: starting workers")
				work(ctx)
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					lost.Store(true)
				}
				entry.Info("stopped leading")
			},
			OnNewLeader: func(holder string) {
				if holder != identity {
					entry.WithField("leader", holder).Info("standing by")
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	entry.Info("waiting for the leader lease")
	elector.Run(ctx)
	if lost.Load() {
		// Another replica may be writing now: stop, and let the restart
		// stand by.
		return fmt.Errorf("leader lease lost")
	}
	entry.Info("leader election stopped")
	return nil
}
