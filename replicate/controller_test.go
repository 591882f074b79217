package replicate

import (
	"cmp"
	"context"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

type harness struct {
	client   *fake.Clientset
	ctrl     *Controller
	recorder *record.FakeRecorder
	metrics  *Metrics
	// setup is what the harness gave NewReplicator, and replicator what it
	// made of it: ctrl is its one controller.
	setup      Setup
	replicator *Replicator
	// live: the informers run, and drain waits for their events;
	// otherwise the test stands in for them (catchUp).
	live bool
	// hub and remote are the source cluster "hub" and its watch, when
	// there is one; ctx ends when the test does.
	hub    *fake.Clientset
	remote *Remote
	ctx    context.Context
}

// harnessOptions say what a harness is made of. The zero value is a Secret
// controller with the default annotations and pushFromAnywhere, whose
// informers do not run.
type harnessOptions struct {
	// kind is the kind replicated; nil: Secrets.
	kind Kind
	// policy is the operator's push policy; nil: pushFromAnywhere.
	policy *PushPolicy
	// annotations are the annotations read; zero: ann. Another prefix, or
	// other dialects.
	annotations Annotations
	// options, when set, changes the options the Setup gives the
	// controller (a budget of Normal Events, say).
	options func(*Options)
	// live runs the informers, for the tests of how the controller meets
	// their timing.
	live bool
	// hub, when set, is the source cluster "hub" (its namespace certs
	// watched); this cluster is named "spoke", and the informers and the
	// hub's watch run.
	hub *fake.Clientset
	// syncTimeout, failureGrace and probeAfter are the hub's timing; zero:
	// 3 s, and the Remote's defaults.
	syncTimeout, failureGrace, probeAfter time.Duration
	// quickProbes, when set, is how many informers the hub's probes start
	// before their pace doubles (ten in the binary).
	quickProbes int
}

// newHarness returns the controller of one kind over a fake clientset
// holding objs, wired as the binary wires it: NewReplicator from a Setup,
// with the informers' cache transform, and the source cluster hub as a
// Remote of its own when o names one. Unless it is live, its informers do
// not run, as in sample-controller's tests: the objects are put in their
// caches and handed to the event handler as the informers' first list
// would, and drain works the queue, then shows the controller its own
// writes (catchUp) until nothing changes. Each live harness has its own
// informers and Remote, and waits for them on its own clock, so the tests
// that use one run in parallel.
func newHarness(t *testing.T, o harnessOptions, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{client: fake.NewClientset(objs...), recorder: record.NewFakeRecorder(100), metrics: NewMetrics(prometheus.NewRegistry()),
		hub: o.hub, live: o.live || o.hub != nil, ctx: context.Background()}
	kind := o.kind
	if kind == nil {
		kind = Secrets()
	}
	policy := policyOr(o.policy)
	a := o.annotations
	if a.ReplicateFrom == "" {
		a = ann
	}
	h.setup = Setup{Client: h.client, Kinds: []Kind{kind},
		Options: Options{Annotations: a, Recorder: h.recorder, Metrics: h.metrics, Push: policy, Now: func() time.Time { return now }}}
	if o.hub != nil {
		h.setup.Options.Cluster = "spoke"
		h.setup.SourceClusters = []SourceCluster{{Name: "hub", Client: o.hub, Namespaces: []string{"certs"}}}
	}
	if o.options != nil {
		o.options(&h.setup.Options)
	}
	r, err := NewReplicator(h.setup)
	require.NoError(t, err)
	require.Len(t, r.controllers, 1)
	h.replicator, h.ctrl = r, r.controllers[0]
	if o.hub != nil {
		require.Len(t, r.clusters, 1)
		require.Len(t, r.clusters[0].remotes, 1, "the hub serves %ss", kind.Name())
		h.remote = r.clusters[0].remotes[0]
		h.remote.timeout = cmp.Or(o.syncTimeout, 3*time.Second)
		h.remote.grace = cmp.Or(o.failureGrace, h.remote.grace)
		h.remote.probe = cmp.Or(o.probeAfter, h.remote.probe)
		h.remote.quickProbes = cmp.Or(o.quickProbes, h.remote.quickProbes)
	}
	if !h.live {
		h.seed(t, objs...)
		return h
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := r.Start(ctx)
	t.Cleanup(func() {
		cancel()
		stopped()
	})
	h.ctx = ctx
	require.True(t, cache.WaitForCacheSync(ctx.Done(), h.ctrl.objects.HasSynced, h.ctrl.namespaces.HasSynced))
	return h
}

// seed puts objs in the controller's caches and hands them to its event
// handler, as the informers' first list would.
func (h *harness) seed(t *testing.T, objs ...runtime.Object) {
	t.Helper()
	for _, o := range objs {
		o = h.cached(t, o)
		if _, ok := o.(*corev1.Namespace); ok {
			require.NoError(t, h.ctrl.namespaces.GetIndexer().Add(o))
		} else if h.ctrl.kind.View(o) != nil {
			require.NoError(t, h.ctrl.objects.GetIndexer().Add(o))
		}
	}
	for _, key := range h.ctrl.objects.GetIndexer().ListKeys() {
		o, _, _ := h.ctrl.objects.GetIndexer().GetByKey(key)
		h.ctrl.objectHandler().OnAdd(o, true)
	}
}

// waitRemote waits until the hub's namespace certs is available (want
// empty) or unavailable for a reason containing want.
func (h *harness) waitRemote(t *testing.T, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		err := h.remote.Check()
		if want == "" {
			return err == nil
		}
		return err != nil && strings.Contains(err.Error(), want)
	}, 10*time.Second, 20*time.Millisecond)
}

// drain processes queued items until the queue is empty and the controller's
// own writes are in the cache without enqueuing more.
func (h *harness) drain(t *testing.T) {
	t.Helper()
	if h.live {
		h.settle(t)
		return
	}
	for range 100 {
		h.work()
		if !h.catchUp(t) && h.ctrl.queue.Len() == 0 {
			return
		}
	}
	t.Fatal("the controller keeps writing")
}

// settle is drain with running informers. It works the queue until the
// cache shows what the fake API server holds, no push write is waited for
// and nothing is queued; then it reconciles every cached object once more.
// That pass is the positive signal the assertions after drain rest on,
// those of an absence too: each object was reconciled against a cache that
// shows the server, and nothing was left to write.
func (h *harness) settle(t *testing.T) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		h.work()
		if h.caughtUp(t) {
			before := len(writes(h.client))
			for _, key := range h.ctrl.objects.GetIndexer().ListKeys() {
				h.ctrl.queue.Add(key)
			}
			h.work()
			if len(writes(h.client)) == before {
				return
			}
			continue
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the controller did not settle")
		}
	}
}

// work reconciles the queued items until none is left.
func (h *harness) work() {
	for h.ctrl.queue.Len() > 0 {
		h.ctrl.processNextItem(context.Background())
	}
}

// caughtUp reports whether nothing is queued, deferred or being
// reconciled, the push expectations wait for no write, and the cache holds
// what the fake API server holds, as the transform makes it.
func (h *harness) caughtUp(t *testing.T) bool {
	t.Helper()
	if !h.ctrl.idle() {
		return false
	}
	h.ctrl.expected.mu.Lock()
	waiting := len(h.ctrl.expected.pending)
	h.ctrl.expected.mu.Unlock()
	if waiting > 0 {
		return false
	}
	stored := h.stored(t)
	indexer := h.ctrl.objects.GetIndexer()
	if len(indexer.ListKeys()) != len(stored) {
		return false
	}
	for _, o := range stored {
		key, err := cache.MetaNamespaceKeyFunc(o)
		require.NoError(t, err)
		cached, ok, _ := indexer.GetByKey(key)
		if !ok || !equality.Semantic.DeepEqual(h.cached(t, o), cached) {
			return false
		}
	}
	return true
}

// kindResources are the API resources of the kinds, for catchUp.
var kindResources = map[string]schema.GroupVersionResource{
	"Secret":         {Version: "v1", Resource: "secrets"},
	"ConfigMap":      {Version: "v1", Resource: "configmaps"},
	"ServiceAccount": {Version: "v1", Resource: "serviceaccounts"},
	"Role":           {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":    {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
}

// catchUp does what the informer would: the cache takes what the fake API
// server holds now, and each difference goes to the event handler. It
// reports whether anything differed.
func (h *harness) catchUp(t *testing.T) bool {
	t.Helper()
	indexer := h.ctrl.objects.GetIndexer()
	seen := map[string]bool{}
	changed := false
	for _, o := range h.stored(t) {
		o := h.cached(t, o)
		key, err := cache.MetaNamespaceKeyFunc(o)
		require.NoError(t, err)
		seen[key] = true
		old, exists, _ := indexer.GetByKey(key)
		switch {
		case !exists:
			require.NoError(t, indexer.Add(o))
			h.ctrl.objectHandler().OnAdd(o, false)
		case !equality.Semantic.DeepEqual(old, o):
			require.NoError(t, indexer.Update(o))
			h.ctrl.objectHandler().OnUpdate(old, o)
		default:
			continue
		}
		changed = true
	}
	for _, key := range indexer.ListKeys() {
		if !seen[key] {
			old, _, _ := indexer.GetByKey(key)
			require.NoError(t, indexer.Delete(old))
			// As an informer that missed the delete event (the fake
			// API server gives deletes no version of their own).
			h.ctrl.objectHandler().OnDelete(cache.DeletedFinalStateUnknown{Key: key, Obj: old})
			changed = true
		}
	}
	return changed
}

// stored are the objects of the controller's kind the fake API server
// holds.
func (h *harness) stored(t *testing.T) []runtime.Object {
	t.Helper()
	gvr := kindResources[h.ctrl.kind.Name()]
	list, err := h.client.Tracker().List(gvr, gvr.GroupVersion().WithKind(h.ctrl.kind.Name()), "")
	require.NoError(t, err)
	objs, err := apimeta.ExtractList(list)
	require.NoError(t, err)
	out := make([]runtime.Object, len(objs))
	for i, o := range objs {
		out[i] = o.(runtime.Object)
	}
	return out
}

// cached is obj as the informers' transform puts it in the cache (the one
// NewReplicator gives the informer factory): the controller under test sees
// what it sees in production.
func (h *harness) cached(t *testing.T, obj runtime.Object) runtime.Object {
	t.Helper()
	out, err := CacheTransform(h.setup.Options.Annotations, h.setup.Options.AllowAll)(obj.DeepCopyObject())
	require.NoError(t, err)
	return out.(runtime.Object)
}

// events returns the Events recorded since the last look, oldest first:
// the one way the tests read the recorder.
func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func writes(client *fake.Clientset) []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range client.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			out = append(out, a)
		}
	}
	return out
}

func TestControllerWritesNothingWhenEverythingIsInSync(t *testing.T) {
	source := secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"},
		map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: "app", ann.ReplicateTo: "team-a"})
	target := secret("app", "tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"},
		map[string]string{ann.ReplicateFrom: "certs/wildcard", ann.ReplicatedKeys: "tls.crt,tls.key", ann.ReplicatedFromVersion: "1", ann.ReplicatedAt: "2026-01-01T00:00:00Z"})
	replica := secret("team-a", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"},
		map[string]string{ann.ReplicatedFrom: "certs/wildcard", ann.ReplicatedKeys: "tls.crt,tls.key", ann.ReplicatedFromVersion: "1", ann.ReplicatedAt: "2026-01-01T00:00:00Z"})
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("app", nil), namespaceObj("team-a", nil), source, target, replica)
	h.drain(t)
	assert.Empty(t, writes(h.client), "steady state causes zero writes")
}

func TestControllerFillsAPlaceholderAndSettles(t *testing.T) {
	source := secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"},
		allowed("app"))
	target := secret("app", "tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""},
		replicateFrom("certs/wildcard"))
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("app", nil), source, target)
	h.drain(t)
	require.Len(t, writes(h.client), 1, "exactly one write")
	got, err := h.client.CoreV1().Secrets("app").Get(context.Background(), "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "A", string(got.Data["tls.crt"]))
	assert.Equal(t, "tls.crt,tls.key", got.Annotations[ann.ReplicatedKeys])
	assert.Equal(t, "certs/wildcard", got.Annotations[ann.ReplicateFrom])
	assert.Contains(t, firstEvent(t, h), ReasonReplicated)
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.writes.WithLabelValues("Secret", "pull", "update")))
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.results.WithLabelValues("Secret", "pull", "written")))
	assert.GreaterOrEqual(t, testutil.ToFloat64(h.metrics.results.WithLabelValues("Secret", "pull", "unchanged")), 1.0, "the reconcile after the write")
}

// conflictingPlaceholder is a harness with the placeholder app/copy of
// certs/wildcard whose first conflicts updates are refused as conflicts, and
// the count of update attempts.
func conflictingPlaceholder(t *testing.T, conflicts int32) (*harness, *atomic.Int32) {
	t.Helper()
	source := secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"},
		allowed("app"))
	target := secret("app", "copy", corev1.SecretTypeOpaque, nil, replicateFrom("certs/wildcard"))
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("app", nil), source, target)
	attempts := &atomic.Int32{}
	h.client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if attempts.Add(1) <= conflicts {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "copy", nil)
		}
		return false, nil, nil
	})
	return h, attempts
}

func TestControllerRetriesConflictsQuietly(t *testing.T) {
	h, attempts := conflictingPlaceholder(t, 1)
	h.ctrl.processNextItem(context.Background()) // first item fails with a conflict
	assert.Eventually(t, func() bool {
		if h.ctrl.queue.Len() > 0 {
			h.ctrl.processNextItem(context.Background())
		}
		got, err := h.client.CoreV1().Secrets("app").Get(context.Background(), "copy", metav1.GetOptions{})
		return err == nil && string(got.Data["k"]) == "v"
	}, 5*time.Second, 20*time.Millisecond)
	assert.GreaterOrEqual(t, attempts.Load(), int32(2), "the conflict was retried")
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.writeErrors.WithLabelValues("Secret", "conflict")))
	for _, e := range h.events() {
		assert.NotContains(t, e, ReasonWriteFailed, "a conflict is not reported as a failure")
	}
}

func TestControllerPushSkipsForeignObjectsAndTerminatingNamespaces(t *testing.T) {
	source := secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"},
		map[string]string{ann.ReplicateTo: "team-.*"})
	foreign := secret("team-b", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "mine"}, nil)
	dying := namespaceObj("team-c", nil)
	dying.Status.Phase = corev1.NamespaceTerminating
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("team-a", nil), namespaceObj("team-b", nil), dying, source, foreign)
	h.drain(t)
	w := writes(h.client)
	require.Len(t, w, 1)
	assert.Equal(t, "team-a", w[0].GetNamespace())
	got, err := h.client.CoreV1().Secrets("team-b").Get(context.Background(), "wildcard", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "mine", string(got.Data["k"]))
	reasons := h.events()
	assert.Contains(t, reasons[0]+reasons[len(reasons)-1], ReasonTargetConflict)
	assert.GreaterOrEqual(t, testutil.ToFloat64(h.metrics.problems.WithLabelValues("Secret", ReasonTargetConflict)), 1.0)
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.writes.WithLabelValues("Secret", "push", "create")))
	assert.GreaterOrEqual(t, testutil.ToFloat64(h.metrics.results.WithLabelValues("Secret", "push", "refused")), 1.0)
}

func TestControllerTreatsTerminatingNamespaceAsNoRetry(t *testing.T) {
	source := secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{ann.ReplicateTo: "team-a"})
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("team-a", nil), source)
	h.client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		err := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "wildcard", nil)
		err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause}}
		return true, nil, err
	})
	h.drain(t)
	assert.Len(t, writes(h.client), 1, "one attempt, no retries")
	assert.Equal(t, 0, h.ctrl.queue.NumRequeues("certs/wildcard"))
	reasons := h.events()
	assert.Len(t, reasons, 1)
	assert.Contains(t, reasons[0], ReasonNamespaceGone)
}

func TestControllerRunStopsWhenItsContextEnds(t *testing.T) {
	h := newHarness(t, harnessOptions{live: true}, namespaceObj("app", nil))
	assert.NoError(t, h.ctrl.Ready(), "caches synced")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.ctrl.Run(ctx) }()
	<-h.ctrl.Settled()
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	assert.True(t, h.ctrl.queue.ShuttingDown(), "the queue is shut down: nothing is written after Run")
}

func TestControllerPushFanOutWritesEachNamespaceOnce(t *testing.T) {
	objs := []runtime.Object{namespaceObj("certs", nil)}
	for i := 0; i < 40; i++ {
		objs = append(objs, namespaceObj("team-"+strconv.Itoa(i), map[string]string{"tls": "yes"}))
	}
	objs = append(objs, secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{ann.ReplicateToMatching: "tls=yes"}))
	// Live informers: the replicas' Add events race the source's next
	// reconcile, as in a cluster.
	h := newHarness(t, harnessOptions{live: true}, objs...)
	h.drain(t)
	created := map[string]int{}
	for _, w := range writes(h.client) {
		assert.Equal(t, "create", w.GetVerb())
		created[w.GetNamespace()]++
	}
	assert.Len(t, created, 40)
	for ns, n := range created {
		assert.Equal(t, 1, n, ns)
	}
	assert.Equal(t, 40.0, testutil.ToFloat64(h.metrics.writes.WithLabelValues("Secret", "push", "create")))
	assert.Contains(t, firstEvent(t, h), "40 replica writes")
	assert.GreaterOrEqual(t, h.ctrl.work.Load(), uint64(40), "the work done counts each write of a fan-out, not only the source's reconcile")
}

func TestControllerSettlesAfterTheFirstReconcileOfEverything(t *testing.T) {
	t.Run("with objects: once the queue has drained", func(t *testing.T) {
		h := newHarness(t, harnessOptions{}, namespaceObj("app", nil), secret("app", "s", corev1.SecretTypeOpaque, nil, replicateFrom("other/s")))
		select {
		case <-h.ctrl.Settled():
			t.Fatal("settled before anything was reconciled")
		default:
		}
		h.drain(t)
		select {
		case <-h.ctrl.Settled():
		default:
			t.Fatal("not settled after the queue drained")
		}
	})
	t.Run("with nothing to reconcile: as soon as it runs", func(t *testing.T) {
		h := newHarness(t, harnessOptions{kind: ConfigMaps(), live: true}, namespaceObj("app", nil))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = h.ctrl.Run(ctx) }()
		select {
		case <-h.ctrl.Settled():
		case <-time.After(5 * time.Second):
			t.Fatal("never settled")
		}
	})
}

func TestControllerPushRefusedByThePolicy(t *testing.T) {
	tenant := secret("tenant", "reader", corev1.SecretTypeOpaque, map[string]string{"k": "v"},
		map[string]string{ann.ReplicateTo: "kube-system|team-a"})
	certs := secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"},
		map[string]string{ann.ReplicateTo: "kube-system|team-a"})
	// Made while the tenant could still push: ours, and deleted now.
	stale := secret("team-a", "reader", corev1.SecretTypeOpaque, map[string]string{"k": "v"},
		map[string]string{ann.ReplicatedFrom: "tenant/reader"})
	// Not ours: left alone.
	foreign := secret("team-b", "reader", corev1.SecretTypeOpaque, map[string]string{"k": "mine"}, nil)
	policy := PushPolicy{From: patterns("certs")}
	h := newHarness(t, harnessOptions{policy: &policy}, namespaceObj("tenant", nil), namespaceObj("certs", nil), namespaceObj("team-a", nil),
		namespaceObj("team-b", nil), namespaceObj("kube-system", nil), tenant, certs, stale, foreign)
	h.drain(t)

	var got []string
	for _, w := range writes(h.client) {
		name := ""
		switch a := w.(type) {
		case k8stesting.CreateAction:
			name = a.GetObject().(metav1.Object).GetName()
		case k8stesting.DeleteAction:
			name = a.GetName()
		}
		got = append(got, w.GetVerb()+" "+w.GetNamespace()+"/"+name)
	}
	assert.ElementsMatch(t, []string{"delete team-a/reader", "create team-a/wildcard"}, got,
		"the stale replica of the refused source is deleted; the allowed source writes nowhere but team-a")
	_, err := h.client.CoreV1().Secrets("team-b").Get(context.Background(), "reader", metav1.GetOptions{})
	assert.NoError(t, err, "a foreign object is never deleted")

	events := h.events()
	assert.Contains(t, strings.Join(events, "\n"), "Warning PushDenied push refused: namespace tenant is not allowed to push; an operator can add it to "+SettingPushFrom)
	assert.Contains(t, strings.Join(events, "\n"), "Warning PushDenied push refused into system namespaces kube-system; an operator can name them in "+SettingPushToSystem)
	assert.GreaterOrEqual(t, testutil.ToFloat64(h.metrics.problems.WithLabelValues("Secret", ReasonPushDenied)), 2.0)
	assert.GreaterOrEqual(t, testutil.ToFloat64(h.metrics.results.WithLabelValues("Secret", "push", "refused")), 2.0,
		"the tenant's source as a whole (its targets are never read), kube-system for certs")
}

func TestControllerRBACKindsPushOnlyFromTheirList(t *testing.T) {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "reader", ResourceVersion: "1", Annotations: map[string]string{ann.ReplicateTo: "team-a"}},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}},
	}
	objs := []runtime.Object{namespaceObj("tenant", nil), namespaceObj("team-a", nil), role}
	h := newHarness(t, harnessOptions{kind: Roles(), policy: &PushPolicy{From: patterns(".*")}}, objs...)
	h.drain(t)
	assert.Empty(t, writes(h.client), "the list for Secrets and ConfigMaps does not open Roles")
	assert.Contains(t, firstEvent(t, h), SettingPushRBACFrom)

	h = newHarness(t, harnessOptions{kind: Roles(), policy: &PushPolicy{RBACFrom: patterns("tenant")}}, objs...)
	h.drain(t)
	require.Len(t, writes(h.client), 1)
	_, err := h.client.RbacV1().Roles("team-a").Get(context.Background(), "reader", metav1.GetOptions{})
	assert.NoError(t, err)
}

func TestControllerDryRunWritesNothing(t *testing.T) {
	source := secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"},
		map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: "app", ann.ReplicateTo: "team-a,team-b"})
	placeholder := secret("app", "tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""}, replicateFrom("certs/wildcard"))
	source.ResourceVersion = "41"
	// kubernetes-replicator's copy of the source as it is now.
	adoptable := secret("team-b", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "OLD", "tls.key": "OLD"},
		map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicatedFromVersion: "41"})
	stale := secret("team-c", "wildcard", corev1.SecretTypeTLS, nil, map[string]string{ann.ReplicatedFrom: "certs/wildcard"})
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("app", nil), namespaceObj("team-a", nil), namespaceObj("team-b", nil), namespaceObj("team-c", nil),
		source, placeholder, adoptable, stale)
	h.ctrl.opts.DryRun = true
	logger, logs := logtest.NewNullLogger()
	h.ctrl.log = logger
	h.drain(t)
	assert.Empty(t, writes(h.client), "nothing written")
	assert.Empty(t, h.events(), "no Event recorded")
	for mode, actions := range map[string][]Action{"pull": {Update}, "push": {Create, Adopt, Delete}} {
		for _, a := range actions {
			assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.dryRunWrites.WithLabelValues("Secret", mode, string(a))), "%s %s counted", mode, a)
		}
	}
	assert.Zero(t, testutil.ToFloat64(h.metrics.writes.WithLabelValues("Secret", "push", "create")))

	// Nothing changed, so another pass plans the same writes: each is
	// reported once.
	for _, key := range h.ctrl.objects.GetIndexer().ListKeys() {
		h.ctrl.queue.Add(key)
	}
	eventLogs := func() int {
		n := 0
		for _, e := range logs.AllEntries() {
			if e.Message == "dry run: would record event" {
				n++
			}
		}
		return n
	}
	events := eventLogs()
	require.NotZero(t, events, "the Events it would record are logged")
	h.drain(t)
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.dryRunWrites.WithLabelValues("Secret", "push", "create")), "reported once")
	assert.Equal(t, events, eventLogs(), "each Event is logged once too")
}

// In reflector's dialect a source may allow namespaces by label: relabelling
// a namespace fills or empties the mirrors in it, without any change to the
// source or the mirror.
func TestControllerReflectorMirrorFollowsItsNamespaceLabels(t *testing.T) {
	app := namespaceObj("app", nil)
	objs := []runtime.Object{
		namespaceObj("certs", nil), app,
		secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"},
			map[string]string{rk.Allowed: "true", rk.AllowedNamespaces: "staging", rk.AllowedSelector: "team=web"}),
		secret("app", "my-tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""}, map[string]string{rk.Reflects: "certs/wildcard"}),
	}
	h := newHarness(t, harnessOptions{annotations: dialects}, objs...)
	h.drain(t)
	mirror := func() string {
		s, err := h.client.CoreV1().Secrets("app").Get(context.Background(), "my-tls", metav1.GetOptions{})
		require.NoError(t, err)
		return string(s.Data["tls.crt"])
	}
	assert.Empty(t, mirror(), "app is neither listed nor labelled")

	relabel := func(labels map[string]string) {
		old, _, _ := h.ctrl.namespaces.GetIndexer().GetByKey("app")
		cur := old.(*corev1.Namespace).DeepCopy()
		cur.Labels = labels
		require.NoError(t, h.ctrl.namespaces.GetIndexer().Update(cur))
		h.ctrl.namespaceChanged(old, cur)
		h.drain(t)
	}
	relabel(map[string]string{"team": "web"})
	assert.Equal(t, "A", mirror(), "labelled: filled")
	relabel(nil)
	assert.Empty(t, mirror(), "unlabelled: emptied")
}

// Another writer keeps emptying a placeholder: the replicator restores it,
// and the third write of the same content names the writer once, from the
// object's managedFields, with the docs to read.
func TestControllerNamesTheWriterItFights(t *testing.T) {
	source := secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"}, allowed("app"))
	placeholder := secret("app", "tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""}, replicateFrom("certs/wildcard"))
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("app", nil), source, placeholder)
	h.drain(t)
	revert := func() {
		// What Argo CD does with a manifest holding the empty values:
		// server-side apply, forced.
		apply := corev1ac.Secret("tls", "app").WithType(corev1.SecretTypeTLS).WithData(map[string][]byte{"tls.crt": {}, "tls.key": {}})
		_, err := h.client.CoreV1().Secrets("app").Apply(context.Background(), apply, metav1.ApplyOptions{FieldManager: "argocd-controller", Force: true})
		require.NoError(t, err)
		h.drain(t)
	}
	revert()
	assert.Empty(t, fightEvents(h), "one repair is no fight")
	revert()
	revert()
	events := fightEvents(h)
	require.Len(t, events, 1, "named once per spell")
	assert.Contains(t, events[0], "latest first: argocd-controller (Apply)", "the last writer first")
	assert.NotContains(t, events[0], FieldManager+" (", "the replicator left out")
	assert.Contains(t, events[0], GitOpsDocs)
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.fights.WithLabelValues("Secret", "pull")))
	s, err := h.client.CoreV1().Secrets("app").Get(context.Background(), "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "A", string(s.Data["tls.crt"]), "restored each time")
	for _, a := range writes(h.client) {
		if u, ok := a.(k8stesting.UpdateAction); ok {
			m, err := apimeta.Accessor(u.GetObject())
			require.NoError(t, err)
			assert.Empty(t, m.GetManagedFields(), "the replicator never sends managedFields")
		}
	}
}

// firstEvent is the oldest Event recorded since the last look; the others
// are dropped.
func firstEvent(t *testing.T, h *harness) string {
	t.Helper()
	events := h.events()
	require.NotEmpty(t, events, "an Event")
	return events[0]
}

// fightEvents returns the FightingWriter Events recorded since the last
// look.
func fightEvents(h *harness) []string {
	var out []string
	for _, e := range h.events() {
		if strings.Contains(e, ReasonFightingWriter) {
			out = append(out, e)
		}
	}
	return out
}

// The state gauge follows the objects: each pull target and each push
// target namespace counted once, by state and reason, and dropped when it
// stops taking part.
func TestControllerKeepsTheStateOfEveryManagedObject(t *testing.T) {
	tls := map[string]string{"tls.crt": "A", "tls.key": "K"}
	empty := map[string]string{"tls.crt": "", "tls.key": ""}
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("app", nil), namespaceObj("other", nil), namespaceObj("kube-system", nil),
		secret("certs", "wildcard", corev1.SecretTypeTLS, tls, map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: "app", ann.ReplicateTo: "app,other,kube-system"}),
		secret("app", "tls", corev1.SecretTypeTLS, empty, replicateFrom("certs/wildcard")),
		secret("other", "tls", corev1.SecretTypeTLS, empty, replicateFrom("certs/wildcard")),
		secret("other", "gone", corev1.SecretTypeTLS, empty, replicateFrom("certs/missing")),
		secret("other", "wildcard", corev1.SecretTypeTLS, tls, nil), // not ours: a conflict
	)
	h.drain(t)
	assert.Equal(t, map[stateCount]int{
		{"pull", StateFilled, ""}:                    1,
		{"pull", StateRefused, ReasonDenied}:         1,
		{"pull", StateRefused, ReasonSourceNotFound}: 1,
		{"push", StateFilled, ""}:                    1, // app
		{"push", StateConflict, ""}:                  1, // other
		{"push", StateRefused, ReasonPushDenied}:     1, // kube-system
	}, h.ctrl.states.counts())

	// A placeholder deleted and the push annotation removed: gone from
	// the counts.
	require.NoError(t, h.client.CoreV1().Secrets("other").Delete(context.Background(), "gone", metav1.DeleteOptions{}))
	s, err := h.client.CoreV1().Secrets("certs").Get(context.Background(), "wildcard", metav1.GetOptions{})
	require.NoError(t, err)
	delete(s.Annotations, ann.ReplicateTo)
	_, err = h.client.CoreV1().Secrets("certs").Update(context.Background(), s, metav1.UpdateOptions{})
	require.NoError(t, err)
	h.drain(t)
	assert.Equal(t, map[stateCount]int{
		{"pull", StateFilled, ""}:            1,
		{"pull", StateRefused, ReasonDenied}: 1,
		{"push", StateFilled, ""}:            0,
	}, h.ctrl.states.counts())
}

func TestControllerComparesTargetsByDigestAndWritesContent(t *testing.T) {
	// The cache holds what the replicator wrote into targets as digests.
	// Every change must still be seen, and every write must carry content.
	source := secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"},
		map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: "app", ann.ReplicateTo: "team-a"})
	target := secret("app", "tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": "", "own": "O"},
		replicateFrom("certs/wildcard"))
	h := newHarness(t, harnessOptions{live: true}, namespaceObj("certs", nil), namespaceObj("app", nil), namespaceObj("team-a", nil), source, target)
	h.drain(t)
	ctx := context.Background()
	secrets := h.client.CoreV1().Secrets
	cached := func(key string) *corev1.Secret {
		o, _ := h.ctrl.get(key)
		require.NotNil(t, o, key)
		return o.(*corev1.Secret)
	}
	filled, replica := cached("app/tls"), cached("team-a/wildcard")
	assert.Equal(t, map[string][]byte{"#tls.crt": digest([]byte("A")), "#tls.key": digest([]byte("K")), "own": []byte("O")}, filled.Data,
		"the cache holds the replicated keys as digests and the target's own key whole")
	assert.Equal(t, map[string][]byte{"#tls.crt": digest([]byte("A")), "#tls.key": digest([]byte("K"))}, replica.Data)
	assert.Equal(t, map[string][]byte{"tls.crt": []byte("A"), "tls.key": []byte("K")}, cached("certs/wildcard").Data, "a source is kept whole")

	check := func(what string) {
		t.Helper()
		got, err := secrets("app").Get(ctx, "tls", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, map[string][]byte{"tls.crt": []byte("A2"), "tls.key": []byte("K"), "own": []byte("O")}, got.Data, what)
		got, err = secrets("team-a").Get(ctx, "wildcard", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, map[string][]byte{"tls.crt": []byte("A2"), "tls.key": []byte("K")}, got.Data, what)
	}
	s, err := secrets("certs").Get(ctx, "wildcard", metav1.GetOptions{})
	require.NoError(t, err)
	s.Data["tls.crt"] = []byte("A2")
	_, err = secrets("certs").Update(ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	h.drain(t)
	check("a source update reaches both targets, with content")

	for _, ns := range []string{"app", "team-a"} {
		name := map[string]string{"app": "tls", "team-a": "wildcard"}[ns]
		got, err := secrets(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		got.Data["tls.crt"] = []byte("edited")
		_, err = secrets(ns).Update(ctx, got, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	h.drain(t)
	check("an edit of a replicated key is seen through its digest and repaired")
}

func TestWritesNeverCarryDigests(t *testing.T) {
	client := fake.NewClientset()
	desired := &Object{Namespace: "app", Name: "tls", Data: Data{"tls.crt": {Bytes: digest([]byte("A")), Digest: true}}}
	for _, k := range []Kind{Secrets(), ConfigMaps()} {
		_, err := k.Create(context.Background(), client, desired)
		assert.ErrorIs(t, err, errDigest, k.Name())
		var current runtime.Object = &corev1.Secret{}
		if k.Name() == "ConfigMap" {
			current = &corev1.ConfigMap{}
		}
		_, err = k.Update(context.Background(), client, current, desired)
		assert.ErrorIs(t, err, errDigest, k.Name())
	}
	assert.Empty(t, client.Actions(), "nothing reached the API")
}

func TestControllerNormalEventsKeepToTheirBudget(t *testing.T) {
	objs := []runtime.Object{namespaceObj("certs", nil),
		secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"},
			allowed("team-.*"))}
	for i := 0; i < 10; i++ {
		ns := "team-" + strconv.Itoa(i)
		objs = append(objs, namespaceObj(ns, nil), secret(ns, "tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""}, replicateFrom("certs/wildcard")))
	}
	// Warnings are not limited: a placeholder naming a missing source.
	objs = append(objs, secret("team-0", "missing", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""}, replicateFrom("certs/missing")))
	h := newHarness(t, harnessOptions{options: func(o *Options) { o.NormalEvents = rate.NewLimiter(0, 3) }}, objs...)
	h.drain(t)
	var normal, warnings int
	for _, e := range h.events() {
		switch {
		case strings.HasPrefix(e, "Normal "+ReasonReplicated):
			normal++
		case strings.HasPrefix(e, "Warning "+ReasonSourceNotFound):
			warnings++
		}
	}
	assert.Equal(t, 3, normal, "the burst, then nothing (no refill)")
	assert.Equal(t, 1, warnings, "a Warning is never held back by the budget")
	assert.Equal(t, 7.0, testutil.ToFloat64(h.metrics.eventsSkipped.WithLabelValues("Secret", ReasonReplicated)))
	assert.Equal(t, 10.0, testutil.ToFloat64(h.metrics.writes.WithLabelValues("Secret", "pull", "update")), "every placeholder is filled all the same")
}

// A replica already deleted, whose deletion the cache does not show yet, is
// planned for deletion again: that is no write and no fight.
func TestControllerRepeatedDeletesOfAGoneReplicaAreNoFight(t *testing.T) {
	source := secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, nil) // pushes no more
	replica := secret("team-a", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"},
		map[string]string{ann.ReplicatedFrom: "certs/wildcard", ann.ReplicatedKeys: "k"})
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("team-a", nil), source, replica)
	h.client.PrependReactor("delete", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, "wildcard")
	})
	for range 5 {
		h.ctrl.queue.Add("certs/wildcard")
		h.work()
	}
	assert.Empty(t, fightEvents(h))
	assert.Zero(t, testutil.ToFloat64(h.metrics.fights.WithLabelValues("Secret", "push")))
	assert.Zero(t, testutil.ToFloat64(h.metrics.writes.WithLabelValues("Secret", "push", "delete")), "nothing was deleted")
}

// The cache shares equal maps between objects (sharedMaps): a write to one
// cached map would change every object holding it. After fan-outs and
// updates through live informers, each cached object is still what the
// transform makes of the stored one.
func TestControllerLeavesTheSharedCacheAsStored(t *testing.T) {
	objs := []runtime.Object{namespaceObj("certs", nil)}
	for i := range 20 {
		ns := "team-" + strconv.Itoa(i)
		objs = append(objs, namespaceObj(ns, map[string]string{"tls": "yes"}),
			secret(ns, "pulled", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""}, replicateFrom("certs/pull-source")))
	}
	objs = append(objs,
		secret("certs", "pull-source", corev1.SecretTypeTLS, map[string]string{"tls.crt": "A", "tls.key": "K"}, allowed("team-.*")),
		secret("certs", "push-source", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{ann.ReplicateToMatching: "tls=yes"}))
	h := newHarness(t, harnessOptions{live: true}, objs...)
	h.drain(t)
	for _, name := range []string{"pull-source", "push-source"} {
		s, err := h.client.CoreV1().Secrets("certs").Get(context.Background(), name, metav1.GetOptions{})
		require.NoError(t, err)
		for k := range s.Data {
			s.Data[k] = []byte("renewed " + k)
		}
		_, err = h.client.CoreV1().Secrets("certs").Update(context.Background(), s, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	h.drain(t)

	list, err := h.client.CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, 2+2*20)
	annotations := map[any]bool{}
	for i := range list.Items {
		stored := &list.Items[i]
		cached, ok, err := h.ctrl.objects.GetIndexer().Get(stored)
		require.NoError(t, err)
		require.True(t, ok, stored.Name)
		assert.True(t, equality.Semantic.DeepEqual(h.cached(t, stored), cached), "%s/%s", stored.Namespace, stored.Name)
		if stored.Name == "push-source" && stored.Namespace != "certs" {
			assert.Equal(t, "renewed k", string(stored.Data["k"]))
			annotations[reflect.ValueOf(cached.(*corev1.Secret).Annotations).UnsafePointer()] = true
		}
	}
	assert.Len(t, annotations, 1, "the 20 replicas hold one map of annotations")
}

// Memory is given back once the work is done (releaseAfterBursts): a push
// source's fan-out is one item, out of the queue while it writes, and the
// controller is not idle until it is written.
func TestControllerIsNotIdleWhileAFanOutWrites(t *testing.T) {
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("app", nil),
		secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{ann.ReplicateTo: "app"}))
	writing, release := make(chan struct{}), make(chan struct{})
	h.client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		close(writing)
		<-release
		return false, nil, nil
	})
	require.Equal(t, 1, h.ctrl.queue.Len(), "the source")
	assert.False(t, h.ctrl.idle(), "queued")
	done := make(chan struct{})
	go func() {
		h.ctrl.processNextItem(context.Background())
		close(done)
	}()
	<-writing
	assert.Zero(t, h.ctrl.queue.Len())
	assert.False(t, h.ctrl.idle(), "writing a replica, nothing queued")
	close(release)
	<-done
	assert.True(t, h.ctrl.idle(), "written")
}

// A push source enqueued again by its replicas' events while the cache does
// not show all of its writes yet plans from stale replicas: the writes it
// would send again carry the versions they replaced, and the API server
// refuses them with conflicts after doing most of an update's work. It waits
// for the cache instead.
func TestControllerPushWaitsForTheCacheToShowItsWrites(t *testing.T) {
	objs := []runtime.Object{namespaceObj("certs", nil)}
	for i := range 3 {
		ns := "team-" + strconv.Itoa(i)
		objs = append(objs, namespaceObj(ns, map[string]string{"tls": "yes"}),
			secret(ns, "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v1"},
				map[string]string{ann.ReplicatedFrom: "certs/wildcard", ann.ReplicatedKeys: "k"}))
	}
	source := secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v2"}, map[string]string{ann.ReplicateToMatching: "tls=yes"})
	objs = append(objs, source)
	h := newHarness(t, harnessOptions{}, objs...)
	// As the API server: every write gives the object a version of its own
	// (the fake keeps the one sent).
	version := 100
	h.client.PrependReactor("update", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.UpdateAction).GetObject().(*corev1.Secret).DeepCopy()
		version++
		obj.ResourceVersion = strconv.Itoa(version)
		return true, obj, h.client.Tracker().Update(a.GetResource(), obj, obj.Namespace)
	})
	count := func(verb string) int {
		n := 0
		for _, w := range writes(h.client) {
			if w.GetVerb() == verb {
				n++
			}
		}
		return n
	}

	h.work()
	require.Equal(t, 3, count("update"), "the fan-out")
	h.ctrl.queue.Add("certs/wildcard") // as a replica's event does
	h.work()
	assert.Equal(t, 3, count("update"), "the cache does not show the updates yet: nothing is sent again")
	assert.True(t, h.ctrl.expected.awaited("certs/wildcard", time.Now()))

	require.True(t, h.catchUp(t))
	assert.False(t, h.ctrl.expected.awaited("certs/wildcard", time.Now()), "each update seen in its new version")
	h.work()
	assert.Equal(t, 3, count("update"), "in sync")

	// The source stops pushing: its replicas are deleted, once each.
	stopped := source.DeepCopy()
	stopped.Annotations = nil
	stopped.ResourceVersion = "2"
	require.NoError(t, h.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("secrets"), stopped, "certs"))
	require.True(t, h.catchUp(t))
	h.work()
	require.Equal(t, 3, count("delete"))
	h.ctrl.queue.Add("certs/wildcard")
	h.work()
	assert.Equal(t, 3, count("delete"), "the cache still shows the replicas: they are not deleted again")
	require.True(t, h.catchUp(t))
	assert.False(t, h.ctrl.expected.awaited("certs/wildcard", time.Now()), "each delete seen")
	h.work()
	assert.Equal(t, 3, count("delete"))
}

// A write refused as a conflict was not made: a placeholder whose writes are
// refused twice while the cache lags, then made, was written once, and no
// other writer is named.
func TestControllerConflictsAreNoFight(t *testing.T) {
	h, attempts := conflictingPlaceholder(t, guardSpell-1)
	// The source is queued too; each round retries the placeholder at
	// once, as its backoff would.
	for i := 0; i < 10 && attempts.Load() < guardSpell; i++ {
		h.ctrl.queue.Add("app/copy")
		for h.ctrl.queue.Len() > 0 && attempts.Load() < guardSpell {
			h.ctrl.processNextItem(context.Background())
		}
	}
	require.Equal(t, int32(guardSpell), attempts.Load())
	got, err := h.client.CoreV1().Secrets("app").Get(context.Background(), "copy", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v", string(got.Data["k"]))
	assert.Empty(t, fightEvents(h))
	assert.Zero(t, testutil.ToFloat64(h.metrics.fights.WithLabelValues("Secret", "pull")))
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.writes.WithLabelValues("Secret", "pull", "update")))
}

func TestControllerRefusesWhatIsPastTheLimitsAndSaysSoBriefly(t *testing.T) {
	big := strings.Repeat("x", MaxMetadataBytes)
	// A placeholder whose annotations are past MaxMetadataBytes: never
	// read nor written, whatever it asks.
	bloated := secret("tenant", "bloated", corev1.SecretTypeOpaque, nil, map[string]string{ann.ReplicateFrom: "certs/wildcard", "other.example/pad": big})
	// A reference too long to be one, quoted in the Warning.
	long := secret("tenant", "long", corev1.SecretTypeOpaque, nil, map[string]string{ann.ReplicateFrom: "certs/" + strings.Repeat("n", 20000)})
	source := secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"},
		allowed("tenant"))
	h := newHarness(t, harnessOptions{}, namespaceObj("certs", nil), namespaceObj("tenant", nil), source, bloated, long)
	h.drain(t)
	assert.Empty(t, writes(h.client), "nothing written")
	events := h.events()
	all := strings.Join(events, "\n")
	assert.Contains(t, all, "Warning InvalidAnnotation its labels and annotations take")
	assert.Contains(t, all, "MaxMetadataBytes")
	for _, e := range events {
		assert.LessOrEqual(t, len(e), maxEventMessage+100, "an Event quotes at most a little of what an annotation says")
	}
}

func TestControllerCostlyItemsWaitTheirTurnWithoutHoldingUpOthers(t *testing.T) {
	long := strings.Repeat("tenant-a-name-that-is-long,", 100) + "app"
	costly := secret("tenant-a", "costly", corev1.SecretTypeOpaque, map[string]string{"k": "costly"},
		map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: long})
	costlyTarget := secret("app", "costly", corev1.SecretTypeOpaque, nil, replicateFrom("tenant-a/costly"))
	source := secret("certs", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"},
		allowed("app"))
	target := secret("app", "wildcard", corev1.SecretTypeOpaque, nil, replicateFrom("certs/wildcard"))
	h := newHarness(t, harnessOptions{}, namespaceObj("tenant-a", nil), namespaceObj("certs", nil), namespaceObj("app", nil), costly, costlyTarget, source, target)
	assert.True(t, h.ctrl.costly("tenant-a/costly"), "long lists")
	assert.True(t, h.ctrl.costly("app/costly"), "pulls from long lists")
	assert.False(t, h.ctrl.costly("certs/wildcard"))
	assert.False(t, h.ctrl.costly("app/wildcard"))

	// Another costly item holds the slot: the costly placeholder waits,
	// the ordinary one behind it is filled.
	h.ctrl.costlySlot <- struct{}{}
	for _, key := range []string{"app/costly", "app/wildcard"} {
		h.ctrl.queue.Add(key)
	}
	h.work()
	got, err := h.client.CoreV1().Secrets("app").Get(context.Background(), "wildcard", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v", string(got.Data["k"]), "the ordinary placeholder is not held up")
	got, err = h.client.CoreV1().Secrets("app").Get(context.Background(), "costly", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, got.Data, "the costly one waits its turn")
	assert.False(t, h.ctrl.idle(), "a deferred item is work left")

	// Its turn comes once the slot is free.
	<-h.ctrl.costlySlot
	require.Eventually(t, func() bool { return h.ctrl.queue.Len() > 0 }, 5*time.Second, 10*time.Millisecond, "put back on the queue")
	h.drain(t)
	got, err = h.client.CoreV1().Secrets("app").Get(context.Background(), "costly", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "costly", string(got.Data["k"]))
	assert.True(t, h.ctrl.idle())
}
