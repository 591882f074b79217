package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubereplicator/replicator/replicate"
)

// This file is the command line: every flag, its checks, and what it turns
// into.

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
	adoptUnproven    replicate.Patterns
	adoptUnprovenRaw string
	ownNamespace     string
	// kindOn says, by kind name, whether its flag switches it on.
	kindOn         map[string]*bool
	prefix         string
	workers        int
	qps            float64
	burst          int
	showVersion    bool
	profiling      bool
	eventQPS       float64
	eventBurst     int
	leaderElect    bool
	dryRun         bool
	dialectsRaw    string
	dialects       replicate.Dialects
	leaseName      string
	leaseNamespace string
	leaseDuration  time.Duration
	renewDeadline  time.Duration
	retryPeriod    time.Duration
	clusterName    string
	sourceClusters []sourceCluster
}

// sourceCluster is a cluster placeholders here may pull from.
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
	c.define(fs, &logLevel)
	clusters := newClusterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := c.validate(logLevel); err != nil {
		return nil, err
	}
	var err error
	if c.sourceClusters, err = clusters.resolve(c); err != nil {
		return nil, err
	}
	if err := c.parsePatterns(); err != nil {
		return nil, err
	}
	if c.ownNamespace == "" {
		c.ownNamespace = inClusterNamespace()
	}
	if c.ownNamespace != "" {
		if errs := validation.IsDNS1123Label(c.ownNamespace); len(errs) > 0 {
			return nil, fmt.Errorf("-namespace: %s", strings.Join(errs, "; "))
		}
		c.push.Protected = []string{c.ownNamespace}
	}
	return c, nil
}

// define declares the flags on fs.
func (c *config) define(fs *flag.FlagSet, logLevel *string) {
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty: in-cluster configuration")
	fs.DurationVar(&c.resyncPeriod, "resync-period", 30*time.Minute, "how often every cached object is reconciled again")
	fs.StringVar(&c.statusAddr, "status-addr", ":9102", "address of the /healthz, /readyz and /metrics endpoints")
	fs.StringVar(logLevel, "log-level", "info", "log level: trace, debug, info, warning, error")
	fs.StringVar(&c.logFormat, "log-format", "plain", "log format: plain or json")
	fs.BoolVar(&c.allowAll, "allow-all", false, "switch the pull permission check off: any namespace may pull any source (dangerous)")
	fs.StringVar(&c.excludeRaw, "exclude-namespaces", "", "comma-separated regular expressions of namespaces never written (each matches whole names)")
	fs.StringVar(&c.pushFromRaw, "push-from-namespaces", ".*", "comma-separated regular expressions of namespaces whose "+kindsWhere(grantsNoRights)+" may push (replicate-to, replicate-to-matching); empty: none")
	fs.StringVar(&c.pushRBACFromRaw, "push-rbac-from-namespaces", "", "comma-separated regular expressions of namespaces whose "+kindsWhere(grantsRights)+" may push; empty: none (they grant rights)")
	fs.StringVar(&c.pushToSystemRaw, "push-to-system-namespaces", "", "comma-separated regular expressions of the system namespaces (kube-system, kube-public, kube-node-lease) that may receive push replicas, from the namespaces --push-from-namespaces names plainly (not by a pattern); empty: none")
	fs.StringVar(&c.adoptUnprovenRaw, "adopt-unproven-copies-in", "", "comma-separated regular expressions of namespaces where copies with kubernetes-replicator's bookkeeping are adopted without proof that they came from the pushing source (their recorded version being the source's current one); empty: none")
	fs.StringVar(&c.ownNamespace, "namespace", os.Getenv("POD_NAMESPACE"), "the replicator's own namespace, which never receives push replicas (default: $POD_NAMESPACE, set by the chart)")
	fs.Bool("sync-by-content", false, "accepted for compatibility with kubernetes-replicator; content is always compared")
	c.kindOn = map[string]*bool{}
	for _, k := range replicate.Kinds() {
		c.kindOn[k.Name()] = fs.Bool(k.Flag(), true, "replicate "+k.Plural())
	}
	fs.StringVar(&c.prefix, "annotation-prefix", replicate.DefaultPrefix, "prefix of all annotations")
	fs.IntVar(&c.workers, "workers", 32, "objects reconciled in parallel, per kind, and writes of one push source at once")
	fs.Float64Var(&c.qps, "kube-api-qps", 50, "API requests per second (sustained); -1: no client-side limit")
	fs.IntVar(&c.burst, "kube-api-burst", 100, "API requests in a burst")
	fs.Float64Var(&c.eventQPS, "normal-event-qps", 5, "Normal Events (Replicated, Adopted) recorded per second, across all objects, beyond the burst; the rest are counted, not recorded; Warnings are not limited; -1: no limit")
	fs.IntVar(&c.eventBurst, "normal-event-burst", 100, "Normal Events recorded in a burst")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&c.profiling, "profiling", false, "serve Go's pprof profiles under /debug/pprof/ on --status-addr")
	fs.BoolVar(&c.leaderElect, "leader-elect", true, "hold a Lease so that only one of several replicas writes")
	fs.StringVar(&c.dialectsRaw, "dialects", replicate.Dialects{}.String(), "comma-separated annotation dialects read: "+dialectsHelp())
	fs.BoolVar(&c.dryRun, "dry-run", false, "write nothing (no objects, no Events, no Lease): log and count each write that would be made")
	fs.StringVar(&c.leaseName, "leader-elect-lease-name", "replicator", "name of the leader Lease")
	fs.StringVar(&c.leaseNamespace, "leader-elect-namespace", "", "namespace of the leader Lease (default: $POD_NAMESPACE, the in-cluster namespace, or default)")
	fs.DurationVar(&c.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a standby waits after the last renewal before taking over")
	fs.DurationVar(&c.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives up leading")
	fs.DurationVar(&c.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often the Lease is tried and renewed")
	fs.StringVar(&c.clusterName, "cluster-name", "", "this cluster's name, matched against the replication-allowed-clusters list of sources in other clusters")
}

// validate checks the values that the flag package cannot, in the order
// the steps are listed: the first problem is reported.
func (c *config) validate(logLevel string) error {
	for _, step := range []func() error{
		func() error { return c.validateLogs(logLevel) },
		c.validateRates,
		c.validateAnnotations,
		c.validateLeaderElection,
		c.validateClusterName,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// validateLogs reads the log level and checks the log format.
func (c *config) validateLogs(logLevel string) error {
	var err error
	if c.logLevel, err = logrus.ParseLevel(logLevel); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	if c.logFormat != "plain" && c.logFormat != "json" {
		return fmt.Errorf("-log-format: %q is neither plain nor json", c.logFormat)
	}
	return nil
}

// validateRates checks the periods, workers and rate limits.
func (c *config) validateRates() error {
	switch {
	case c.resyncPeriod < 0:
		return fmt.Errorf("-resync-period: must not be negative")
	case c.workers < 1:
		return fmt.Errorf("-workers: must be at least 1")
	case c.qps == 0 || (c.qps < 0 && c.qps != -1):
		return fmt.Errorf("-kube-api-qps: must be positive, or -1 for no limit")
	case c.burst < 1:
		return fmt.Errorf("-kube-api-burst: must be at least 1")
	case c.eventQPS < 0 && c.eventQPS != -1:
		return fmt.Errorf("-normal-event-qps: must be at least 0, or -1 for no limit")
	case c.eventBurst < 0:
		return fmt.Errorf("-normal-event-burst: must be at least 0")
	}
	return nil
}

// validateAnnotations checks the annotation prefix and reads the dialects.
func (c *config) validateAnnotations() error {
	c.prefix = strings.TrimSuffix(c.prefix, "/")
	if errs := validation.IsQualifiedName(c.prefix + "/replicate-from"); c.prefix == "" || len(errs) > 0 {
		return fmt.Errorf("-annotation-prefix: %q is not a valid annotation prefix: %s", c.prefix, strings.Join(errs, "; "))
	}
	var err error
	if c.dialects, err = replicate.ParseDialects(c.dialectsRaw); err != nil {
		return fmt.Errorf("-dialects: %w", err)
	}
	return nil
}

// validateLeaderElection checks the Lease and its timing, when one is held.
func (c *config) validateLeaderElection() error {
	if c.dryRun {
		// A Lease is a write too; a dry run works beside anything.
		c.leaderElect = false
	}
	if !c.leaderElect {
		return nil
	}
	if !(c.retryPeriod > 0 && c.retryPeriod < c.renewDeadline && c.renewDeadline < c.leaseDuration) {
		return fmt.Errorf("-leader-elect-*: need 0 < retry-period < renew-deadline < lease-duration")
	}
	if errs := validation.IsDNS1123Subdomain(c.leaseName); len(errs) > 0 {
		return fmt.Errorf("-leader-elect-lease-name: %s", strings.Join(errs, "; "))
	}
	if c.leaseNamespace == "" {
		c.leaseNamespace = defaultLeaseNamespace()
	}
	if errs := validation.IsDNS1123Label(c.leaseNamespace); len(errs) > 0 {
		return fmt.Errorf("-leader-elect-namespace: %s", strings.Join(errs, "; "))
	}
	return nil
}

// validateClusterName checks this cluster's name, if given.
func (c *config) validateClusterName() error {
	if c.clusterName == "" {
		return nil
	}
	if errs := validation.IsDNS1123Label(c.clusterName); len(errs) > 0 {
		return fmt.Errorf("-cluster-name: %s", strings.Join(errs, "; "))
	}
	return nil
}

// parsePatterns parses the pattern-list flags.
func (c *config) parsePatterns() error {
	for _, list := range []struct {
		flag string
		raw  string
		to   *replicate.Patterns
	}{
		{"exclude-namespaces", c.excludeRaw, &c.exclude},
		{"push-from-namespaces", c.pushFromRaw, &c.push.From},
		{"push-rbac-from-namespaces", c.pushRBACFromRaw, &c.push.RBACFrom},
		{"push-to-system-namespaces", c.pushToSystemRaw, &c.push.ToSystem},
		{"adopt-unproven-copies-in", c.adoptUnprovenRaw, &c.adoptUnproven},
	} {
		var errs []error
		if *list.to, errs = replicate.ParsePatterns(list.raw); len(errs) > 0 {
			return fmt.Errorf("-%s: %w", list.flag, errors.Join(errs...))
		}
	}
	return nil
}

// clusterFlags collects --source-cluster and --source-cluster-namespaces,
// which may come in any order.
type clusterFlags struct {
	kubeconfigs map[string]string
	namespaces  map[string][]string
	order       []string
}

func newClusterFlags(fs *flag.FlagSet) *clusterFlags {
	f := &clusterFlags{kubeconfigs: map[string]string{}, namespaces: map[string][]string{}}
	fs.Func("source-cluster", "NAME=KUBECONFIG: placeholders here may pull "+kindsWhere(fromOtherClusters)+" from that cluster as NAME:<namespace>/<name> (repeatable)", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok || path == "" {
			return fmt.Errorf("%q is not NAME=KUBECONFIG", v)
		}
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return fmt.Errorf("cluster name %q: %s", name, strings.Join(errs, "; "))
		}
		if _, dup := f.kubeconfigs[name]; dup {
			return fmt.Errorf("cluster %s given twice", name)
		}
		f.kubeconfigs[name] = path
		f.order = append(f.order, name)
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
			f.namespaces[name] = append(f.namespaces[name], ns)
		}
		return nil
	})
	return f
}

// resolve pairs each source cluster with its namespaces.
func (f *clusterFlags) resolve(c *config) ([]sourceCluster, error) {
	var clusters []sourceCluster
	for name := range f.namespaces {
		if _, ok := f.kubeconfigs[name]; !ok {
			return nil, fmt.Errorf("-source-cluster-namespaces: cluster %s has no -source-cluster", name)
		}
	}
	for _, name := range f.order {
		switch {
		case len(f.namespaces[name]) == 0:
			return nil, fmt.Errorf("-source-cluster %s: no namespaces to watch; add -source-cluster-namespaces %s=NAMESPACE[,NAMESPACE...]", name, name)
		case c.clusterName == "":
			return nil, fmt.Errorf("-source-cluster needs -cluster-name: sources in other clusters are matched against it")
		case name == c.clusterName:
			return nil, fmt.Errorf("-source-cluster %s: that is this cluster's own name", name)
		case !slices.ContainsFunc(c.kinds(), fromOtherClusters):
			var flags []string
			for _, k := range replicate.Kinds() {
				if fromOtherClusters(k) {
					flags = append(flags, "-"+k.Flag())
				}
			}
			return nil, fmt.Errorf("-source-cluster needs %s: cross-cluster pull serves %s", listed(flags, "or"), kindsWhere(fromOtherClusters))
		}
		clusters = append(clusters, sourceCluster{name: name, kubeconfig: f.kubeconfigs[name], namespaces: f.namespaces[name]})
	}
	return clusters, nil
}

// kinds are the kinds switched on. Only their informers are created, so a
// kind that is off costs neither memory nor a watch.
func (c *config) kinds() []replicate.Kind {
	var kinds []replicate.Kind
	for _, k := range replicate.Kinds() {
		if on := c.kindOn[k.Name()]; on != nil && *on {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// What the help says of kinds, from the registry.
func grantsRights(k replicate.Kind) bool      { return k.Rules().GrantsRights }
func grantsNoRights(k replicate.Kind) bool    { return !k.Rules().GrantsRights }
func fromOtherClusters(k replicate.Kind) bool { return k.FromOtherClusters() }

// kindsWhere names the kinds of the registry for which pick holds, as a
// sentence lists them: "Secrets, ConfigMaps and ServiceAccounts".
func kindsWhere(pick func(replicate.Kind) bool) string {
	var names []string
	for _, k := range replicate.Kinds() {
		if pick(k) {
			names = append(names, k.Plural())
		}
	}
	return listed(names, "and")
}

// dialectsHelp says which dialects --dialects knows, what each reads and on
// which kinds.
func dialectsHelp() string {
	help := []string{replicate.Dialects{}.String() + " (always)"}
	for _, d := range replicate.KnownDialects() {
		speaks := func(k replicate.Kind) bool { return k.Dialects().Reads(d) }
		help = append(help, d.String()+" ("+d.Annotations()+" on "+kindsWhere(speaks)+")")
	}
	return strings.Join(help, ", ")
}

// listed joins words as a sentence lists them, the last two joined by conj.
func listed(words []string, conj string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}

// defaultLeaseNamespace is the pod's own namespace when running in a
// cluster, else "default".
func defaultLeaseNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if ns := inClusterNamespace(); ns != "" {
		return ns
	}
	return "default"
}

// inClusterNamespace is the namespace of the pod's ServiceAccount when
// running in a cluster, else "".
func inClusterNamespace() string {
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	return ""
}
