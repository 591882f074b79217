package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kubereplicator/replicator/internal/testsupport"
)

// The scale mode: for each N, a fresh control plane with N namespaces, each
// with a pull placeholder and a push replica of a realistic TLS Secret (a
// certificate chain and its RSA key, about 5 KiB). Each replicator mode runs
// in a control plane of its own, so that the memory figures of one are not
// those of the objects the other left behind.

// scaleRow is one line of the scale table.
type scaleRow struct {
	N    int    `json:"n"`
	Mode string `json:"mode"`
	// Seconds: the bench's own parallel create of N Secrets like the
	// replicas (the physical limit), the placeholders' creation, and the
	// fan-outs, each from its first request to the last target seen
	// holding the new content.
	// With rate limits off, the raw create and update and the update
	// fan-outs are timed in several rounds (Rounds); these four are then
	// the median over the rounds.
	RawCreate       float64 `json:"rawCreateSeconds"`
	RawUpdate       float64 `json:"rawUpdateSeconds"`
	PlaceholdersIn  float64 `json:"placeholdersCreatedSeconds"`
	Fill            float64 `json:"fillSeconds"`
	PullUpdate      float64 `json:"pullUpdateSeconds"`
	Push            float64 `json:"pushSeconds"`
	PushUpdate      float64 `json:"pushUpdateSeconds"`
	PullWrites      float64 `json:"pullUpdateWrites"`
	PushWrites      float64 `json:"pushUpdateWrites"`
	IdleWrites      float64 `json:"idleWrites"`
	PeakRSS         float64 `json:"peakRSSMiB"`
	SteadyRSS       float64 `json:"steadyRSSMiB"`
	LiveHeap        float64 `json:"liveHeapMiB"`
	RestartReady    float64 `json:"restartReadySeconds"`
	RestartSettled  float64 `json:"restartSettledSeconds"`
	RestartWrites   float64 `json:"restartWrites"`
	RestartPeakRSS  float64 `json:"restartPeakRSSMiB"`
	RestartLiveHeap float64 `json:"restartLiveHeapMiB"`
	SecretBytes     int     `json:"secretBytes"`
	// CPU is what each timed phase cost: CPU seconds of the replicator,
	// kube-apiserver, etcd and the bench itself, and how busy the machine
	// was.
	CPU map[string]cpuUse `json:"cpu"`
	// Rounds are the timings of each round, the first one before the
	// restart and the others after it.
	Rounds []scaleRound `json:"rounds,omitempty"`
}

// scaleRound is one round of timings: a fan-out compares with the raw
// create of its own round, timed just before it on the same cluster.
type scaleRound struct {
	RawCreate  float64 `json:"rawCreateSeconds"`
	RawUpdate  float64 `json:"rawUpdateSeconds"`
	PullUpdate float64 `json:"pullUpdateSeconds"`
	PushUpdate float64 `json:"pushUpdateSeconds"`
	PullWrites float64 `json:"pullUpdateWrites"`
	PushWrites float64 `json:"pushUpdateWrites"`
}

// scaleOptions are what every scale run shares.
type scaleOptions struct {
	binDir, profiles string
	idle             time.Duration
	extra            []string
	// rounds is how many times the runs with rate limits off time the raw
	// create and update and the update fan-outs.
	rounds int
}

// median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratios are a row's fan-out times over the raw create of the same round:
// the median, the lowest and the highest.
func (r scaleRow) ratios(fanOut func(scaleRound) float64) (med, lo, hi float64) {
	var xs []float64
	for _, rd := range r.Rounds {
		xs = append(xs, fanOut(rd)/rd.RawCreate)
	}
	if len(xs) == 0 {
		return 0, 0, 0
	}
	return median(xs), slices.Min(xs), slices.Max(xs)
}

// certificate returns a TLS Secret's data as cert-manager writes it: a leaf
// and an intermediate certificate, the CA, and the leaf's RSA key. Each call
// gives new keys, so each version differs in every byte that matters.
func certificate(cn string) (map[string][]byte, error) {
	type issued struct {
		cert *x509.Certificate
		key  *rsa.PrivateKey
		der  []byte
	}
	issue := func(name string, ca bool, parent *issued) (*issued, error) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		serial, _ := rand.Int(rand.Reader, big.NewInt(math.MaxInt64))
		tmpl := &x509.Certificate{
			SerialNumber: serial, Subject: pkix.Name{CommonName: name, Organization: []string{"replicator bench"}},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
			IsCA: ca, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		}
		if ca {
			tmpl.KeyUsage |= x509.KeyUsageCertSign
		} else {
			tmpl.DNSNames = []string{name, "*." + name}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		signer, signerKey := tmpl, key
		if parent != nil {
			signer, signerKey = parent.cert, parent.key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		return &issued{cert, key, der}, err
	}
	root, err := issue("bench root CA", true, nil)
	if err != nil {
		return nil, err
	}
	mid, err := issue("bench intermediate CA", true, root)
	if err != nil {
		return nil, err
	}
	leaf, err := issue(cn, false, mid)
	if err != nil {
		return nil, err
	}
	block := func(t string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: t, Bytes: b}) }
	chain := append(block("CERTIFICATE", leaf.der), block("CERTIFICATE", mid.der)...)
	return map[string][]byte{
		corev1.TLSCertKey:       chain,
		corev1.TLSPrivateKeyKey: block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(leaf.key)),
		"ca.crt":                block("CERTIFICATE", root.der),
	}, nil
}

func size(data map[string][]byte) int {
	n := 0
	for k, v := range data {
		n += len(k) + len(v)
	}
	return n
}

// digestOf identifies a Secret's certificate without keeping it.
func digestOf(data map[string][]byte) string {
	h := sha256.Sum256(data[corev1.TLSCertKey])
	return string(h[:8])
}

// watcher follows the Secrets labelled scale-target through a watch, keeping
// a digest of each one's certificate, and tells when n of a name hold one.
// Polling 10,000 Secrets of 5 KiB would cost the API server more than the
// replicator's own work.
type watcher struct {
	mu      sync.Mutex
	changed *sync.Cond
	seen    map[string]string    // namespace/name -> digest
	holding map[string]int       // name=digest -> how many hold it
	last    map[string]time.Time // name=digest -> when the last Secret took it
	first   map[string]time.Time // name=digest -> when the first Secret took it
	stop    context.CancelFunc
}

// digested is the key the watch keeps a Secret's digest under: no Secret
// can have it ('#' is not allowed in keys).
const digested = "#digest"

func newWatcher(b *bench) (*watcher, error) {
	w := &watcher{seen: map[string]string{}, holding: map[string]int{}, last: map[string]time.Time{}, first: map[string]time.Time{}}
	w.changed = sync.NewCond(&w.mu)
	ctx, cancel := context.WithCancel(b.ctx)
	w.stop = cancel
	f := informers.NewSharedInformerFactoryWithOptions(b.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "scale-target"
	}))
	inf := f.Core().V1().Secrets().Informer()
	// client-go may pass an object through the transform twice (its
	// watch-list, after a watch ends): the second pass leaves it as it is.
	_ = inf.SetTransform(func(obj any) (any, error) {
		if s, ok := obj.(*corev1.Secret); ok {
			if _, done := s.Data[digested]; !done {
				s.Data = map[string][]byte{digested: []byte(digestOf(s.Data))}
			}
			s.ManagedFields, s.Annotations = nil, nil
		}
		return obj, nil
	})
	note := func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		d := string(s.Data[digested])
		w.mu.Lock()
		// Counted as they arrive: a wait never scans all Secrets, and the
		// watch is never held up by one.
		if old, ok := w.seen[s.Namespace+"/"+s.Name]; !ok || old != d {
			if ok {
				w.holding[s.Name+"="+old]--
			}
			w.seen[s.Namespace+"/"+s.Name] = d
			w.holding[s.Name+"="+d]++
			w.last[s.Name+"="+d] = time.Now()
			if _, ok := w.first[s.Name+"="+d]; !ok {
				w.first[s.Name+"="+d] = w.last[s.Name+"="+d]
			}
			w.changed.Broadcast()
		}
		w.mu.Unlock()
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: note, UpdateFunc: func(_, o any) { note(o) }})
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("watch did not sync")
	}
	return w, nil
}

// wait returns when n Secrets named name hold the certificate of data, with
// the time the last of them was seen taking it.
func (w *watcher) wait(name string, data map[string][]byte, n int, timeout time.Duration) (time.Time, error) {
	d := digestOf(data)
	deadline := time.Now().Add(timeout)
	go func() { time.Sleep(timeout); w.mu.Lock(); w.changed.Broadcast(); w.mu.Unlock() }()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		c := w.holding[name+"="+d]
		if c >= n {
			return w.last[name+"="+d], nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d of %d Secrets %s hold the new content after %s", c, n, name, timeout)
		}
		w.changed.Wait()
	}
}

// firstAt is when the first Secret named name was seen taking the
// certificate of data (zero if none has).
func (w *watcher) firstAt(name string, data map[string][]byte) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first[name+"="+digestOf(data)]
}

// scale runs the scale mode for each n and mode and prints its table.
func scale(ctx context.Context, sizes []int, modes []fanOutMode, o scaleOptions) ([]scaleRow, error) {
	var rows []scaleRow
	for _, n := range sizes {
		for _, m := range modes {
			row, err := scaleOnce(ctx, n, m, o)
			if err != nil {
				return rows, fmt.Errorf("N=%d, %s: %w", n, m.name, err)
			}
			rows = append(rows, row)
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "N\tmode\traw create s\traw update s\tfill s\t(placeholders created s)\tpull update s\tpush s\tpush update s\twrites/update (pull, push)\tidle writes\tpeak RSS MiB\tsteady RSS MiB\tlive heap MiB\trestart: ready s\tsettled s\twrites\tpeak RSS MiB\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%d\t%s\t%.2f\t%.2f\t%.2f\t(%.2f)\t%.2f\t%.2f\t%.2f\t%.0f, %.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.0f\t%.1f\t\n",
			r.N, r.Mode, r.RawCreate, r.RawUpdate, r.Fill, r.PlaceholdersIn, r.PullUpdate, r.Push, r.PushUpdate, r.PullWrites, r.PushWrites, r.IdleWrites,
			r.PeakRSS, r.SteadyRSS, r.LiveHeap, r.RestartReady, r.RestartSettled, r.RestartWrites, r.RestartPeakRSS)
	}
	w.Flush()
	// Each fan-out against the raw create of its own round.
	for _, r := range rows {
		if len(r.Rounds) == 0 {
			continue
		}
		pull, pullLo, pullHi := r.ratios(func(rd scaleRound) float64 { return rd.PullUpdate })
		pushUpd, pushLo, pushHi := r.ratios(func(rd scaleRound) float64 { return rd.PushUpdate })
		rawUpd, rawLo, rawHi := r.ratios(func(rd scaleRound) float64 { return rd.RawUpdate })
		fmt.Printf("N=%d %s: over the raw create of the same round, median of %d (lowest-highest): pull update %.2fx (%.2f-%.2f), push update %.2fx (%.2f-%.2f), raw update %.2fx (%.2f-%.2f); push %.2fx (first round)\n",
			r.N, r.Mode, len(r.Rounds), pull, pullLo, pullHi, pushUpd, pushLo, pushHi, rawUpd, rawLo, rawHi, r.Push/r.Rounds[0].RawCreate)
		for i, rd := range r.Rounds {
			fmt.Printf("  round %d: raw create %.2f s, raw update %.2f s, pull update %.2f s (%.0f writes), push update %.2f s (%.0f writes)\n",
				i+1, rd.RawCreate, rd.RawUpdate, rd.PullUpdate, rd.PullWrites, rd.PushUpdate, rd.PushWrites)
		}
	}
	// The cost of one more namespace (a placeholder and a replica of a
	// ~5 KiB Secret): the slope between the smallest and the largest N.
	for _, m := range modes {
		var lo, hi *scaleRow
		for i := range rows {
			if rows[i].Mode != m.name {
				continue
			}
			if lo == nil || rows[i].N < lo.N {
				lo = &rows[i]
			}
			if hi == nil || rows[i].N > hi.N {
				hi = &rows[i]
			}
		}
		if lo == nil || hi.N == lo.N {
			continue
		}
		per := func(a, b float64) float64 { return (b - a) * 1024 / float64(hi.N-lo.N) }
		fmt.Printf("%s: per namespace (N=%d..%d): steady RSS %.1f KiB, live heap %.1f KiB, peak RSS %.1f KiB; Secret data %.1f KiB\n",
			m.name, lo.N, hi.N, per(lo.SteadyRSS, hi.SteadyRSS), per(lo.LiveHeap, hi.LiveHeap), per(lo.PeakRSS, hi.PeakRSS), float64(hi.SecretBytes)/1024)
	}
	return rows, nil
}

type fanOutMode struct {
	key, name string
	args      []string
}

func scaleOnce(ctx context.Context, n int, m fanOutMode, o scaleOptions) (scaleRow, error) {
	row := scaleRow{N: n, Mode: m.name, CPU: map[string]cpuUse{}}
	profiles := o.profiles
	lab, err := testsupport.NewLab(ctx, "scale", o.binDir)
	if err != nil {
		return row, err
	}
	defer lab.Close()
	// The bench's requests and its watch in protobuf, as the replicator's:
	// the raw times are what this API server does at best, and watching
	// costs the same in every phase.
	cfg := rest.CopyConfig(lab.Cluster.Config)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cfg.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return row, err
	}
	b := &bench{ctx: ctx, lab: lab, client: client, n: n, extra: o.extra}
	say := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "bench: N=%d %s: %s\n", n, m.name, fmt.Sprintf(format, a...))
	}
	v1, err := certificate("v1.example.com")
	if err != nil {
		return row, err
	}
	v2, err := certificate("v2.example.com")
	if err != nil {
		return row, err
	}
	row.SecretBytes = size(v1)

	ns := func(i int) string { return "t-" + strconv.Itoa(i) }
	start := time.Now()
	if err := parallel(n, func(i int) error {
		_, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns(i), Labels: map[string]string{"team": "t"}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return row, err
	}
	say("%d namespaces created in %.1f s", n, time.Since(start).Seconds())
	// What kube-controller-manager (not running here) adds to every
	// namespace: the default ServiceAccount and the root CA ConfigMap. The
	// replicator watches both kinds.
	if err := parallel(n, func(i int) error {
		if _, err := b.client.CoreV1().ServiceAccounts(ns(i)).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		_, err := b.client.CoreV1().ConfigMaps(ns(i)).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Annotations: map[string]string{
				"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
			Data: map[string]string{"ca.crt": string(v1["ca.crt"])},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return row, err
	}
	for _, name := range []string{"src"} {
		if _, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			return row, err
		}
	}

	w, err := newWatcher(b)
	if err != nil {
		return row, err
	}
	defer w.stop()
	if _, err := b.client.CoreV1().Secrets("src").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "wildcard", Annotations: map[string]string{
			prefix + "replication-allowed": "true", prefix + "replication-allowed-namespaces": "t-.*"}},
		Type: corev1.SecretTypeTLS, Data: v1,
	}, metav1.CreateOptions{}); err != nil {
		return row, err
	}
	args := append([]string{"--profiling"}, m.args...)
	r, err := b.start(args...)
	if err != nil {
		return row, err
	}
	defer func() { r.stop() }()
	if err := waitReady(r, time.Minute); err != nil {
		return row, err
	}
	timeout := 10 * time.Minute
	// profileCPU saves a CPU profile of the replicator over the next
	// fan-out's expected length (N ms: N writes, 32 at a time).
	profileCPU := func(phase string) {
		if profiles == "" {
			return
		}
		d := max(time.Second, time.Duration(n)*2*time.Millisecond)
		name := fmt.Sprintf("%d-%s-%s.pb.gz", n, m.key, strings.ReplaceAll(phase, " ", "-"))
		go func() {
			path := filepath.Join(profiles, "cpu-"+name)
			if err := r.SaveCPUProfile(path, d); err == nil {
				say("CPU profile of the %s in %s", phase, path)
			}
		}()
		// And of the API server: what the same writes cost it.
		go func() {
			body, err := b.client.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
				Param("seconds", strconv.Itoa(int(d.Seconds()))).Timeout(d + time.Minute).DoRaw(ctx)
			path := filepath.Join(profiles, "apiserver-cpu-"+name)
			if err == nil && os.WriteFile(path, body, 0o644) == nil {
				say("API server CPU profile of the %s in %s", phase, path)
			}
		}()
	}
	meter := func() cpuTimes {
		pids := lab.Cluster.Pids()
		pids["replicator"], pids["bench"] = r.Pid(), os.Getpid()
		t := sampleCPU(pids)
		if mm, err := r.Metrics(); err == nil {
			t.requests = requestsByMethod(mm)
		}
		return t
	}
	// cost records and prints the CPU a phase used since before.
	cost := func(phase string, before cpuTimes) {
		row.CPU[phase] = meter().since(before)
		say("%s: %s", phase, row.CPU[phase])
	}

	// The physical limit: the bench's own parallel create of N Secrets of
	// the same size in the same namespaces, while the replicator watches
	// (as it does during the fan-outs), then their update to new content
	// (what an update costs the API server). They are deleted again.
	// Timed like the fan-outs: from the first request until the watch
	// has seen the last Secret hold the content.
	rawRound := func(round string) (created, updated float64, err error) {
		start, cpu := time.Now(), meter()
		raw := make([]*corev1.Secret, n)
		if err := parallel(n, func(i int) (err error) {
			raw[i], err = b.client.CoreV1().Secrets(ns(i)).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "raw", Labels: map[string]string{"scale-target": "raw"}},
				Type:       corev1.SecretTypeTLS, Data: v1,
			}, metav1.CreateOptions{})
			return err
		}); err != nil {
			return 0, 0, err
		}
		done, err := w.wait("raw", v1, n, timeout)
		if err != nil {
			return 0, 0, fmt.Errorf("raw create: %w", err)
		}
		created = done.Sub(start).Seconds()
		say("raw create%s %.2f s", round, created)
		cost("raw create"+round, cpu)
		start, cpu = time.Now(), meter()
		if round == "" {
			profileCPU("raw update")
		}
		if err := parallel(n, func(i int) error {
			raw[i].Data = v2
			_, err := b.client.CoreV1().Secrets(ns(i)).Update(ctx, raw[i], metav1.UpdateOptions{})
			return err
		}); err != nil {
			return 0, 0, err
		}
		if done, err = w.wait("raw", v2, n, timeout); err != nil {
			return 0, 0, fmt.Errorf("raw update: %w", err)
		}
		updated = done.Sub(start).Seconds()
		say("raw update%s %.2f s", round, updated)
		cost("raw update"+round, cpu)
		return created, updated, parallel(n, func(i int) error {
			return b.client.CoreV1().Secrets(ns(i)).Delete(ctx, "raw", metav1.DeleteOptions{})
		})
	}
	if row.RawCreate, row.RawUpdate, err = rawRound(""); err != nil {
		return row, err
	}

	// Pull: N placeholders created while the replicator runs.
	start = time.Now()
	cpu := meter()
	if err := parallel(n, func(i int) error {
		_, err := b.client.CoreV1().Secrets(ns(i)).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "wildcard", Labels: map[string]string{"scale-target": "pull"},
				Annotations: map[string]string{prefix + "replicate-from": "src/wildcard"}},
			Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: nil, corev1.TLSPrivateKeyKey: nil},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return row, err
	}
	row.PlaceholdersIn = time.Since(start).Seconds()
	done, err := w.wait("wildcard", v1, n, timeout)
	if err != nil {
		return row, fmt.Errorf("fill: %w", err)
	}
	row.Fill = done.Sub(start).Seconds()
	say("fill %.2f s (placeholders created in %.2f s)", row.Fill, row.PlaceholdersIn)
	cost("fill", cpu)

	update := func(name string, data map[string][]byte, round string) (float64, float64, error) {
		// The writes of what came before are counted when their answers
		// arrive, which can be after the watch showed them: wait until
		// the count stands still.
		before, err := steadyWrites(r)
		if err != nil {
			return 0, 0, err
		}
		start, cpu := time.Now(), meter()
		phase := map[string]string{"wildcard": "pull update", "pushed": "push update"}[name]
		if round == "" {
			profileCPU(phase)
		}
		phase += round
		if err := b.setData("src", name, data); err != nil {
			return 0, 0, err
		}
		done, err := w.wait(name, data, n, timeout)
		if err != nil {
			return 0, 0, err
		}
		cost(phase, cpu)
		// The writer counts a write when its answer arrives, which can
		// be after the watch showed it.
		var writes float64
		_ = testsupport.Poll(10*time.Second, func() (bool, error) {
			after, err := r.writes()
			writes = after - before
			return writes >= float64(n), err
		})
		return done.Sub(start).Seconds(), writes, nil
	}
	if row.PullUpdate, row.PullWrites, err = update("wildcard", v2, ""); err != nil {
		return row, fmt.Errorf("pull update: %w", err)
	}
	say("pull update %.2f s, %.0f writes", row.PullUpdate, row.PullWrites)

	// Push: one source labelled like the targets (the watch counts it too).
	start, cpu = time.Now(), meter()
	profileCPU("push")
	if _, err := b.client.CoreV1().Secrets("src").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "pushed", Labels: map[string]string{"scale-target": "push"},
			Annotations: map[string]string{prefix + "replicate-to-matching": "team=t"}},
		Type: corev1.SecretTypeTLS, Data: v1,
	}, metav1.CreateOptions{}); err != nil {
		return row, err
	}
	if done, err = w.wait("pushed", v1, n+1, timeout); err != nil {
		return row, fmt.Errorf("push: %w", err)
	}
	row.Push = done.Sub(start).Seconds()
	cost("push", cpu)
	if profiles != "" {
		// What the process holds in the middle of the largest fan-out.
		go func() {
			time.Sleep(5 * time.Second)
			path := filepath.Join(profiles, fmt.Sprintf("heap-%d-%s-push-update.pb.gz", n, m.key))
			if err := r.SaveHeapProfile(path); err == nil {
				say("heap profile 5 s into the push update in %s (RSS then %.1f MiB)", path, r.Memory("VmRSS"))
			}
		}()
	}
	if row.PushUpdate, row.PushWrites, err = update("pushed", v2, ""); err != nil {
		return row, fmt.Errorf("push update: %w", err)
	}
	say("push %.2f s, push update %.2f s, %.0f writes", row.Push, row.PushUpdate, row.PushWrites)

	// Steady: idle, then what the process holds.
	before, _ := r.writes()
	time.Sleep(o.idle)
	after, _ := r.writes()
	row.IdleWrites = after - before
	row.PeakRSS = r.peakRSS()
	row.SteadyRSS = r.Memory("VmRSS")
	// The profile comes after a garbage collection: the live heap is then
	// what the process holds, not what the last collection during the
	// fan-out saw.
	path := filepath.Join(lab.Dir, "heap.pb.gz")
	if profiles != "" {
		path = filepath.Join(profiles, fmt.Sprintf("heap-%d-%s.pb.gz", n, m.key))
	}
	if err := r.SaveHeapProfile(path); err != nil {
		return row, err
	}
	row.LiveHeap = liveHeap(r)
	if profiles != "" {
		say("heap profile in %s", path)
	}
	say("peak RSS %.1f MiB, steady RSS %.1f MiB, live heap %.1f MiB", row.PeakRSS, row.SteadyRSS, row.LiveHeap)
	if mm, err := r.Metrics(); err == nil {
		mib := func(name string) float64 { return mm.Value(name, nil) / (1 << 20) }
		say("steady: anonymous %.1f MiB, file-backed %.1f MiB; Go heap in use %.1f, idle %.1f (released %.1f), stacks %.1f, runtime %.1f MiB",
			r.Memory("RssAnon"), r.Memory("RssFile"), mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_heap_idle_bytes"),
			mib("go_memstats_heap_released_bytes"), mib("go_memstats_stack_inuse_bytes"),
			mib("go_memstats_mspan_inuse_bytes")+mib("go_memstats_mcache_inuse_bytes")+mib("go_memstats_buck_hash_sys_bytes")+mib("go_memstats_gc_sys_bytes")+mib("go_memstats_other_sys_bytes"))
	}

	// Restart with everything in place.
	r.stop()
	start = time.Now()
	if r, err = b.start(args...); err != nil {
		return row, err
	}
	if err := waitReady(r, time.Minute); err != nil {
		return row, err
	}
	row.RestartReady = time.Since(start).Seconds()
	if err := waitSettled(r, time.Minute); err != nil {
		return row, err
	}
	row.RestartSettled = time.Since(start).Seconds()
	time.Sleep(5 * time.Second)
	row.RestartWrites, _ = r.writes()
	row.RestartPeakRSS = r.peakRSS()
	row.RestartLiveHeap = liveHeap(r)
	say("restart: ready in %.2f s, settled in %.2f s, %.0f writes, peak RSS %.1f MiB", row.RestartReady, row.RestartSettled, row.RestartWrites, row.RestartPeakRSS)

	// More rounds of the timed phases with rate limits off: one round
	// varies by a fifth or more on a machine the API server keeps busy.
	// Each round's fan-outs follow its own raw create; the contents
	// alternate so that every update changes them.
	row.Rounds = []scaleRound{{row.RawCreate, row.RawUpdate, row.PullUpdate, row.PushUpdate, row.PullWrites, row.PushWrites}}
	if m.key != "unlimited" {
		return row, nil
	}
	for i := 2; i <= o.rounds; i++ {
		round := fmt.Sprintf(", round %d", i)
		var rd scaleRound
		if rd.RawCreate, rd.RawUpdate, err = rawRound(round); err != nil {
			return row, err
		}
		data := v1
		if i%2 == 1 {
			data = v2
		}
		if rd.PullUpdate, rd.PullWrites, err = update("wildcard", data, round); err != nil {
			return row, fmt.Errorf("pull update%s: %w", round, err)
		}
		if rd.PushUpdate, rd.PushWrites, err = update("pushed", data, round); err != nil {
			return row, fmt.Errorf("push update%s: %w", round, err)
		}
		say("pull update%s %.2f s, %.0f writes; push update %.2f s, %.0f writes", round, rd.PullUpdate, rd.PullWrites, rd.PushUpdate, rd.PushWrites)
		row.Rounds = append(row.Rounds, rd)
	}
	pick := func(f func(scaleRound) float64) float64 {
		var xs []float64
		for _, rd := range row.Rounds {
			xs = append(xs, f(rd))
		}
		return median(xs)
	}
	row.RawCreate = pick(func(rd scaleRound) float64 { return rd.RawCreate })
	row.RawUpdate = pick(func(rd scaleRound) float64 { return rd.RawUpdate })
	row.PullUpdate = pick(func(rd scaleRound) float64 { return rd.PullUpdate })
	row.PushUpdate = pick(func(rd scaleRound) float64 { return rd.PushUpdate })
	return row, nil
}

func (b *bench) setData(namespace, name string, data map[string][]byte) error {
	s, err := b.client.CoreV1().Secrets(namespace).Get(b.ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	s.Data = data
	_, err = b.client.CoreV1().Secrets(namespace).Update(b.ctx, s, metav1.UpdateOptions{})
	return err
}

// steadyWrites returns replicator_writes_total once it has not moved for a
// second.
func steadyWrites(r *replicator) (float64, error) {
	last, err := r.writes()
	if err != nil {
		return 0, err
	}
	for still := 0; still < 5; {
		time.Sleep(200 * time.Millisecond)
		n, err := r.writes()
		if err != nil {
			return 0, err
		}
		if n == last {
			still++
		} else {
			still, last = 0, n
		}
	}
	return last, nil
}

// waitReady waits for /readyz: the caches are synced.
func waitReady(r *replicator, timeout time.Duration) error {
	return testsupport.Poll(timeout, func() (bool, error) {
		code, _, err := testsupport.HTTPGet("http://" + r.Addr() + "/readyz")
		return err == nil && code == 200, nil
	})
}

// waitSettled waits until every work queue is empty with nothing in
// progress: the start-up pass over every object is done.
func waitSettled(r *replicator, timeout time.Duration) error {
	return testsupport.Poll(timeout, func() (bool, error) {
		m, err := r.Metrics()
		if err != nil {
			return false, nil
		}
		adds := m.Sum("workqueue_adds_total", "")[""]
		depth := m.Sum("workqueue_depth", "")[""]
		busy := m.Sum("workqueue_unfinished_work_seconds", "")[""]
		return adds > 0 && depth == 0 && busy == 0, nil
	})
}

// requestsByMethod counts the replicator's API requests by method, those
// answered with an error apart by method and code (e.g. "PUT 409").
func requestsByMethod(m *testsupport.Metrics) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m.Families["rest_client_requests_total"].GetMetric() {
		var method, code string
		for _, l := range s.GetLabel() {
			switch l.GetName() {
			case "method":
				method = l.GetValue()
			case "code":
				code = l.GetValue()
			}
		}
		if !strings.HasPrefix(code, "2") {
			method += " " + code
		}
		out[method] += s.GetCounter().GetValue()
	}
	return out
}

// liveHeap is what the last garbage collection kept, in MiB.
func liveHeap(r *replicator) float64 {
	m, err := r.Metrics()
	if err != nil {
		return -1
	}
	return m.Value("go_gc_heap_live_bytes", nil) / (1 << 20)
}
