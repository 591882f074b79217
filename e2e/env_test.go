package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/kubereplicator/replicator/internal/testsupport"
	"github.com/kubereplicator/replicator/replicate"
)

// This file is a test's world (env): its namespaces, its in-process
// replicator wired as the binary wires it, and waiting for what happens.

// env is one test's world: a prefix, namespaces and (optionally) a controller.
type env struct {
	t      *testing.T
	ctx    context.Context
	id     int64
	prefix string
	a      replicate.Annotations
	// writes counts the mutating requests the controller sent (events
	// excluded); recent keeps the last ones for failure messages.
	writes atomic.Int64
	mu     sync.Mutex
	recent []string
	// byPath counts the mutating requests by URL path.
	byPath map[string]int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	t.Parallel()
	return newEnvHere(t)
}

// newSerialEnv is newEnv for a test that must have the cluster to itself:
// one that reads another tool's dialect, whose annotations carry no prefix
// of the test's own, so that two such replicators would act on each other's
// objects. It runs before the parallel tests start.
func newSerialEnv(t *testing.T) *env {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	return newEnvHere(t)
}

func newEnvHere(t *testing.T) *env {
	id := envSerial.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	prefix := fmt.Sprintf("e%d.replicator.test", id)
	return &env{t: t, ctx: ctx, id: id, prefix: prefix, a: replicate.NewAnnotations(prefix)}
}

// countingConfig returns a copy of the admin config whose mutating requests
// are counted in e.writes.
func (e *env) countingConfig() *rest.Config {
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet || strings.Contains(r.URL.Path, "/events") {
				return rt.RoundTrip(r)
			}
			e.writes.Add(1)
			resp, err := rt.RoundTrip(r)
			status := "error"
			if resp != nil {
				status = resp.Status
			}
			e.mu.Lock()
			if e.byPath == nil {
				e.byPath = map[string]int{}
			}
			e.byPath[r.URL.Path]++
			e.recent = append(e.recent, time.Now().Format("15:04:05.000")+" "+r.Method+" "+r.URL.Path+" -> "+status)
			if len(e.recent) > 20 {
				e.recent = e.recent[1:]
			}
			e.mu.Unlock()
			return resp, err
		})
	})
	return cfg
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// inProcess is a replicator env.start runs in the test's own process, its
// metrics in a registry of its own.
type inProcess struct {
	reg *prometheus.Registry
	// stop stops it (and waits for it); the end of the test does too.
	stop func()
}

func (r *inProcess) metrics() (*testsupport.Metrics, error) {
	families, err := r.reg.Gather()
	if err != nil {
		return nil, err
	}
	m := &testsupport.Metrics{Families: map[string]*dto.MetricFamily{}}
	for _, f := range families {
		m.Families[f.GetName()] = f
	}
	return m, nil
}

// start runs the replicator in process, wired as the binary wires it (its
// metrics included), until it is stopped or the test ends. It returns once
// the caches have synced.
func (e *env) start(configure ...func(*replicate.Options)) *inProcess {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	client := kubernetes.NewForConfigOrDie(e.countingConfig())
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: admin.CoreV1().Events("")})
	log := logrus.New()
	log.SetLevel(logrus.TraceLevel)
	log.SetOutput(io.MultiWriter(testWriter{e.t}, &suiteLog))
	opts := replicate.Options{
		Annotations: e.a,
		// Every namespace may push every kind: the tests of the push
		// policy set their own.
		Push:     replicate.PushPolicy{From: mustPatterns(e.t, ".*"), RBACFrom: mustPatterns(e.t, ".*")},
		Workers:  2,
		Recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "replicator-e2e"}),
		Log:      log.WithField("env", e.id),
		Metrics:  replicate.NewMetrics(reg),
	}
	for _, f := range configure {
		f(&opts)
	}
	// The wiring the binary uses, every kind on as by default.
	rep, err := replicate.NewReplicator(replicate.Setup{
		Client:  client,
		Kinds:   replicate.Kinds(),
		Options: opts,
	})
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	informersStopped := rep.Start(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rep.Run(ctx)
	}()
	for name, ready := range rep.ReadyChecks() {
		e.eventually(30*time.Second, name+" ready", ready)
	}
	var stopped atomic.Bool
	stop := func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		<-done
		informersStopped()
		broadcaster.Shutdown()
	}
	e.t.Cleanup(stop)
	return &inProcess{reg: reg, stop: stop}
}

// mustPatterns parses a pattern list the test knows to be valid.
func mustPatterns(t *testing.T, list string) replicate.Patterns {
	t.Helper()
	p, errs := replicate.ParsePatterns(list)
	require.Empty(t, errs)
	return p
}

// testWriter sends log lines to the test log, and nowhere once it ended.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ns creates a namespace named for this env and returns its name.
func (e *env) ns(suffix string, labels map[string]string) string {
	e.t.Helper()
	name := fmt.Sprintf("e%d-%s", e.id, suffix)
	_, err := admin.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	return name
}

// eventually polls check until it returns nil or timeout passes.
func (e *env) eventually(timeout time.Duration, what string, check func() error) {
	e.t.Helper()
	if err := poll(timeout, check); err != nil {
		e.t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
	}
}

// poll calls check every 50 ms until it returns nil, or returns its last
// error once timeout has passed: the one waiting loop of the tests.
func poll(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const wait = 15 * time.Second

// --- Events -------------------------------------------------------------------

// eventsOn selects the Events recorded on the object Namespace/Name ("" any
// object of the namespace) of Kind ("" any kind: objects of two kinds may
// share a name), with Reason and Type ("" any).
type eventsOn struct{ Kind, Namespace, Name, Reason, Type string }

func (s eventsOn) String() string {
	out := s.Namespace + "/" + s.Name
	if s.Kind != "" {
		out = s.Kind + " " + out
	}
	if s.Reason != "" {
		out = s.Reason + " on " + out
	}
	if s.Type != "" {
		out = s.Type + " " + out
	}
	return out
}

// listEvents lists the Events sel selects in the cluster of client: every
// question the tests ask about Events goes through it.
func (e *env) listEvents(client kubernetes.Interface, sel eventsOn) ([]corev1.Event, error) {
	set := fields.Set{}
	for k, v := range map[string]string{"involvedObject.kind": sel.Kind, "involvedObject.name": sel.Name, "reason": sel.Reason, "type": sel.Type} {
		if v != "" {
			set[k] = v
		}
	}
	list, err := client.CoreV1().Events(sel.Namespace).List(e.ctx, metav1.ListOptions{FieldSelector: set.String()})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// eventsFor returns the Events sel selects in the cluster of client now.
func (e *env) eventsFor(client kubernetes.Interface, sel eventsOn) []corev1.Event {
	e.t.Helper()
	events, err := e.listEvents(client, sel)
	require.NoError(e.t, err)
	return events
}

// eventCount counts events as they were recorded: an Event repeated n times
// counts n times.
func eventCount(events []corev1.Event) int {
	n := 0
	for _, ev := range events {
		n += int(max(ev.Count, 1))
	}
	return n
}

// awaitEvent waits until the Events sel selects in the cluster of client
// whose message contains one of messages (none: any message) count more
// than after, and returns the latest of them; or, after wait, an error that
// lists the Events the object has.
func (e *env) awaitEvent(client kubernetes.Interface, sel eventsOn, after int, messages ...string) (corev1.Event, error) {
	var found corev1.Event
	err := poll(wait, func() error {
		events, err := e.listEvents(client, sel)
		if err != nil {
			return err
		}
		var matching []corev1.Event
		for _, ev := range events {
			if len(messages) == 0 || slices.ContainsFunc(messages, func(m string) bool { return strings.Contains(ev.Message, m) }) {
				matching = append(matching, ev)
			}
		}
		if n := eventCount(matching); n <= after {
			return fmt.Errorf("%d such Events", n)
		}
		found = slices.MaxFunc(matching, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
		return nil
	})
	if err == nil {
		return found, nil
	}
	var seen []string
	if all, listErr := e.listEvents(client, eventsOn{Kind: sel.Kind, Namespace: sel.Namespace, Name: sel.Name}); listErr == nil {
		for _, ev := range all {
			seen = append(seen, fmt.Sprintf("%s %s (%d): %s", ev.Type, ev.Reason, max(ev.Count, 1), ev.Message))
		}
	}
	want := "any message"
	if len(messages) > 0 {
		want = fmt.Sprintf("a message naming one of %q", messages)
	}
	return found, fmt.Errorf("%s: not more than %d Events with %s within %s (%v); the Events on the object: %q", sel, after, want, wait, err, seen)
}

// eventTime is when an Event was last recorded.
func eventTime(ev corev1.Event) time.Time {
	for _, t := range []time.Time{ev.LastTimestamp.Time, ev.EventTime.Time, ev.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// waitForEvent is awaitEvent failing the test when the Event does not come.
func (e *env) waitForEvent(client kubernetes.Interface, sel eventsOn, after int, messages ...string) corev1.Event {
	e.t.Helper()
	ev, err := e.awaitEvent(client, sel, after, messages...)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// waitEvent waits for an Event with reason on the object namespace/name (of
// any kind) in the test cluster and returns its message.
func (e *env) waitEvent(namespace, name, reason string) string {
	e.t.Helper()
	return e.waitForEvent(admin, eventsOn{Namespace: namespace, Name: name, Reason: reason}, 0).Message
}

// --- what the replicator under test has done -----------------------------------

// underTest is a replicator a test runs, in process (env.start) or as a
// process (env.startBinary), as the test reads it from outside.
type underTest interface {
	metrics() (*testsupport.Metrics, error)
}

// markerSerial numbers the markers of the whole run.
var markerSerial atomic.Int64

// caughtUp waits for the positive signal that the replicator r has
// reconciled, writes included, every change made so far in the test cluster
// to objects of kinds (Secrets when none is given). For each kind it creates
// a marker in the namespace default, an object the replicator refuses with
// an InvalidAnnotation Warning (and writes nothing for), and waits for that
// Warning: a kind is watched in order, and its queue is worked in order, so
// every earlier change of that kind has been taken up for reconciling. Then
// it waits until r is settled: what was taken up is done. A check that
// something did not happen, made after caughtUp, cannot pass by being early.
//
// Only the leader records Events: r must be leading (not in dry run).
func (e *env) caughtUp(r underTest, kinds ...kindCase) {
	e.t.Helper()
	if len(kinds) == 0 {
		kinds = []kindCase{secretKind}
	}
	var markers []eventsOn
	for _, kc := range kinds {
		name := fmt.Sprintf("e%d-marker-%d", e.id, markerSerial.Add(1))
		e.objects(kc).create("default", name, e.markerAnnotations(), nil, kc.content(0))
		markers = append(markers, eventsOn{Kind: kc.kind, Namespace: "default", Name: name, Reason: replicate.ReasonInvalidAnnotation})
	}
	for _, m := range markers {
		e.waitForEvent(admin, m, 0)
	}
	e.settled(r)
}

// caughtUpIn is caughtUp for Secrets in the cluster of client (a private
// control plane).
func (e *env) caughtUpIn(client kubernetes.Interface, r underTest) {
	e.t.Helper()
	name := fmt.Sprintf("e%d-marker-%d", e.id, markerSerial.Add(1))
	_, err := client.CoreV1().Secrets("default").Create(e.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: e.markerAnnotations()},
	}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	e.waitForEvent(client, eventsOn{Kind: "Secret", Namespace: "default", Name: name, Reason: replicate.ReasonInvalidAnnotation}, 0)
	e.settled(r)
}

// markerAnnotations make an object a marker: replication-allowed that is
// not a boolean, reported on the object whatever else the replicator makes
// of it, and nothing to write.
func (e *env) markerAnnotations() map[string]string {
	return map[string]string{e.a.ReplicationAllowed: "marker"}
}

// settled waits until r has nothing queued and nothing being reconciled on
// any kind's work queue, read from client-go's work queue metrics: an item
// taken from the queue is counted by workqueue_queue_duration_seconds, and
// once done by workqueue_work_duration_seconds. A key waiting to be added
// again (a requeue after a pause, a retry after a backoff, a costly item
// waiting for its turn) is not counted: settled says that what was taken up
// is done, caughtUp that everything up to now was taken up.
func (e *env) settled(r underTest) {
	e.t.Helper()
	e.eventually(wait, "the replicator settled", func() error {
		m, err := r.metrics()
		if err != nil {
			return err
		}
		return queuesIdle(m)
	})
}

// queuesIdle returns why the work queues of m are not idle, or nil.
func queuesIdle(m *testsupport.Metrics) error {
	depth := m.Sum("workqueue_depth", "name")
	if len(depth) == 0 {
		return fmt.Errorf("no work queue metrics")
	}
	taken, done := histogramCounts(m, "workqueue_queue_duration_seconds"), histogramCounts(m, "workqueue_work_duration_seconds")
	var busy []string
	for _, name := range slices.Sorted(maps.Keys(depth)) {
		// A gather reads the two histograms one after the other: an item
		// may be counted done and not yet taken. Not idle either way.
		if working := int64(taken[name]) - int64(done[name]); depth[name] != 0 || working != 0 {
			busy = append(busy, fmt.Sprintf("%s: %v queued, %d being reconciled", name, depth[name], working))
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("%s", strings.Join(busy, "; "))
	}
	return nil
}

// histogramCounts returns the sample counts of a histogram by its label name.
func histogramCounts(m *testsupport.Metrics, family string) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range m.Families[family].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "name" {
				out[l.GetValue()] += s.GetHistogram().GetSampleCount()
			}
		}
	}
	return out
}

// noWrites asserts that the in-process replicator r, once caught up (the
// echo of each of its writes seen and answered), writes nothing for d. The
// window is about time: a loop through a requeue's pause or a backoff shows
// as writes within it.
func (e *env) noWrites(r *inProcess, d time.Duration, why string) {
	e.t.Helper()
	e.caughtUp(r)
	before := e.writes.Load()
	time.Sleep(d)
	if after := e.writes.Load(); after != before {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.t.Fatalf("%s: %d writes in %s; the last requests:\n%s", why, after-before, d, strings.Join(e.recent, "\n"))
	}
}

func (e *env) labelNamespace(name string, labels map[string]string) {
	e.t.Helper()
	e.eventually(wait, "relabel "+name, func() error {
		n, err := admin.CoreV1().Namespaces().Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Labels = labels
		_, err = admin.CoreV1().Namespaces().Update(e.ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// resourceVersions returns the resourceVersion of every Secret in namespaces.
func (e *env) resourceVersions(namespaces ...string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, ns := range namespaces {
		list, err := admin.CoreV1().Secrets(ns).List(e.ctx, metav1.ListOptions{})
		require.NoError(e.t, err)
		for _, s := range list.Items {
			out[ns+"/"+s.Name] = s.ResourceVersion
		}
	}
	return out
}

// secretWrites returns how many writes the controller sent to the Secret
// (updates and deletes; creates go to the collection).
func (e *env) secretWrites(namespace, name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byPath["/api/v1/namespaces/"+namespace+"/secrets/"+name]
}

// explain runs `replicator explain -o json` on the object as admin, with the
// settings of the env's in-process replicator (e.start's defaults) and
// extra flags, and returns what it says.
func (e *env) explain(object string, flags ...string) replicate.Explanation {
	e.t.Helper()
	args := append([]string{"explain", "--kubeconfig", e.adminKubeconfig(), "--deployment=-", "-o", "json",
		"--annotation-prefix", e.prefix, "--push-from-namespaces=.*", "--push-rbac-from-namespaces=.*"}, flags...)
	cmd := exec.Command(binary, append(args, object)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(e.t, err, "explain %s: %s", object, stderr.String())
	var ex replicate.Explanation
	require.NoError(e.t, json.Unmarshal(out, &ex), "%s", out)
	return ex
}

// explainAgrees runs explain on objects (KIND/NAMESPACE/NAME) once the
// controller has done its work, and checks that it agrees with the
// controller: nothing left to write, and every Event explain says the
// controller raises has been raised on that object.
func (e *env) explainAgrees(flags []string, objects ...string) {
	e.t.Helper()
	for _, object := range objects {
		var ex replicate.Explanation
		e.eventually(wait, "explain agrees on "+object, func() error {
			ex = e.explain(object, flags...)
			if len(ex.Writes) > 0 {
				return fmt.Errorf("explain would still write: %+v", ex.Writes)
			}
			for _, ev := range ex.Events {
				if ev.EventType == replicate.Warning && len(e.eventsFor(admin, eventsOn{Namespace: ev.Namespace, Name: ev.Name, Reason: ev.Reason})) == 0 {
					return fmt.Errorf("explain says %s %s on %s/%s; the controller raised no such Event", ev.EventType, ev.Reason, ev.Namespace, ev.Name)
				}
			}
			return nil
		})
	}
}
