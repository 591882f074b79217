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
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
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

// config is what the flags say.
type config struct {
	kubeconfig       string
	resyncPeriod     time.Duration
	statusAddr       string
	logLevel         logrus.Level
	logFormat        string
	allowAll         bool
	exclude          replicate.Patterns
	excludeRaw       string
	push             replicate.PushPolicy
	pushFromRaw      string
	pushRBACFromRaw  string
	pushToSystemRaw  string
	replicateSecrets bool
	replicateCMs     bool
	replicateRoles   bool
	replicateRBs     bool
	replicateSAs     bool
	prefix           string
	workers          int
	qps              float64
	burst            int
	showVersion      bool
	profiling        bool
	leaderElect      bool
	leaseName        string
	leaseNamespace   string
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
	clusterName      string
	sourceClusters   []sourceCluster
}

// sourceCluster is a cluster placeholders here may pull Secrets from.
type sourceCluster struct {
	name       string
	kubeconfig string
	namespaces []string
}

// parseFlags parses and validates args; errors are meant for the user.
func parseFlags(args []string, output io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("replicator", flag.ContinueOnError)
	fs.SetOutput(output)
	var logLevel string
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty: in-cluster configuration")
	fs.DurationVar(&c.resyncPeriod, "resync-period", 30*time.Minute, "how often every cached object is reconciled again")
	fs.StringVar(&c.statusAddr, "status-addr", ":9102", "address of the /healthz, /readyz and /metrics endpoints")
	fs.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warning, error")
	fs.StringVar(&c.logFormat, "log-format", "plain", "log format: plain or json")
	fs.BoolVar(&c.allowAll, "allow-all", false, "switch the pull permission check off: any namespace may pull any source (dangerous)")
	fs.StringVar(&c.excludeRaw, "exclude-namespaces", "", "comma-separated regular expressions of namespaces never written (each matches whole names)")
	fs.StringVar(&c.pushFromRaw, "push-from-namespaces", ".*", "comma-separated regular expressions of namespaces whose Secrets, ConfigMaps and ServiceAccounts may push (replicate-to, replicate-to-matching); empty: none")
	fs.StringVar(&c.pushRBACFromRaw, "push-rbac-from-namespaces", "", "comma-separated regular expressions of namespaces whose Roles and RoleBindings may push; empty: none (they grant rights)")
	fs.StringVar(&c.pushToSystemRaw, "push-to-system-namespaces", "", "comma-separated regular expressions of the system namespaces (kube-system, kube-public, kube-node-lease) that may receive push replicas; empty: none")
	fs.Bool("sync-by-content", false, "accepted for compatibility with kubernetes-replicator; content is always compared")
	fs.BoolVar(&c.replicateSecrets, "replicate-secrets", true, "replicate Secrets")
	fs.BoolVar(&c.replicateCMs, "replicate-configmaps", true, "replicate ConfigMaps")
	fs.BoolVar(&c.replicateRoles, "replicate-roles", true, "replicate Roles")
	fs.BoolVar(&c.replicateRBs, "replicate-role-bindings", true, "replicate RoleBindings")
	fs.BoolVar(&c.replicateSAs, "replicate-service-accounts", true, "replicate ServiceAccounts")
	fs.StringVar(&c.prefix, "annotation-prefix", replicate.DefaultPrefix, "prefix of all annotations")
	fs.IntVar(&c.workers, "workers", 16, "objects reconciled in parallel, per kind")
	fs.Float64Var(&c.qps, "kube-api-qps", 50, "API requests per second (sustained); -1: no client-side limit")
	fs.IntVar(&c.burst, "kube-api-burst", 100, "API requests in a burst")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&c.profiling, "profiling", false, "serve Go's pprof profiles under /debug/pprof/ on --status-addr")
	fs.BoolVar(&c.leaderElect, "leader-elect", true, "hold a Lease so that only one of several replicas writes")
	fs.StringVar(&c.leaseName, "leader-elect-lease-name", "replicator", "name of the leader Lease")
	fs.StringVar(&c.leaseNamespace, "leader-elect-namespace", "", "namespace of the leader Lease (default: $POD_NAMESPACE, the in-cluster namespace, or default)")
	fs.DurationVar(&c.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a standby waits after the last renewal before taking over")
	fs.DurationVar(&c.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives up leading")
	fs.DurationVar(&c.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often the Lease is tried and renewed")
	fs.StringVar(&c.clusterName, "cluster-name", "", "this cluster's name, matched against the replication-allowed-clusters list of sources in other clusters")
	kubeconfigs := map[string]string{}
	namespaces := map[string][]string{}
	var order []string
	fs.Func("source-cluster", "NAME=KUBECONFIG: placeholders here may pull Secrets from that cluster as NAME:<namespace>/<name> (repeatable)", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok || path == "" {
			return fmt.Errorf("%q is not NAME=KUBECONFIG", v)
		}
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return fmt.Errorf("cluster name %q: %s", name, strings.Join(errs, "; "))
		}
		if _, dup := kubeconfigs[name]; dup {
			return fmt.Errorf("cluster %s given twice", name)
		}
		kubeconfigs[name] = path
		order = append(order, name)
		return nil
	})
	fs.Func("source-cluster-namespaces", "NAME=NAMESPACE[,NAMESPACE...]: the namespaces of source cluster NAME that are watched for sources (repeatable)", func(v string) error {
		name, list, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("%q is not NAME=NAMESPACE[,NAMESPACE...]", v)
		}
		for _, ns := range strings.Split(list, ",") {
			ns = strings.TrimSpace(ns)
			if ns == "" {
				continue
			}
			if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
				return fmt.Errorf("cluster %s: namespace %q: %s", name, ns, strings.Join(errs, "; "))
			}
			namespaces[name] = append(namespaces[name], ns)
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var err error
	if c.logLevel, err = logrus.ParseLevel(logLevel); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	if c.logFormat != "plain" && c.logFormat != "json" {
		return nil, fmt.Errorf("-log-format: %q is neither plain nor json", c.logFormat)
	}
	if c.resyncPeriod < 0 {
		return nil, fmt.Errorf("-resync-period: must not be negative")
	}
	if c.workers < 1 {
		return nil, fmt.Errorf("-workers: must be at least 1")
	}
	if c.qps == 0 || (c.qps < 0 && c.qps != -1) {
		return nil, fmt.Errorf("-kube-api-qps: must be positive, or -1 for no limit")
	}
	if c.burst < 1 {
		return nil, fmt.Errorf("-kube-api-burst: must be at least 1")
	}
	c.prefix = strings.TrimSuffix(c.prefix, "/")
	if errs := validation.IsQualifiedName(c.prefix + "/replicate-from"); c.prefix == "" || len(errs) > 0 {
		return nil, fmt.Errorf("-annotation-prefix: %q is not a valid annotation prefix: %s", c.prefix, strings.Join(errs, "; "))
	}
	if c.leaderElect {
		if !(c.retryPeriod > 0 && c.retryPeriod < c.renewDeadline && c.renewDeadline < c.leaseDuration) {
			return nil, fmt.Errorf("-leader-elect-*: need 0 < retry-period < renew-deadline < lease-duration")
		}
		if errs := validation.IsDNS1123Subdomain(c.leaseName); len(errs) > 0 {
			return nil, fmt.Errorf("-leader-elect-lease-name: %s", strings.Join(errs, "; "))
		}
		if c.leaseNamespace == "" {
			c.leaseNamespace = defaultLeaseNamespace()
		}
		if errs := validation.IsDNS1123Label(c.leaseNamespace); len(errs) > 0 {
			return nil, fmt.Errorf("-leader-elect-namespace: %s", strings.Join(errs, "; "))
		}
	}
	if c.clusterName != "" {
		if errs := validation.IsDNS1123Label(c.clusterName); len(errs) > 0 {
			return nil, fmt.Errorf("-cluster-name: %s", strings.Join(errs, "; "))
		}
	}
	for name := range namespaces {
		if _, ok := kubeconfigs[name]; !ok {
			return nil, fmt.Errorf("-source-cluster-namespaces: cluster %s has no -source-cluster", name)
		}
	}
	for _, name := range order {
		switch {
		case len(namespaces[name]) == 0:
			return nil, fmt.Errorf("-source-cluster %s: no namespaces to watch; add -source-cluster-namespaces %s=NAMESPACE[,NAMESPACE...]", name, name)
		case c.clusterName == "":
			return nil, fmt.Errorf("-source-cluster needs -cluster-name: sources in other clusters are matched against it")
		case name == c.clusterName:
			return nil, fmt.Errorf("-source-cluster %s: that is this cluster's own name", name)
		case !c.replicateSecrets:
			return nil, fmt.Errorf("-source-cluster needs -replicate-secrets: cross-cluster pull serves Secrets")
		}
		c.sourceClusters = append(c.sourceClusters, sourceCluster{name: name, kubeconfig: kubeconfigs[name], namespaces: namespaces[name]})
	}
	for _, list := range []struct {
		flag string
		raw  string
		to   *replicate.Patterns
	}{
		{"exclude-namespaces", c.excludeRaw, &c.exclude},
		{"push-from-namespaces", c.pushFromRaw, &c.push.From},
		{"push-rbac-from-namespaces", c.pushRBACFromRaw, &c.push.RBACFrom},
		{"push-to-system-namespaces", c.pushToSystemRaw, &c.push.ToSystem},
	} {
		var errs []error
		if *list.to, errs = replicate.ParsePatterns(list.raw); len(errs) > 0 {
			return nil, fmt.Errorf("-%s: %w", list.flag, errors.Join(errs...))
		}
	}
	return c, nil
}

// defaultLeaseNamespace is the pod's own namespace when running in a
// cluster, else "default".
func defaultLeaseNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	return "default"
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
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
	if err := serve(ctx, c, log); err != nil {
		log.WithError(err).Error("replicator stopped")
		return 1
	}
	return 0
}

// kinds are the kinds switched on. Only their informers are created, so a
// kind that is off costs neither memory nor a watch.
func (c *config) kinds() []replicate.Kind {
	var kinds []replicate.Kind
	for _, k := range []struct {
		on   bool
		kind func() replicate.Kind
	}{
		{c.replicateSecrets, replicate.Secrets},
		{c.replicateCMs, replicate.ConfigMaps},
		{c.replicateRoles, replicate.Roles},
		{c.replicateRBs, replicate.RoleBindings},
		{c.replicateSAs, replicate.ServiceAccounts},
	} {
		if k.on {
			kinds = append(kinds, k.kind())
		}
	}
	return kinds
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

// remoteClient returns a client for a source cluster. It only lists and
// watches, so the default rate limit is plenty.
func remoteClient(s sourceCluster) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("source cluster %s: loading kubeconfig: %w", s.name, err)
	}
	withClientDefaults(cfg)
	return kubernetes.NewForConfig(cfg)
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
	log.WithFields(logrus.Fields{"version": version, "prefix": c.prefix, "workers": c.workers}).Info("replicator starting")
	log.WithFields(logrus.Fields{"from": c.pushFromRaw, "rbacFrom": c.pushRBACFromRaw, "toSystem": c.pushToSystemRaw}).Info("push policy")
	if c.allowAll {
		log.Warn("--allow-all is set: the pull permission check is OFF, any namespace can copy any Secret that names it")
	}
	cfg, err := restConfig(c)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	// Events get a client of their own so that they never take from the
	// request budget of replica writes.
	eventClient, err := kubernetes.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return fmt.Errorf("creating event client: %w", err)
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventClient.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "replicator"})

	kinds := c.kinds()
	if len(kinds) == 0 {
		log.Warn("every kind is switched off: nothing to replicate")
	}

	registry, metrics, leader := newMetrics()
	health := liveness.New()
	health.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	if c.profiling {
		health.Handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
		health.Handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		health.Handle("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	annotations := replicate.NewAnnotations(c.prefix)
	factory := informers.NewSharedInformerFactoryWithOptions(client, c.resyncPeriod,
		informers.WithTransform(replicate.CacheTransform(annotations, c.allowAll)))
	remotes := map[string]*replicate.Remote{}
	for _, s := range c.sourceClusters {
		sourceClient, err := remoteClient(s)
		if err != nil {
			return err
		}
		r, err := replicate.NewRemote(replicate.RemoteOptions{
			Name:       s.name,
			Client:     sourceClient,
			Namespaces: s.namespaces,
			// --allow-all never opens another cluster's Secrets: keep
			// only the data of those that opt in.
			Transform: replicate.CacheTransform(annotations, false),
			Resync:    c.resyncPeriod,
			Log:       log,
			Metrics:   metrics,
		})
		if err != nil {
			return err
		}
		remotes[s.name] = r
		// Not part of /readyz: a source cluster that cannot be reached
		// does not stop replication in this one.
		health.Add("/readyz/clusters", s.name, r.Check)
	}
	var controllers []*replicate.Controller
	for _, k := range kinds {
		opts := replicate.Options{
			Annotations: annotations,
			AllowAll:    c.allowAll,
			Exclude:     c.exclude,
			Push:        c.push,
			Workers:     c.workers,
			Recorder:    recorder,
			Log:         log,
			Metrics:     metrics,
			Cluster:     c.clusterName,
		}
		if k.Name() == replicate.Secrets().Name() {
			opts.Remotes = remotes
		}
		ctrl, err := replicate.NewController(k, client, factory, opts)
		if err != nil {
			return err
		}
		controllers = append(controllers, ctrl)
		health.AddReady(strings.ToLower(k.Name())+"s", ctrl.Ready)
	}

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
		return err
	}
	log.WithField("address", addr.String()).Info("status endpoints listening")

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
	if limit := softMemoryLimit(cgroupMemoryMax); limit > 0 {
		log.WithField("bytes", limit).Info("soft memory limit set from the container's limit")
	}
	restoreGC := tightenGCDuringSync()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	var remotesDone sync.WaitGroup
	defer func() {
		cancel()
		remotesDone.Wait()
	}()
	for _, r := range remotes {
		remotesDone.Go(func() { r.Run(ctx) })
	}
	go func() {
		// Start-up ends when, on the leader, the caches are loaded and
		// everything found has been reconciled once (a controller settles
		// only after its caches synced). A standby stays at the tighter
		// setting: it only keeps its cache.
		for _, ctrl := range controllers {
			select {
			case <-ctrl.Settled():
			case <-ctx.Done():
				return
			}
		}
		restoreGC()
		log.Info("start-up reconcile done")
	}()

	// work runs the controllers until ctx ends.
	work := func(ctx context.Context) {
		leader.Set(1)
		defer leader.Set(0)
		var wg sync.WaitGroup
		for _, ctrl := range controllers {
			wg.Go(func() {
				if err := ctrl.Run(ctx); err != nil && ctx.Err() == nil {
					log.WithError(err).Error("controller stopped")
				}
			})
		}
		wg.Wait()
	}
	if c.leaderElect {
		err = lead(ctx, c, client, log, work)
	} else {
		work(ctx)
		log.Info("replicator shut down")
	}
	select {
	case serveErr := <-failed:
		return serveErr
	default:
		return err
	}
}

// syncGCPercent is the garbage collector's target during start-up: while the
// informers load the cluster and the first reconcile of everything runs. The
// load streams every Secret and ConfigMap in full (the cache transform drops
// the data of unrelated ones only after decoding), and the first reconcile
// looks at every object at once, so both produce garbage many times the size
// of what is kept; collecting four times as often bounds the start-up peak by
// what is kept. It lasts seconds, so the extra CPU is small.
const syncGCPercent = 25

// tightenGCDuringSync sets syncGCPercent unless GOGC is set, and returns what
// restores the previous setting.
func tightenGCDuringSync() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	previous := debug.SetGCPercent(syncGCPercent)
	return func() { debug.SetGCPercent(previous) }
}

// cgroupMemoryMax is where a container's memory limit is (cgroup v2).
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// softMemoryLimit sets Go's soft memory limit to 90% of the container's
// memory limit, unless GOMEMLIMIT is set or there is no limit: the garbage
// collector then works harder as the process nears the limit instead of
// letting it be killed. It returns the limit set, or 0.
func softMemoryLimit(path string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	containerLimit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || containerLimit <= 0 {
		return 0 // "max": no limit
	}
	limit := containerLimit / 10 * 9
	debug.SetMemoryLimit(limit)
	return limit
}

// newMetrics returns the Prometheus registry with everything registered: the
// replicator's metrics, client-go's request metrics, build info and the
// leader gauge.
func newMetrics() (*prometheus.Registry, *replicate.Metrics, prometheus.Gauge) {
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
	entry.Info("replicator shut down")
	return nil
}
