// Command bench measures the replicator as a separate process against a local
// etcd + kube-apiserver: fan-out times to N namespaces, writes per update,
// writes while idle and across a restart, and peak RSS with and without many
// unrelated large Secrets; with -scale, the same at several sizes; with
// -hostile, one tenant's hostile annotations against other tenants' pulls
// (hostile.go); with -fleet, what one hub pays for many spokes pulling from
// it (fleet.go). It reports; it does not pass or fail.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubereplicator/replicator/controlplane"
	"github.com/kubereplicator/replicator/internal/testsupport"
)

const prefix = "replicator.v1.mittwald.de/"

type result struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Note  string  `json:"note,omitempty"`
}

type bench struct {
	ctx     context.Context
	lab     *testsupport.Lab
	client  kubernetes.Interface
	n       int
	extra   []string
	results []result
}

func (b *bench) record(name string, v float64, unit, note string) {
	b.results = append(b.results, result{name, v, unit, note})
	fmt.Fprintf(os.Stderr, "bench: %-55s %10.2f %s %s\n", name, v, unit, note)
}

func main() {
	n := flag.Int("n", 1000, "namespaces to fan out to")
	unrelated := flag.Int("unrelated", 2000, "unrelated Secrets for the memory comparison (0: no memory comparison)")
	size := flag.Int("unrelated-size", 100*1024, "bytes of data in each unrelated Secret")
	idle := flag.Duration("idle", 30*time.Second, "how long to count writes while idle")
	out := flag.String("json", "bench.json", "where to write the results as JSON")
	binDir := flag.String("bin-dir", controlplane.BinDirFromEnv(), "folder with etcd and kube-apiserver")
	modes := flag.String("modes", "default,unlimited", "which fan-out runs: default (default flags) and/or unlimited (--kube-api-qps=-1)")
	extra := flag.String("replicator-args", "", "further space-separated flags for every replicator run")
	scaleSizes := flag.String("scale", "", "scale mode instead: comma-separated N, e.g. 1000,3000,10000; each N and mode in a fresh control plane, with ~5 KiB TLS Secrets")
	profiles := flag.String("profiles", "", "scale mode: folder to save a heap profile of each run in (empty: none)")
	rounds := flag.Int("rounds", 3, "scale mode with rate limits off: rounds of the raw create and update and the update fan-outs (medians reported; each fan-out compared with the raw create of its round)")
	hostile := flag.Int("hostile", 0, "hostile mode instead: N objects in one tenant's namespace with annotations at and past every limit, the replicator's memory and a legitimate pull's latency measured (0: off)")
	hostileKind := flag.String("hostile-kind", "configmap", "hostile mode: the kind of the hostile objects, configmap or secret (the legitimate pull is a Secret's)")
	hostileChart := flag.String("hostile-chart", "deploy/replicator.yaml", "hostile mode: the chart rendered with default values, whose Deployment's arguments the replicator runs with")
	hostileBaseline := flag.Duration("hostile-baseline", 10*time.Second, "hostile mode: how long to probe before the hostile objects exist")
	hostileAfter := flag.Duration("hostile-after", 30*time.Second, "hostile mode: the least time to wait (and probe) after the creation and after the restart, before the replicator counts as settled")
	hostileMost := flag.Duration("hostile-settle-max", 5*time.Minute, "hostile mode: the most time to wait for the replicator to settle")
	hostileNamespaces := flag.Int("hostile-namespaces", 0, "hostile mode: more namespaces (names of 63 bytes) for push lists and selectors to be matched against")
	hostileCommit := flag.String("hostile-commit", "", "hostile mode: build the replicator, and read -hostile-chart, from this commit (git archive) instead of the working tree")
	hostileControl := flag.Bool("hostile-control", true, "hostile mode: a third phase, the control: the same objects with their annotations under keys the replicator does not read")
	fleetSizes := flag.String("fleet", "", "fleet mode instead: comma-separated numbers of spokes, e.g. 10,30,100; each in a fresh hub and spoke API server, every spoke a replicator pulling one Secret from the hub")
	fleetIdle := flag.Duration("fleet-idle", 30*time.Second, "fleet mode: how long the hub is watched at rest, before the spokes and with them")
	fleetSettle := flag.Duration("fleet-settle", 10*time.Second, "fleet mode: how long to wait before each time at rest (after the set-up, after every placeholder is filled)")
	fleetRenewals := flag.Int("fleet-renewals", 5, "fleet mode: how many times the hub's source is renewed")
	fleetPlaceholders := flag.Int("fleet-placeholders", 1, "fleet mode: placeholders per spoke")
	fleetStarting := flag.Int("fleet-starting", 10, "fleet mode: replicators started at once")
	fleetOutages := flag.String("fleet-outages", "10s,60s,5m", "fleet mode: how long the hub's API server is stopped, one after the other, each followed by a renewal as soon as it answers (empty: none)")
	fleetOutagesAt := flag.Int("fleet-outages-at", 0, "fleet mode: the number of spokes the outages are run with (0: the largest)")
	fleetLogs := flag.String("fleet-logs", "", "fleet mode: a folder to write the tail of each spoke's log to after each outage (empty: none)")
	fleetGroup := flag.Int("fleet-group", 10, "fleet mode: spokes sharing one spoke API server (each replicator watches every Secret of its API server, so the spokes of a group see each other's writes)")
	flag.Parse()
	if *fleetSizes != "" {
		o := fleetOptions{binDir: *binDir, idle: *fleetIdle, settle: *fleetSettle, renewals: *fleetRenewals,
			placeholders: max(*fleetPlaceholders, 1), starting: *fleetStarting, group: max(*fleetGroup, 1), extra: strings.Fields(*extra), outagesAt: *fleetOutagesAt, logs: *fleetLogs}
		for _, d := range strings.Split(*fleetOutages, ",") {
			if d = strings.TrimSpace(d); d == "" {
				continue
			}
			v, err := time.ParseDuration(d)
			if err != nil || v <= 0 {
				fmt.Fprintf(os.Stderr, "bench: -fleet-outages: %q is not a duration\n", d)
				os.Exit(2)
			}
			o.outages = append(o.outages, v)
		}
		if err := runFleet(*fleetSizes, *out, o); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *hostile > 0 {
		o := hostileOptions{n: *hostile, kind: *hostileKind, binDir: *binDir, manifest: *hostileChart, extra: strings.Fields(*extra),
			baseline: *hostileBaseline, after: *hostileAfter, most: *hostileMost, namespaces: *hostileNamespaces, commit: *hostileCommit, control: *hostileControl}
		if err := runHostile(o, *out); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *scaleSizes != "" {
		o := scaleOptions{binDir: *binDir, profiles: *profiles, idle: *idle, extra: strings.Fields(*extra), rounds: *rounds}
		if err := runScale(*scaleSizes, strings.Split(*modes, ","), *out, o); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*n, *unrelated, *size, *idle, *out, *binDir, strings.Split(*modes, ","), strings.Fields(*extra)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n, unrelated, size int, idle time.Duration, out, binDir string, modes, extra []string) error {
	ctx := context.Background()
	lab, err := testsupport.NewLab(ctx, "bench", binDir)
	if err != nil {
		return err
	}
	defer lab.Close()
	b := &bench{ctx: ctx, lab: lab, client: lab.Client, n: n, extra: extra}

	for _, mode := range fanOutModes {
		if !slices.Contains(modes, mode.key) {
			continue
		}
		if err := b.fanOut(mode.name, mode.args, idle); err != nil {
			return fmt.Errorf("%s: %w", mode.name, err)
		}
	}
	if unrelated > 0 {
		if err := b.memory(unrelated, size); err != nil {
			return err
		}
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "measure\tvalue\tunit\tnote\n")
	for _, r := range b.results {
		fmt.Fprintf(w, "%s\t%.2f\t%s\t%s\n", r.Name, r.Value, r.Unit, r.Note)
	}
	w.Flush()
	j, _ := json.MarshalIndent(b.results, "", "  ")
	return os.WriteFile(out, append(j, '\n'), 0o644)
}

// fanOutModes are the replicator's flag sets each fan-out runs with.
var fanOutModes = []fanOutMode{{"default", "default flags", nil}, {"unlimited", "rate limit off", []string{"--kube-api-qps=-1"}}}

func runScale(sizes string, modes []string, out string, o scaleOptions) error {
	var ns []int
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-scale: %q is not a number of namespaces", s)
		}
		ns = append(ns, n)
	}
	var ms []fanOutMode
	for _, m := range fanOutModes {
		if slices.Contains(modes, m.key) {
			ms = append(ms, m)
		}
	}
	if o.profiles != "" {
		if err := os.MkdirAll(o.profiles, 0o755); err != nil {
			return err
		}
	}
	rows, err := scale(context.Background(), ns, ms, o)
	j, _ := json.MarshalIndent(rows, "", "  ")
	if werr := os.WriteFile(out, append(j, '\n'), 0o644); err == nil {
		err = werr
	}
	return err
}

// replicator is the replicator running as a process, with its output kept
// for when something goes wrong.
type replicator struct {
	*testsupport.Process
	logs bytes.Buffer
}

func (b *bench) start(args ...string) (*replicator, error) {
	r := &replicator{}
	p, err := testsupport.Start(b.lab.Binary, b.lab.Cluster.KubeconfigPath, &r.logs, append(append([]string{"--leader-elect=false", "--log-level=warning"}, b.extra...), args...)...)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, r.logs.String())
	}
	r.Process = p
	return r, nil
}

func (r *replicator) stop() { r.Process.Stop() }

// peakRSS is the process's high-water mark of resident memory, in MiB.
func (r *replicator) peakRSS() float64 { return r.Process.Memory("VmHWM") }

// writes is the replicator's replicator_writes_total, summed.
func (r *replicator) writes() (float64, error) {
	m, err := r.Process.Metrics()
	if err != nil {
		return 0, err
	}
	return m.Sum("replicator_writes_total", "")[""], nil
}

// parallel runs f(i) for i in [0,n) on 32 goroutines.
func parallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// countWith counts Secrets with the label whose tls.crt equals want.
func (b *bench) countWith(label, want string) (int, error) {
	list, err := b.client.CoreV1().Secrets("").List(b.ctx, metav1.ListOptions{LabelSelector: label, ResourceVersion: "0"})
	if err != nil {
		return 0, err
	}
	c := 0
	for _, s := range list.Items {
		if string(s.Data["tls.crt"]) == want {
			c++
		}
	}
	return c, nil
}

// timed measures how long until n Secrets with label hold want.
func (b *bench) timed(name string, label, want string, start time.Time, n int) error {
	err := testsupport.Poll(5*time.Minute, func() (bool, error) {
		c, err := b.countWith(label, want)
		return c >= n, err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	b.record(name, time.Since(start).Seconds(), "s", "")
	return nil
}

func tls(crt string) map[string][]byte {
	return map[string][]byte{"tls.crt": []byte(crt), "tls.key": []byte("key-" + crt)}
}

func (b *bench) fanOut(mode string, args []string, idle time.Duration) error {
	tag := strconv.Itoa(len(b.results))
	src := "src-" + tag
	if _, err := b.client.CoreV1().Namespaces().Create(b.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: src}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	ns := func(i int) string { return fmt.Sprintf("t%s-%d", tag, i) }
	if err := parallel(b.n, func(i int) error {
		_, err := b.client.CoreV1().Namespaces().Create(b.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns(i), Labels: map[string]string{"push": tag}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	pullLabel, pushLabel := "pull="+tag, "push-replica="+tag
	_, err := b.client.CoreV1().Secrets(src).Create(b.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "wildcard", Annotations: map[string]string{
			prefix + "replication-allowed": "true", prefix + "replication-allowed-namespaces": "t" + tag + "-.*"}},
		Type: corev1.SecretTypeTLS, Data: tls("v1"),
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}

	r, err := b.start(args...)
	if err != nil {
		return err
	}
	defer r.stop()

	start := time.Now()
	if err := parallel(b.n, func(i int) error {
		_, err := b.client.CoreV1().Secrets(ns(i)).Create(b.ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "wildcard", Labels: map[string]string{"pull": tag},
				Annotations: map[string]string{prefix + "replicate-from": src + "/wildcard"}},
			Type: corev1.SecretTypeTLS, Data: tls(""),
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := b.timed(fmt.Sprintf("%s: %d placeholders filled", mode, b.n), pullLabel, "v1", start, b.n); err != nil {
		return err
	}

	before, _ := r.writes()
	start = time.Now()
	if err := b.updateSource(src, "wildcard", "v2"); err != nil {
		return err
	}
	if err := b.timed(fmt.Sprintf("%s: update reached %d pull targets", mode, b.n), pullLabel, "v2", start, b.n); err != nil {
		return err
	}
	time.Sleep(time.Second)
	after, _ := r.writes()
	b.record(mode+": writes for one update (pull)", after-before, "writes", fmt.Sprintf("want %d", b.n))

	start = time.Now()
	_, err = b.client.CoreV1().Secrets(src).Create(b.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "pushed", Labels: map[string]string{"push-replica": tag},
			Annotations: map[string]string{prefix + "replicate-to-matching": "push=" + tag}},
		Type: corev1.SecretTypeTLS, Data: tls("v1"),
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	// The source itself carries the label too: count it.
	if err := b.timed(fmt.Sprintf("%s: %d push replicas created", mode, b.n), pushLabel, "v1", start, b.n+1); err != nil {
		return err
	}
	before, _ = r.writes()
	start = time.Now()
	if err := b.updateSource(src, "pushed", "v2"); err != nil {
		return err
	}
	if err := b.timed(fmt.Sprintf("%s: update reached %d push replicas", mode, b.n), pushLabel, "v2", start, b.n+1); err != nil {
		return err
	}
	time.Sleep(time.Second)
	after, _ = r.writes()
	b.record(mode+": writes for one update (push)", after-before, "writes", fmt.Sprintf("want %d", b.n))

	before, _ = r.writes()
	time.Sleep(idle)
	after, _ = r.writes()
	b.record(fmt.Sprintf("%s: writes while idle for %s", mode, idle), after-before, "writes", "want 0")

	b.record(mode+": peak RSS while doing all of the above", r.peakRSS(), "MiB", "")
	r.stop()
	r2, err := b.start(args...)
	if err != nil {
		return err
	}
	defer r2.stop()
	time.Sleep(5 * time.Second)
	w, _ := r2.writes()
	b.record(fmt.Sprintf("%s: writes after a restart (%d pull + %d push in sync)", mode, b.n, b.n), w, "writes", "want 0")
	return nil
}

func (b *bench) updateSource(namespace, name, crt string) error {
	s, err := b.client.CoreV1().Secrets(namespace).Get(b.ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	s.Data = tls(crt)
	_, err = b.client.CoreV1().Secrets(namespace).Update(b.ctx, s, metav1.UpdateOptions{})
	return err
}

// memory compares the replicator's peak RSS before and after the cluster
// holds many unrelated large Secrets (the fan-out objects above stay).
func (b *bench) memory(unrelated, size int) error {
	measure := func() (float64, error) {
		r, err := b.start()
		if err != nil {
			return 0, err
		}
		defer r.stop()
		time.Sleep(5 * time.Second)
		return r.peakRSS(), nil
	}
	without, err := measure()
	if err != nil {
		return err
	}
	b.record("peak RSS", without, "MiB", "")
	if _, err := b.client.CoreV1().Namespaces().Create(b.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	blob := bytes.Repeat([]byte("x"), size)
	if err := parallel(unrelated, func(i int) error {
		_, err := b.client.CoreV1().Secrets("unrelated").Create(b.ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("release-%d", i)}, Data: map[string][]byte{"release": blob},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	with, err := measure()
	if err != nil {
		return err
	}
	b.record(fmt.Sprintf("peak RSS with %d unrelated %d KiB Secrets", unrelated, size/1024), with, "MiB", fmt.Sprintf("+%.1f MiB", with-without))
	return nil
}
