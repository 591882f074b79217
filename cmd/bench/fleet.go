package main

// The fleet mode: one hub, many spokes. A Secret in the hub's namespace
// certs is pulled by N replicators, each the replicator of its own spoke
// cluster, through a ServiceAccount of its own that may only read the
// Secrets of certs. What the hub pays for them is measured: its requests at
// rest and per renewal, its watches, its memory, and how long a renewal
// takes to reach every spoke.
//
// A kube-apiserver and etcd take about 300 MiB: a hundred spokes cannot
// each have their own. Spokes share spoke API servers, -fleet-group (10) to
// one, a namespace each. Sharing costs what no real spoke pays: every
// replicator watches every Secret of its API server, so each placeholder
// written reaches every replicator of the group (group² events per renewal;
// with all 100 in one API server a renewal took 5-6 s to reach them all,
// 0.05-0.1 s with 10). --exclude-namespaces cannot keep them apart either: every spoke's replicator would reconcile every
// placeholder that names the hub's Secret at each renewal and raise a
// NamespaceExcluded Warning for N-1 of them (N² Events per renewal in the
// spoke API server). Each spoke therefore runs with an annotation prefix of
// its own (s<i>.fleet): its placeholder is, to the others, an unrelated
// Secret. The hub's source carries its consent once per prefix, which makes
// it larger than one real fleet's source (about 130 bytes per spoke, of
// which each spoke's cache keeps its own); the hub's requests and watches do
// not depend on it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubereplicator/replicator/controlplane"
	"github.com/kubereplicator/replicator/internal/testsupport"
)

// fleetOptions configure the fleet mode.
type fleetOptions struct {
	binDir string
	// idle is how long the hub is watched at rest, before the spokes and
	// with them.
	idle time.Duration
	// settle is how long to wait after every placeholder is filled before
	// the hub counts as at rest.
	settle   time.Duration
	renewals int
	// placeholders is how many placeholders each spoke has.
	placeholders int
	// starting is how many replicators start at once.
	starting int
	// group is how many spokes share a spoke API server.
	group int
	// outages are how long the hub's API server is stopped, one after the
	// other, at outagesAt spokes, each followed by a renewal made as soon
	// as it answers again.
	outages   []time.Duration
	outagesAt int
	// logs, when set, is a folder the tail of each spoke's log is written
	// to after each outage.
	logs  string
	extra []string
}

// fleetSpokeArgs are the flags of every spoke's replicator beyond its
// cluster, prefix and hub: only Secrets come from other clusters, and the
// spokes' other kinds would only load the shared spoke API server (what a
// spoke does in its own cluster costs the hub nothing). -replicator-args
// come after these and win.
var fleetSpokeArgs = []string{"--leader-elect=false", "--log-level=warning",
	"--replicate-configmaps=false", "--replicate-roles=false", "--replicate-role-bindings=false", "--replicate-service-accounts=false"}

// fleetAt is what the hub looks like over one window: its requests (from
// its own /metrics and, by user, from its audit log), its watches, memory
// and CPU.
type fleetAt struct {
	Seconds float64 `json:"seconds"`
	// Requests is apiserver_request_total over the window, by verb: every
	// request the hub answered, its own loopback clients' and the bench's
	// included.
	Requests map[string]float64 `json:"requests"`
	// Audit counts the requests received in the window by who sent them
	// (spokes, bench, apiserver: the hub's own loopback clients, or another
	// user) and verb, from the hub's audit log.
	Audit map[string]map[string]int `json:"audit"`
	// SpokesSeen is how many spokes the audit log shows sending anything
	// but a watch in the window.
	SpokesSeen int `json:"spokesSendingOtherThanWatches"`
	// FromReplicators sums the spokes' own rest_client_requests_total for
	// the hub over the window, by method (a watch is a GET).
	FromReplicators map[string]float64 `json:"fromReplicators,omitempty"`
	// Watches is apiserver_longrunning_requests{verb="WATCH"} at the end;
	// SecretWatches those on secrets.
	Watches       float64 `json:"watches"`
	SecretWatches float64 `json:"secretWatches"`
	RSS           float64 `json:"hubRSSMiB"`
	EtcdRSS       float64 `json:"etcdRSSMiB"`
	CPU           float64 `json:"hubCPUSeconds"`
}

func (a fleetAt) total() float64 {
	t := 0.0
	for _, v := range a.Requests {
		t += v
	}
	return t
}

// perSecond is the hub's requests a second over the window.
func (a fleetAt) perSecond() float64 { return a.total() / a.Seconds }

// spokeRequests is what the spokes sent in the window: watches, and the
// rest.
func (a fleetAt) spokeRequests() (watches, other int) {
	for verb, n := range a.Audit["spokes"] {
		if verb == "watch" {
			watches += n
		} else {
			other += n
		}
	}
	return watches, other
}

// fleetRenewal is one update of the hub's source.
type fleetRenewal struct {
	// Request is how long the update request took; Latency from its
	// answer until the bench's watches of the spoke API servers saw the
	// last placeholder hold the new data, First the first.
	Request float64 `json:"requestSeconds"`
	Latency float64 `json:"latencySeconds"`
	First   float64 `json:"firstSeconds"`
	// Hub is the hub over the renewal: from the update until a second
	// after the last placeholder was filled.
	Hub fleetAt `json:"hub"`
}

type fleetRow struct {
	Spokes       int `json:"spokes"`
	Placeholders int `json:"placeholdersPerSpoke"`
	// SpokeAPIServers is how many API servers the spokes share.
	SpokeAPIServers int    `json:"spokeAPIServers"`
	Commit          string `json:"commit"`
	// SourceBytes is the size of the hub's source's annotations (its
	// consent, once per spoke prefix).
	SourceBytes int `json:"sourceAnnotationBytes"`
	// Started is how long starting every replicator took (each until its
	// /readyz answers); Filled from the first start until every placeholder
	// held the source's data.
	Started  float64        `json:"startedSeconds"`
	Filled   float64        `json:"filledSeconds"`
	Before   fleetAt        `json:"beforeSpokes"`
	With     fleetAt        `json:"withSpokes"`
	Renewals []fleetRenewal `json:"renewals"`
	// ReplicatorRSS is the spokes' replicators' VmRSS, mean and highest,
	// and their anonymous memory's mean, after the renewals.
	ReplicatorRSS     float64 `json:"replicatorRSSMiB"`
	ReplicatorRSSMax  float64 `json:"replicatorRSSMaxMiB"`
	ReplicatorAnonRSS float64 `json:"replicatorAnonRSSMiB"`
	// Lifetime is every request the spokes sent the hub since they
	// started, by method, from their own metrics, at the end.
	Lifetime map[string]float64 `json:"spokesRequestsToTheHub"`
	// Outages are the hub's outages and the renewal made right after each.
	Outages []fleetOutage `json:"outages,omitempty"`
}

// fleetOutage is the hub's API server stopped for a while, then the source
// renewed as soon as it answers again (StartAPIServer returns once its
// /readyz does).
type fleetOutage struct {
	Down    float64      `json:"downSeconds"`
	Renewal fleetRenewal `json:"renewal"`
	// SpokeRequests are the spokes' requests to the hub from its return
	// until a second after the renewal reached every placeholder, by verb
	// (the audit log): the probes that find it back and the new watches.
	SpokeRequests map[string]int `json:"spokeRequestsOnReturn"`
}

// latencies returns the renewals' latencies: median and highest, and the
// median until the first placeholder held the new data.
func (r fleetRow) latencies() (med, most, first float64) {
	var xs, fs []float64
	for _, rn := range r.Renewals {
		xs = append(xs, rn.Latency)
		fs = append(fs, rn.First)
	}
	if len(xs) == 0 {
		return 0, 0, 0
	}
	return median(xs), slices.Max(xs), median(fs)
}

// fleetSlope is a per-spoke cost fitted over the runs.
type fleetSlope struct {
	What      string  `json:"what"`
	PerSpoke  float64 `json:"perSpoke"`
	Intercept float64 `json:"intercept"`
	Unit      string  `json:"unit"`
}

type fleetReport struct {
	Rows   []fleetRow   `json:"rows"`
	Slopes []fleetSlope `json:"slopes"`
}

// fitLine fits y = intercept + slope*x by least squares; ok is false when
// the xs do not vary.
func fitLine(xs, ys []float64) (slope, intercept float64, ok bool) {
	if len(xs) != len(ys) || len(xs) < 2 {
		return 0, 0, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(ys))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return 0, 0, false
	}
	slope = sxy / sxx
	return slope, my - slope*mx, true
}

// fleetSlopes fits each per-spoke cost over the runs: each run gives two
// points, the hub before its spokes (x = 0) and with them (x = N).
func fleetSlopes(rows []fleetRow) []fleetSlope {
	figures := []struct {
		what, unit string
		of         func(fleetAt) float64
	}{
		{"hub watches", "watches", func(a fleetAt) float64 { return a.Watches }},
		{"hub RSS", "MiB", func(a fleetAt) float64 { return a.RSS }},
		{"hub requests at rest", "requests/s", fleetAt.perSecond},
		{"spokes' requests at rest other than watches", "requests/s", func(a fleetAt) float64 {
			_, other := a.spokeRequests()
			return float64(other) / a.Seconds
		}},
		{"hub CPU at rest", "ms/s", func(a fleetAt) float64 { return 1000 * a.CPU / a.Seconds }},
	}
	var out []fleetSlope
	for _, f := range figures {
		var xs, ys []float64
		for _, r := range rows {
			xs = append(xs, 0, float64(r.Spokes))
			ys = append(ys, f.of(r.Before), f.of(r.With))
		}
		if slope, intercept, ok := fitLine(xs, ys); ok {
			out = append(out, fleetSlope{What: f.what, PerSpoke: slope, Intercept: intercept, Unit: f.unit})
		}
	}
	return out
}

// parseSizes reads a comma-separated list of positive numbers.
func parseSizes(flagName, list string) ([]int, error) {
	var ns []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: %q is not a positive number", flagName, s)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

func runFleet(sizes string, out string, o fleetOptions) error {
	ns, err := parseSizes("fleet", sizes)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "replicator-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	binary, err := testsupport.Build(dir)
	if err != nil {
		return err
	}
	var report fleetReport
	write := func() error {
		report.Slopes = fleetSlopes(report.Rows)
		j, _ := json.MarshalIndent(report, "", "  ")
		return os.WriteFile(out, append(j, '\n'), 0o644)
	}
	if o.outagesAt == 0 {
		o.outagesAt = slices.Max(ns)
	}
	for _, n := range ns {
		row, err := fleetOnce(context.Background(), binary, filepath.Join(dir, strconv.Itoa(n)), n, o)
		if err != nil {
			_ = write()
			return fmt.Errorf("%d spokes: %w", n, err)
		}
		report.Rows = append(report.Rows, row)
		// Each size is kept as soon as it is measured.
		if err := write(); err != nil {
			return err
		}
	}
	printFleet(report)
	return nil
}

// printFleet prints the table, the renewals and the slopes.
func printFleet(report fleetReport) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "spokes\tspoke API servers\thub req/s before\twith\tper spoke\tspokes' req in idle (watch, other)\twatches before\twith\thub RSS MiB before\twith\tper spoke KiB\thub CPU ms/s before\twith\trenewal s: first (median)\tall (median)\tall (max)\tspokes' req per renewal (watch, other)\thub req per renewal\tfill s\treplicator RSS MiB (anon)\t")
	for _, r := range report.Rows {
		med, most, first := r.latencies()
		var renewalSpokes, renewalOther, renewalHub float64
		for _, rn := range r.Renewals {
			wa, ot := rn.Hub.spokeRequests()
			renewalSpokes += float64(wa)
			renewalOther += float64(ot)
			renewalHub += rn.Hub.total()
		}
		k := float64(max(len(r.Renewals), 1))
		wa, ot := r.With.spokeRequests()
		fmt.Fprintf(w, "%d\t%d\t%.2f\t%.2f\t%.4f\t%d, %d\t%.0f\t%.0f\t%.1f\t%.1f\t%.0f\t%.1f\t%.1f\t%.3f\t%.3f\t%.3f\t%.1f, %.1f\t%.1f\t%.2f\t%.1f (%.1f)\t\n",
			r.Spokes, r.SpokeAPIServers, r.Before.perSecond(), r.With.perSecond(), (r.With.perSecond()-r.Before.perSecond())/float64(r.Spokes), wa, ot,
			r.Before.Watches, r.With.Watches, r.Before.RSS, r.With.RSS, (r.With.RSS-r.Before.RSS)*1024/float64(r.Spokes),
			1000*r.Before.CPU/r.Before.Seconds, 1000*r.With.CPU/r.With.Seconds,
			first, med, most, renewalSpokes/k, renewalOther/k, renewalHub/k, r.Filled, r.ReplicatorRSS, r.ReplicatorAnonRSS)
	}
	w.Flush()
	for _, r := range report.Rows {
		fmt.Printf("%d spokes (%d placeholders each, commit %s): replicators started in %.1f s, every placeholder filled %.1f s after the first start; source annotations %d bytes; the spokes' requests to the hub in all, from their own counts: %s\n",
			r.Spokes, r.Placeholders, r.Commit, r.Started, r.Filled, r.SourceBytes, counts(r.Lifetime))
		for _, at := range []struct {
			name string
			a    fleetAt
		}{{"before the spokes", r.Before}, {"with the spokes", r.With}} {
			fmt.Printf("  hub at rest %s, %.0f s: requests by verb %s; by user %s; from the replicators' own counts %s; %.0f watches (%.0f on secrets); RSS %.1f MiB, etcd %.1f MiB; CPU %.2f s\n",
				at.name, at.a.Seconds, counts(at.a.Requests), auditString(at.a.Audit), counts(at.a.FromReplicators), at.a.Watches, at.a.SecretWatches, at.a.RSS, at.a.EtcdRSS, at.a.CPU)
		}
		for i, rn := range r.Renewals {
			fmt.Printf("  renewal %d: request %.3f s, the first placeholder %.3f s and every one %.3f s after its answer; hub over %.1f s: requests by verb %s; by user %s; from the replicators %s\n",
				i+1, rn.Request, rn.First, rn.Latency, rn.Hub.Seconds, counts(rn.Hub.Requests), auditString(rn.Hub.Audit), counts(rn.Hub.FromReplicators))
		}
	}
	for _, r := range report.Rows {
		for _, o := range r.Outages {
			fmt.Printf("%d spokes, the hub down %.0f s: a renewal made as it answered again reached the first placeholder %.3f s and every one %.3f s after the update returned; the spokes' requests meanwhile %s\n",
				r.Spokes, o.Down, o.Renewal.First, o.Renewal.Latency, counts(o.SpokeRequests))
		}
	}
	for _, s := range report.Slopes {
		fmt.Printf("per spoke (least squares over every run, before and with its spokes): %s %.4f %s (intercept %.2f)\n", s.What, s.PerSpoke, s.Unit, s.Intercept)
	}
}

// counts prints a map of counts sorted by key.
func counts[V int | float64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %v", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func auditString(a map[string]map[string]int) string {
	if len(a) == 0 {
		return "none"
	}
	var parts []string
	for _, who := range slices.Sorted(maps.Keys(a)) {
		parts = append(parts, who+" ("+counts(a[who])+")")
	}
	return strings.Join(parts, "; ")
}

// fleet is one run: the hub, the spoke API server, and the spokes'
// replicators.
type fleet struct {
	ctx       context.Context
	o         fleetOptions
	n         int
	hub       *controlplane.ControlPlane
	hubClient kubernetes.Interface
	// spokes are the spoke API servers, each with a client and a watch of
	// its placeholders; spoke i uses spokes[i/o.group].
	spokes       []*controlplane.ControlPlane
	spokeClients []kubernetes.Interface
	watchers     []*watcher
	auditLog     string
	source       *corev1.Secret
	kubeconfigs  []string
	procs        []*testsupport.Process
	logs         []*tailBuffer
}

// auditPolicy logs every request's metadata once it is answered (a watch
// once it starts, too).
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
`

func spokeName(i int) string   { return fmt.Sprintf("spoke-%d", i) }
func spokePrefix(i int) string { return fmt.Sprintf("s%d.fleet/", i) }

func placeholderName(j int) string {
	if j == 0 {
		return "wild"
	}
	return fmt.Sprintf("wild-%d", j+1)
}

func fleetOnce(ctx context.Context, binary, dir string, n int, o fleetOptions) (row fleetRow, err error) {
	row = fleetRow{Spokes: n, Placeholders: o.placeholders, Commit: treeState()}
	f := &fleet{ctx: ctx, o: o, n: n, auditLog: filepath.Join(dir, "hub-audit.log")}
	defer f.close()
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return row, err
	}
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return row, err
	}
	if f.hub, err = controlplane.Start(ctx, controlplane.Options{BinDir: o.binDir, Dir: filepath.Join(dir, "hub"),
		APIServerArgs: []string{"--audit-policy-file=" + policy, "--audit-log-path=" + f.auditLog, "--audit-log-format=json", "--audit-log-maxsize=0"}}); err != nil {
		return row, fmt.Errorf("hub: %w", err)
	}
	f.hubClient = labClient(f.hub)
	for g := 0; g*o.group < n; g++ {
		cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: o.binDir, Dir: filepath.Join(dir, fmt.Sprintf("spoke-apiserver-%d", g))})
		if err != nil {
			return row, fmt.Errorf("spoke API server: %w", err)
		}
		f.spokes, f.spokeClients = append(f.spokes, cp), append(f.spokeClients, labClient(cp))
	}
	row.SpokeAPIServers = len(f.spokes)
	setup := time.Now()
	if err := f.setUpHub(dir); err != nil {
		return row, fmt.Errorf("setting up the hub: %w", err)
	}
	for _, v := range f.source.Annotations {
		row.SourceBytes += len(v)
	}
	for k := range f.source.Annotations {
		row.SourceBytes += len(k)
	}
	if err := f.setUpSpokes(); err != nil {
		return row, fmt.Errorf("setting up the spokes: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: %d spokes: the hub and %d spoke API servers set up in %.1f s\n", n, len(f.spokes), time.Since(setup).Seconds())
	for _, c := range f.spokeClients {
		w, err := newWatcher(&bench{ctx: ctx, client: c})
		if err != nil {
			return row, err
		}
		defer w.stop()
		f.watchers = append(f.watchers, w)
	}

	time.Sleep(o.settle)
	fmt.Fprintf(os.Stderr, "bench: %d spokes: the hub at rest before the spokes, %s\n", n, o.idle)
	if row.Before, err = f.atRest(o.idle); err != nil {
		return row, err
	}

	start := time.Now()
	if err := f.startSpokes(binary); err != nil {
		return row, err
	}
	row.Started = time.Since(start).Seconds()
	total := n * o.placeholders
	_, last, err := f.wait(f.source.Data, 5*time.Minute)
	if err != nil {
		return row, fmt.Errorf("filling: %w", err)
	}
	row.Filled = last.Sub(start).Seconds()
	fmt.Fprintf(os.Stderr, "bench: %d spokes: started in %.1f s, %d placeholders filled %.1f s after the first start\n", n, row.Started, total, row.Filled)

	time.Sleep(o.settle)
	fmt.Fprintf(os.Stderr, "bench: %d spokes: the hub at rest with the spokes, %s\n", n, o.idle)
	if row.With, err = f.atRest(o.idle); err != nil {
		return row, err
	}
	if exited := f.exited(); exited != "" {
		return row, fmt.Errorf("a replicator exited: %s", exited)
	}

	for i := 1; i <= o.renewals; i++ {
		rn, err := f.renew(i)
		if err != nil {
			return row, fmt.Errorf("renewal %d: %w", i, err)
		}
		fmt.Fprintf(os.Stderr, "bench: %d spokes: renewal %d reached the first placeholder %.3f s and every one %.3f s after the update returned\n", n, i, rn.First, rn.Latency)
		row.Renewals = append(row.Renewals, rn)
		time.Sleep(2 * time.Second)
	}
	if n == o.outagesAt {
		for i, d := range o.outages {
			out, err := f.outage(d, o.renewals+1+i)
			if err != nil {
				return row, fmt.Errorf("outage of %s: %w", d, err)
			}
			fmt.Fprintf(os.Stderr, "bench: %d spokes: after %s down, a renewal made as the hub answered reached the first placeholder %.3f s and every one %.3f s after the update returned\n", n, d, out.Renewal.First, out.Renewal.Latency)
			row.Outages = append(row.Outages, out)
		}
	}
	var rss, anon []float64
	for _, p := range f.procs {
		rss = append(rss, p.Memory("VmRSS"))
		anon = append(anon, p.Memory("RssAnon"))
	}
	row.ReplicatorRSS, row.ReplicatorRSSMax, row.ReplicatorAnonRSS = mean(rss), slices.Max(rss), mean(anon)
	row.Lifetime = f.replicatorRequests()
	if exited := f.exited(); exited != "" {
		return row, fmt.Errorf("a replicator exited: %s", exited)
	}
	return row, nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// labClient is an admin client without a client-side rate limit.
func labClient(cp *controlplane.ControlPlane) kubernetes.Interface {
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.WarningHandler = rest.NoWarnings{}
	cfg.UserAgent = "bench"
	return kubernetes.NewForConfigOrDie(cfg)
}

// setUpHub creates, in the hub, the namespace certs with the source, and
// for each spoke a ServiceAccount in spokes that may read the Secrets of
// certs and nothing else (the Role of docs/cross-cluster.md), with a
// kubeconfig of a TokenRequest token.
func (f *fleet) setUpHub(dir string) error {
	for _, ns := range []string{"certs", "spokes"} {
		if _, err := f.hubClient.CoreV1().Namespaces().Create(f.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if _, err := f.hubClient.RbacV1().Roles("certs").Create(f.ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "replicator-source"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	f.kubeconfigs = make([]string, f.n)
	if err := parallel(f.n, func(i int) error {
		name := spokeName(i)
		if _, err := f.hubClient.CoreV1().ServiceAccounts("spokes").Create(f.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := f.hubClient.RbacV1().RoleBindings("certs").Create(f.ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "replicator-source-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "replicator-source"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "spokes", Name: name}},
		}, metav1.CreateOptions{}); err != nil {
			return err
		}
		cfg, err := f.hub.ServiceAccountConfig(f.ctx, "spokes", name)
		if err != nil {
			return err
		}
		f.kubeconfigs[i] = filepath.Join(dir, "kubeconfigs", name)
		return f.hub.WriteKubeconfig(f.kubeconfigs[i], cfg)
	}); err != nil {
		return err
	}
	data, err := certificate("*.fleet.example")
	if err != nil {
		return err
	}
	annotations := map[string]string{}
	for i := 0; i < f.n; i++ {
		p := spokePrefix(i)
		annotations[p+"replication-allowed"] = "true"
		annotations[p+"replication-allowed-namespaces"] = spokeName(i)
		annotations[p+"replication-allowed-clusters"] = spokeName(i)
	}
	f.source, err = f.hubClient.CoreV1().Secrets("certs").Create(f.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "wild", Annotations: annotations},
		Type:       corev1.SecretTypeTLS, Data: data,
	}, metav1.CreateOptions{})
	return err
}

// setUpSpokes creates each spoke's namespace and placeholders in its spoke
// API server.
func (f *fleet) setUpSpokes() error {
	return parallel(f.n, func(i int) error {
		ns := spokeName(i)
		client := f.spokeClients[i/f.o.group]
		if _, err := client.CoreV1().Namespaces().Create(f.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		for j := 0; j < f.o.placeholders; j++ {
			if _, err := client.CoreV1().Secrets(ns).Create(f.ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: placeholderName(j), Labels: map[string]string{"scale-target": "fleet"},
					Annotations: map[string]string{spokePrefix(i) + "replicate-from": "hub:certs/wild"}},
				Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": nil, "tls.key": nil},
			}, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// startSpokes starts every spoke's replicator, o.starting at a time.
func (f *fleet) startSpokes(binary string) error {
	f.procs = make([]*testsupport.Process, f.n)
	f.logs = make([]*tailBuffer, f.n)
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, max(f.o.starting, 1))
	var wg sync.WaitGroup
	for i := 0; i < f.n; i++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f.logs[i] = &tailBuffer{max: 16 << 10}
			args := append(slices.Clone(fleetSpokeArgs), "--cluster-name", spokeName(i), "--annotation-prefix", strings.TrimSuffix(spokePrefix(i), "/"),
				"--source-cluster", "hub="+f.kubeconfigs[i], "--source-cluster-namespaces", "hub=certs")
			p, err := testsupport.Start(binary, f.spokes[i/f.o.group].KubeconfigPath, f.logs[i], append(args, f.o.extra...)...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = fmt.Errorf("%s: %w\n%s", spokeName(i), err, f.logs[i].String())
			}
			f.procs[i] = p
		})
	}
	wg.Wait()
	return first
}

// exited names the replicators that exited, with the end of their output.
func (f *fleet) exited() string {
	for i, p := range f.procs {
		if p == nil {
			continue
		}
		select {
		case <-p.Exited():
			return fmt.Sprintf("%s: %v\n%s", spokeName(i), p.ExitErr(), f.logs[i].String())
		default:
		}
	}
	return ""
}

func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, p := range f.procs {
		if p != nil {
			wg.Go(p.Stop)
		}
	}
	wg.Wait()
	for _, cp := range append([]*controlplane.ControlPlane{f.hub}, f.spokes...) {
		if cp != nil {
			wg.Go(func() { _ = cp.Stop() })
		}
	}
	wg.Wait()
}

// wait returns when every placeholder of every spoke holds data: when the
// first and the last of them were seen taking it.
func (f *fleet) wait(data map[string][]byte, timeout time.Duration) (first, last time.Time, err error) {
	for g, w := range f.watchers {
		spokes := min(f.o.group, f.n-g*f.o.group)
		for j := 0; j < f.o.placeholders; j++ {
			t, err := w.wait(placeholderName(j), data, spokes, timeout)
			if err != nil {
				return first, last, fmt.Errorf("spoke API server %d: %w", g, err)
			}
			last = later(last, t)
			if t0 := w.firstAt(placeholderName(j), data); first.IsZero() || t0.Before(first) {
				first = t0
			}
		}
	}
	return first, last, nil
}

// renew updates the source with a new certificate (one request) and waits
// until every placeholder of every spoke holds it.
func (f *fleet) renew(i int) (fleetRenewal, error) {
	var rn fleetRenewal
	data, err := certificate(fmt.Sprintf("*.fleet-%d.example", i))
	if err != nil {
		return rn, err
	}
	s := f.source.DeepCopy()
	s.Data = data
	var updated *corev1.Secret
	var sent, answered time.Time
	hub, err := f.window(func() error {
		sent = time.Now()
		updated, err = f.hubClient.CoreV1().Secrets("certs").Update(f.ctx, s, metav1.UpdateOptions{})
		answered = time.Now()
		if err != nil {
			return err
		}
		first, last, err := f.wait(data, 2*time.Minute)
		if err != nil {
			return err
		}
		rn.First, rn.Latency = first.Sub(answered).Seconds(), last.Sub(answered).Seconds()
		// What the renewal makes the spokes send follows within a second.
		time.Sleep(time.Second)
		return nil
	})
	if err != nil {
		return rn, err
	}
	f.source = updated
	rn.Request, rn.Hub = answered.Sub(sent).Seconds(), hub
	return rn, nil
}

// outage stops the hub's API server for d, starts it again and renews the
// source (renewal i) as soon as it answers.
func (f *fleet) outage(d time.Duration, i int) (fleetOutage, error) {
	out := fleetOutage{Down: d.Seconds()}
	fmt.Fprintf(os.Stderr, "bench: %d spokes: the hub's API server down for %s\n", f.n, d)
	if err := f.hub.StopAPIServer(); err != nil {
		return out, err
	}
	time.Sleep(d)
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Minute)
	defer cancel()
	if err := f.hub.StartAPIServer(ctx); err != nil {
		return out, err
	}
	back := time.Now()
	rn, err := f.renew(i)
	if err != nil {
		return out, err
	}
	out.Renewal = rn
	audit, _, err := readAudit(f.auditLog, back, time.Now())
	if err != nil {
		return out, err
	}
	out.SpokeRequests = audit["spokes"]
	if f.o.logs != "" {
		for j, l := range f.logs {
			path := filepath.Join(f.o.logs, fmt.Sprintf("%d-spokes-%s-down-%s.log", f.n, d, spokeName(j)))
			if err := os.WriteFile(path, []byte(l.String()), 0o644); err != nil {
				return out, err
			}
		}
	}
	if exited := f.exited(); exited != "" {
		return out, fmt.Errorf("a replicator exited: %s", exited)
	}
	return out, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// atRest is the hub over d without anything happening.
func (f *fleet) atRest(d time.Duration) (fleetAt, error) {
	return f.window(func() error { time.Sleep(d); return nil })
}

// window measures the hub while during runs.
func (f *fleet) window(during func() error) (fleetAt, error) {
	var a fleetAt
	m0, err := scrapeAPIServer(f.ctx, f.hubClient)
	if err != nil {
		return a, err
	}
	r0 := f.replicatorRequests()
	pids := f.hub.Pids()
	c0, _ := processCPU(pids["kube-apiserver"])
	t0 := time.Now()
	if err := during(); err != nil {
		return a, err
	}
	t1 := time.Now()
	c1, _ := processCPU(pids["kube-apiserver"])
	r1 := f.replicatorRequests()
	m1, err := scrapeAPIServer(f.ctx, f.hubClient)
	if err != nil {
		return a, err
	}
	a.Seconds, a.CPU = t1.Sub(t0).Seconds(), c1-c0
	a.Requests = map[string]float64{}
	before := m0.Sum("apiserver_request_total", "verb")
	for verb, v := range m1.Sum("apiserver_request_total", "verb") {
		if d := v - before[verb]; d > 0 {
			a.Requests[verb] = d
		}
	}
	if r1 != nil {
		a.FromReplicators = map[string]float64{}
		for method, v := range r1 {
			if d := v - r0[method]; d > 0 {
				a.FromReplicators[method] = d
			}
		}
	}
	a.Watches = m1.Value("apiserver_longrunning_requests", map[string]string{"verb": "WATCH"})
	a.SecretWatches = m1.Value("apiserver_longrunning_requests", map[string]string{"verb": "WATCH", "resource": "secrets"})
	a.RSS = testsupport.ProcMemory(pids["kube-apiserver"], "VmRSS")
	a.EtcdRSS = testsupport.ProcMemory(pids["etcd"], "VmRSS")
	// The audit log has what was received in the window once it is
	// answered.
	time.Sleep(time.Second)
	a.Audit, a.SpokesSeen, err = readAudit(f.auditLog, t0, t1)
	return a, err
}

// replicatorRequests sums the spokes' requests to the hub, by method, from
// their own metrics; nil before they run.
func (f *fleet) replicatorRequests() map[string]float64 {
	if len(f.procs) == 0 {
		return nil
	}
	host := strings.TrimPrefix(f.hub.APIServerURL, "https://")
	out := map[string]float64{}
	var mu sync.Mutex
	_ = parallel(len(f.procs), func(i int) error {
		m, err := f.procs[i].Metrics()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range m.Families["rest_client_requests_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["host"] == host {
				out[labels["method"]] += s.GetCounter().GetValue()
			}
		}
		return nil
	})
	return out
}

// scrapeAPIServer reads the API server's /metrics as an admin.
func scrapeAPIServer(ctx context.Context, c kubernetes.Interface) (*testsupport.Metrics, error) {
	body, err := c.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("the hub's metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parsing the hub's metrics: %w", err)
	}
	return &testsupport.Metrics{Families: families}, nil
}

// auditEvent is what the bench reads of an audit log line.
type auditEvent struct {
	AuditID  string `json:"auditID"`
	Stage    string `json:"stage"`
	Verb     string `json:"verb"`
	Received string `json:"requestReceivedTimestamp"`
	User     struct {
		Username string `json:"username"`
	} `json:"user"`
}

// auditWho classes the user of a request: a spoke, the bench (the lab's
// admin), the API server's own loopback clients, or another user.
func auditWho(username string) string {
	switch {
	case strings.HasPrefix(username, "system:serviceaccount:spokes:"):
		return "spokes"
	case username == "admin":
		return "bench"
	case username == "system:apiserver":
		return "apiserver"
	}
	return username
}

// readAudit counts the requests of the audit log received in [from, to), by
// who and verb, each once (a watch logs when it starts and when it ends),
// and how many spokes sent anything but a watch.
func readAudit(path string, from, to time.Time) (map[string]map[string]int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return countAudit(f, from, to)
}

func countAudit(r io.Reader, from, to time.Time) (map[string]map[string]int, int, error) {
	out := map[string]map[string]int{}
	seen := map[string]bool{}
	spokes := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, 0, fmt.Errorf("audit log: %w", err)
		}
		if seen[e.AuditID] {
			continue
		}
		seen[e.AuditID] = true
		at, err := time.Parse(time.RFC3339Nano, e.Received)
		if err != nil {
			return nil, 0, fmt.Errorf("audit log: %w", err)
		}
		if at.Before(from) || !at.Before(to) {
			continue
		}
		who := auditWho(e.User.Username)
		if out[who] == nil {
			out[who] = map[string]int{}
		}
		out[who][e.Verb]++
		if who == "spokes" && e.Verb != "watch" {
			spokes[e.User.Username] = true
		}
	}
	return out, len(spokes), sc.Err()
}
