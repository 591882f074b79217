// Command soak runs the replicator (as a separate process, default flags)
// against a local control plane while sources, placeholders and namespaces
// churn at a steady rate, samples its memory, goroutines and counters, and at
// the end checks that every replica is correct. `make soak` runs it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kubereplicator/replicator/controlplane"
	"github.com/kubereplicator/replicator/internal/testsupport"
)

const prefix = "replicator.v1.mittwald.de/"

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to churn")
	rate := flag.Float64("rate", 10, "changes per second")
	namespaces := flag.Int("namespaces", 60, "namespaces at the start")
	sample := flag.Duration("sample", 30*time.Second, "how often to sample the replicator")
	out := flag.String("json", "soak.json", "where to write the samples and the verdict")
	binDir := flag.String("bin-dir", controlplane.BinDirFromEnv(), "folder with etcd and kube-apiserver")
	profiles := flag.String("profiles", "", "folder to save a heap profile in at every sample (runs the replicator with --profiling)")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (printed, for a rerun)")
	flag.Parse()
	if err := run(*duration, *rate, *namespaces, *sample, *out, *binDir, *seed, *profiles); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type sampleRow struct {
	At         string             `json:"at"`
	RSSMiB     float64            `json:"rss_mib"`
	AnonMiB    float64            `json:"rss_anon_mib"`
	FileMiB    float64            `json:"rss_file_mib"`
	Goroutines float64            `json:"goroutines"`
	Writes     float64            `json:"writes"`
	Secrets    int                `json:"secrets"`
	Namespaces int                `json:"namespaces"`
	Errors     map[string]float64 `json:"write_errors"`
	Problems   map[string]float64 `json:"problems"`
}

type world struct {
	ctx          context.Context
	client       kubernetes.Interface
	rnd          *rand.Rand
	live         []string // namespaces not deleted
	next         int
	pullSources  []string
	pushSources  []string
	placeholders map[string]string // "ns/name" -> source name
	target       int               // namespaces to keep
	changes      map[string]int
}

func run(duration time.Duration, rate float64, nsCount int, every time.Duration, out, binDir string, seed uint64, profiles string) error {
	fmt.Fprintf(os.Stderr, "soak: seed %d, %s at %.0f changes/s\n", seed, duration, rate)
	ctx := context.Background()
	lab, err := testsupport.NewLab(ctx, "soak", binDir)
	if err != nil {
		return err
	}
	defer lab.Close()
	w := &world{ctx: ctx, client: lab.Client, rnd: rand.New(rand.NewPCG(seed, seed)), placeholders: map[string]string{}, changes: map[string]int{}, target: nsCount}

	if err := w.setup(nsCount); err != nil {
		return err
	}
	logs, err := os.Create(filepath.Join(os.TempDir(), "replicator-soak.log"))
	if err != nil {
		return err
	}
	defer logs.Close()
	var args []string
	if profiles != "" {
		if err := os.MkdirAll(profiles, 0o755); err != nil {
			return err
		}
		args = append(args, "--profiling")
	}
	p, err := testsupport.Start(lab.Binary, lab.Cluster.KubeconfigPath, logs, append([]string{"--leader-elect=false"}, args...)...)
	if err != nil {
		return err
	}
	defer p.Stop()
	fmt.Fprintf(os.Stderr, "soak: replicator log in %s\n", logs.Name())

	var samples []sampleRow
	take := func() {
		s, err := scrape(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak: sample:", err)
			return
		}
		s.At = time.Now().UTC().Format(time.RFC3339)
		if list, err := w.client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{ResourceVersion: "0"}); err == nil {
			s.Secrets = len(list.Items)
		}
		if list, err := w.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{ResourceVersion: "0"}); err == nil {
			s.Namespaces = len(list.Items)
		}
		samples = append(samples, s)
		if profiles != "" {
			if err := p.SaveHeapProfile(filepath.Join(profiles, fmt.Sprintf("heap-%02d.pb.gz", len(samples)))); err != nil {
				fmt.Fprintln(os.Stderr, "soak: heap profile:", err)
			}
		}
		fmt.Fprintf(os.Stderr, "soak: %s rss %.1f MiB (anonymous %.1f), %.0f goroutines, %.0f writes, %d Secrets in %d namespaces\n", s.At, s.RSSMiB, s.AnonMiB, s.Goroutines, s.Writes, s.Secrets, s.Namespaces)
	}
	take()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	sampled := time.Now()
	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		<-tick.C
		w.change()
		if time.Since(sampled) >= every {
			take()
			sampled = time.Now()
		}
	}
	start := time.Now()
	var wrong []string
	for {
		wrong = w.check()
		if len(wrong) == 0 || time.Since(start) > 3*time.Minute {
			break
		}
		time.Sleep(time.Second)
	}
	converged := time.Since(start)
	take()

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "at\tSecrets\tnamespaces\tRSS MiB\tanonymous\tfile-backed\tgoroutines\twrites\twrite errors\tproblems\n")
	for _, s := range samples {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%s\t%s\n", s.At, s.Secrets, s.Namespaces, s.RSSMiB, s.AnonMiB, s.FileMiB, s.Goroutines, s.Writes, fmtCounts(s.Errors), fmtCounts(s.Problems))
	}
	tw.Flush()
	fmt.Printf("changes made: %s\n", fmtCounts(toFloat(w.changes)))
	fmt.Printf("converged %s after the churn stopped; wrong objects: %d\n", converged.Round(time.Second), len(wrong))
	for _, x := range wrong {
		fmt.Println("  ", x)
	}
	j, _ := json.MarshalIndent(map[string]any{"seed": seed, "duration": duration.String(), "rate": rate, "changes": w.changes,
		"samples": samples, "converged_seconds": converged.Seconds(), "wrong": wrong}, "", "  ")
	if err := os.WriteFile(out, append(j, '\n'), 0o644); err != nil {
		return err
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%d objects wrong", len(wrong))
	}
	return nil
}

func (w *world) newNamespace() error {
	name := fmt.Sprintf("soak-%d", w.next)
	w.next++
	team := []string{"a", "b"}[w.rnd.IntN(2)]
	_, err := w.client.CoreV1().Namespaces().Create(w.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": team}}}, metav1.CreateOptions{})
	if err == nil {
		w.live = append(w.live, name)
	}
	return err
}

func (w *world) setup(n int) error {
	if _, err := w.client.CoreV1().Namespaces().Create(w.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sources"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := w.newNamespace(); err != nil {
			return err
		}
	}
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("pull-%d", i)
		if err := w.createSource(name, map[string]string{prefix + "replication-allowed": "true", prefix + "replication-allowed-namespaces": "soak-.*"}); err != nil {
			return err
		}
		w.pullSources = append(w.pullSources, name)
		name = fmt.Sprintf("push-%d", i)
		if err := w.createSource(name, map[string]string{prefix + "replicate-to-matching": "team=a"}); err != nil {
			return err
		}
		w.pushSources = append(w.pushSources, name)
	}
	return nil
}

func (w *world) createSource(name string, annotations map[string]string) error {
	_, err := w.client.CoreV1().Secrets("sources").Create(w.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Data:       map[string][]byte{"k": []byte(strconv.Itoa(w.rnd.Int()))},
	}, metav1.CreateOptions{})
	return err
}

// change makes one random change; failures (races with deletions) are
// counted, not fatal.
func (w *world) change() {
	var err error
	op := ""
	// Creations and deletions keep the world around its starting number of
	// namespaces and three placeholders per namespace, so the replicator's
	// memory should stay flat.
	switch r := w.rnd.IntN(100); {
	case r < 30:
		op = "source updated"
		all := append(append([]string{}, w.pullSources...), w.pushSources...)
		err = w.update("sources", all[w.rnd.IntN(len(all))], func(s *corev1.Secret) {
			s.Data = map[string][]byte{"k": []byte(strconv.Itoa(w.rnd.Int()))}
		})
	case r < 70 && len(w.placeholders) < 3*w.target:
		op = "placeholder created"
		ns := w.live[w.rnd.IntN(len(w.live))]
		src := w.pullSources[w.rnd.IntN(len(w.pullSources))]
		name := "copy-" + src
		if _, ok := w.placeholders[ns+"/"+name]; ok {
			return
		}
		_, err = w.client.CoreV1().Secrets(ns).Create(w.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{prefix + "replicate-from": "sources/" + src}}}, metav1.CreateOptions{})
		if err == nil {
			w.placeholders[ns+"/"+name] = src
		}
	case r < 70:
		op = "placeholder deleted"
		for key := range w.placeholders {
			ns, name, _ := strings.Cut(key, "/")
			err = w.client.CoreV1().Secrets(ns).Delete(w.ctx, name, metav1.DeleteOptions{})
			delete(w.placeholders, key)
			break
		}
	case r < 86 && len(w.live) < w.target:
		op = "namespace created"
		err = w.newNamespace()
	case r < 86:
		op = "namespace deleted"
		i := w.rnd.IntN(len(w.live))
		ns := w.live[i]
		w.live = append(w.live[:i], w.live[i+1:]...)
		for key := range w.placeholders {
			if strings.HasPrefix(key, ns+"/") {
				delete(w.placeholders, key)
			}
		}
		err = w.deleteNamespace(ns)
	case r < 95:
		op = "namespace relabelled"
		ns := w.live[w.rnd.IntN(len(w.live))]
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := w.client.CoreV1().Namespaces().Get(w.ctx, ns, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if n.Labels["team"] == "a" {
				n.Labels["team"] = "b"
			} else {
				n.Labels["team"] = "a"
			}
			_, err = w.client.CoreV1().Namespaces().Update(w.ctx, n, metav1.UpdateOptions{})
			return err
		})
	default:
		op = "push switched"
		err = w.update("sources", w.pushSources[w.rnd.IntN(len(w.pushSources))], func(s *corev1.Secret) {
			if _, ok := s.Annotations[prefix+"replicate-to-matching"]; ok {
				delete(s.Annotations, prefix+"replicate-to-matching")
			} else {
				s.Annotations[prefix+"replicate-to-matching"] = "team=a"
			}
		})
	}
	if err != nil {
		op += " (failed)"
	}
	w.changes[op]++
}

// deleteNamespace deletes a namespace and does what kube-controller-manager's
// namespace controller (which the local control plane does not run) would:
// deletes its Secrets and removes the finalizer, so that it is gone.
func (w *world) deleteNamespace(ns string) error {
	if err := w.client.CoreV1().Namespaces().Delete(w.ctx, ns, metav1.DeleteOptions{}); err != nil {
		return err
	}
	if err := w.client.CoreV1().Secrets(ns).DeleteCollection(w.ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := w.client.CoreV1().Namespaces().Get(w.ctx, ns, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Finalizers = nil
		_, err = w.client.CoreV1().Namespaces().Finalize(w.ctx, n, metav1.UpdateOptions{})
		return err
	})
}

func (w *world) update(ns, name string, change func(*corev1.Secret)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := w.client.CoreV1().Secrets(ns).Get(w.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		change(s)
		_, err = w.client.CoreV1().Secrets(ns).Update(w.ctx, s, metav1.UpdateOptions{})
		return err
	})
}

// check lists what is not as the contract says: placeholders without their
// source's data, missing or stale push replicas, replicas that should be gone.
func (w *world) check() []string {
	var wrong []string
	sources := map[string]*corev1.Secret{}
	list, err := w.client.CoreV1().Secrets("sources").List(w.ctx, metav1.ListOptions{})
	if err != nil {
		return []string{err.Error()}
	}
	for i := range list.Items {
		sources[list.Items[i].Name] = &list.Items[i]
	}
	nsList, err := w.client.CoreV1().Namespaces().List(w.ctx, metav1.ListOptions{})
	if err != nil {
		return []string{err.Error()}
	}
	team := map[string]string{}
	for _, n := range nsList.Items {
		if n.Status.Phase != corev1.NamespaceTerminating && strings.HasPrefix(n.Name, "soak-") {
			team[n.Name] = n.Labels["team"]
		}
	}
	all, err := w.client.CoreV1().Secrets("").List(w.ctx, metav1.ListOptions{})
	if err != nil {
		return []string{err.Error()}
	}
	have := map[string]*corev1.Secret{}
	for i := range all.Items {
		s := &all.Items[i]
		have[s.Namespace+"/"+s.Name] = s
	}
	for key, src := range w.placeholders {
		ns, _, _ := strings.Cut(key, "/")
		if _, ok := team[ns]; !ok {
			continue
		}
		s := have[key]
		if s == nil || !bytes.Equal(s.Data["k"], sources[src].Data["k"]) {
			wrong = append(wrong, "placeholder "+key+" lacks the data of "+src)
		}
	}
	for _, name := range w.pushSources {
		src := sources[name]
		_, pushing := src.Annotations[prefix+"replicate-to-matching"]
		for ns, t := range team {
			r := have[ns+"/"+name]
			want := pushing && t == "a"
			switch {
			case want && (r == nil || !bytes.Equal(r.Data["k"], src.Data["k"])):
				wrong = append(wrong, "replica "+ns+"/"+name+" missing or stale")
			case !want && r != nil:
				wrong = append(wrong, "replica "+ns+"/"+name+" should be gone")
			}
		}
	}
	sort.Strings(wrong)
	return wrong
}

func scrape(p *testsupport.Process) (sampleRow, error) {
	m, err := p.Metrics()
	if err != nil {
		return sampleRow{}, err
	}
	return sampleRow{
		RSSMiB:     p.Memory("VmRSS"),
		AnonMiB:    p.Memory("RssAnon"),
		FileMiB:    p.Memory("RssFile"),
		Goroutines: m.Sum("go_goroutines", "")[""],
		Writes:     m.Sum("replicator_writes_total", "")[""],
		Errors:     m.Sum("replicator_write_errors_total", "class"),
		Problems:   m.Sum("replicator_problems_total", "reason"),
	}, nil
}

func fmtCounts(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s=%.0f", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func toFloat(m map[string]int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}
