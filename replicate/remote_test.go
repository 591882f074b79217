package replicate

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestRemotePullFillsAndFollowsTheRemoteSource(t *testing.T) {
	t.Parallel()
	hub := fake.NewClientset(hubSource("A", "spoke"))
	// The remote's first list waits for the test, so that the placeholder
	// is surely reconciled while the remote is loading.
	loading := make(chan struct{})
	load := sync.OnceFunc(func() { close(loading) })
	hub.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-loading
		return false, nil, nil
	})
	h := newHarness(t, harnessOptions{hub: hub}, namespaceObj("app", nil), placeholder("hub:certs/wildcard"))
	t.Cleanup(load) // runs before the harness stops the Remote
	h.drain(t)
	assert.Empty(t, writes(h.client), "nothing is written while the remote is loading")
	assert.Empty(t, h.events(), "loading is not worth an Event")

	load()
	h.waitRemote(t, "")
	h.drain(t)
	got, err := h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "A", string(got.Data["tls.crt"]), "filled once the remote is loaded")

	_, err = hub.CoreV1().Secrets("certs").Update(h.ctx, hubSource("B", "spoke"), metav1.UpdateOptions{})
	require.NoError(t, err)
	h.waitRemoteSource(t, func(o *Object) bool { return o != nil && string(o.Data["tls.crt"].Bytes) == "B" })
	require.Eventually(t, func() bool { return h.ctrl.queue.Len() > 0 }, 5*time.Second, 10*time.Millisecond, "a remote change enqueues its placeholders")
	h.drain(t)
	got, err = h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "B", string(got.Data["tls.crt"]))
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.remoteUp.WithLabelValues("hub", "certs")))
	assert.GreaterOrEqual(t, testutil.ToFloat64(h.metrics.remoteChanges.WithLabelValues("hub")), 2.0)

	require.NoError(t, hub.CoreV1().Secrets("certs").Delete(h.ctx, "wildcard", metav1.DeleteOptions{}))
	// The deletion seen by the hub's watch (drain waits for this
	// cluster's caches only), and its placeholder queued.
	h.waitRemoteSource(t, func(o *Object) bool { return o == nil })
	require.Eventually(t, func() bool { return h.ctrl.queue.Len() > 0 }, 5*time.Second, 10*time.Millisecond)
	h.drain(t)
	got, err = h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, got.Data["tls.crt"], "a deletion seen in the remote empties the placeholder")
}

func TestRemoteThatCannotBeReadLeavesPlaceholdersAlone(t *testing.T) {
	t.Parallel()
	hub := fake.NewClientset(hubSource("A", "spoke"))
	var forbidden atomic.Bool
	forbidden.Store(true)
	refuse := func(k8stesting.Action) (bool, runtime.Object, error) {
		if forbidden.Load() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", nil)
		}
		return false, nil, nil
	}
	hub.PrependReactor("list", "secrets", refuse)
	hub.PrependWatchReactor("secrets", func(a k8stesting.Action) (bool, watch.Interface, error) {
		ok, _, err := refuse(a)
		return ok, nil, err
	})
	filled := secret("app", "tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "old", "tls.key": "old-key"},
		map[string]string{ann.ReplicateFrom: "hub:certs/wildcard", ann.ReplicatedKeys: "tls.crt,tls.key"})
	h := newHarness(t, harnessOptions{hub: hub}, namespaceObj("app", nil), filled)
	h.waitRemote(t, "forbidden")
	h.drain(t)
	assert.Empty(t, writes(h.client), "the data replicated last is kept")
	events := strings.Join(h.events(), "\n")
	assert.Contains(t, events, ReasonClusterUnavailable)
	assert.Contains(t, events, "forbidden")
	assert.Equal(t, 0.0, testutil.ToFloat64(h.metrics.remoteUp.WithLabelValues("hub", "certs")))
	assert.Positive(t, testutil.ToFloat64(h.metrics.remoteErrors.WithLabelValues("hub")))

	forbidden.Store(false)
	h.waitRemote(t, "")
	h.drain(t)
	got, err := h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "A", string(got.Data["tls.crt"]), "filled when the remote can be read again")
}

func TestRemoteReferencesThatCannotBeServed(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		from   string
		reason string
		detail string
	}{
		"a cluster that is not configured":              {from: "elsewhere:certs/wildcard", reason: ReasonInvalidAnnotation, detail: `cluster "elsewhere" is not configured`},
		"a namespace of the remote that is not watched": {from: "hub:private/wildcard", reason: ReasonInvalidAnnotation, detail: "namespace private of cluster hub is not watched"},
		"a source without the cluster opt-in":           {from: "hub:certs/no-opt-in", reason: ReasonDenied, detail: "not served to other clusters"},
		"a source that allows other clusters only":      {from: "hub:certs/other-cluster", reason: ReasonDenied, detail: "does not allow cluster spoke"},
		"a source missing in the remote":                {from: "hub:certs/missing", reason: ReasonSourceNotFound, detail: "hub:certs/missing not found"},
	}
	noOptIn := hubSource("A", "")
	noOptIn.Name = "no-opt-in"
	otherCluster := hubSource("A", "spoke-2")
	otherCluster.Name = "other-cluster"
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{hub: fake.NewClientset(noOptIn, otherCluster)}, namespaceObj("app", nil), placeholder(tt.from))
			h.waitRemote(t, "")
			h.ctrl.queue.Add("app/tls")
			h.drain(t)
			assert.Empty(t, writes(h.client))
			events := strings.Join(h.events(), "\n")
			assert.Contains(t, events, tt.reason)
			assert.Contains(t, events, tt.detail)
		})
	}
}

func TestReferenceNamingThisClusterIsLocal(t *testing.T) {
	t.Parallel()
	local := secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "L", "tls.key": "K"},
		map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: "app"})
	h := newHarness(t, harnessOptions{hub: fake.NewClientset(hubSource("A", "spoke"))}, namespaceObj("certs", nil), namespaceObj("app", nil), local, placeholder("spoke:certs/wildcard"))
	h.drain(t)
	got, err := h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "L", string(got.Data["tls.crt"]), "spoke: is this cluster, so the local source fills it without a cluster opt-in")
}

func TestRemoteOnlyServesSecrets(t *testing.T) {
	remote, err := NewRemote(RemoteOptions{Name: "hub", Kind: Secrets(), Client: fake.NewClientset(), Namespaces: []string{"certs"}})
	require.NoError(t, err)
	client := fake.NewClientset()
	_, err = NewController(ConfigMaps(), client, informers.NewSharedInformerFactory(client, 0), Options{Annotations: ann, Remotes: map[string]*Remote{"hub": remote}})
	assert.ErrorContains(t, err, "serves Secrets, not ConfigMaps")
}

func TestNewRemoteRejectsBadConfiguration(t *testing.T) {
	for name, opts := range map[string]RemoteOptions{
		"a name that is not a DNS label":      {Name: "Hub_1", Namespaces: []string{"certs"}},
		"no namespaces":                       {Name: "hub"},
		"a namespace that is not a DNS label": {Name: "hub", Namespaces: []string{"certs", "Bad"}},
	} {
		t.Run(name, func(t *testing.T) {
			opts.Kind, opts.Client = Secrets(), fake.NewClientset()
			_, err := NewRemote(opts)
			assert.Error(t, err)
		})
	}
	for why, kind := range map[string]Kind{"no kind": nil, "a kind that cannot come from another cluster": ConfigMaps()} {
		_, err := NewRemote(RemoteOptions{Name: "hub", Kind: kind, Client: fake.NewClientset(), Namespaces: []string{"certs"}})
		assert.Error(t, err, why)
	}
}

func TestRemoteFailingBrieflyRaisesNoAlarm(t *testing.T) {
	t.Parallel()
	hub := fake.NewClientset(hubSource("A", "spoke"))
	var failures atomic.Int32
	hub.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		// The first two lists fail: over a second of failing requests,
		// several observations, all within the grace.
		if failures.Add(1) <= 2 {
			return true, nil, apierrors.NewServiceUnavailable("restarting")
		}
		return false, nil, nil
	})
	h := newHarness(t, harnessOptions{hub: hub, syncTimeout: 30 * time.Second, failureGrace: 20 * time.Second}, namespaceObj("app", nil), placeholder("hub:certs/wildcard"))
	require.Eventually(t, func() bool {
		err := h.remote.Check()
		require.False(t, err != nil && strings.Contains(err.Error(), "restarting"), "reported unavailable within the grace: %v", err)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	h.drain(t)
	assert.NotContains(t, strings.Join(h.events(), "\n"), ReasonClusterUnavailable, "failures within the grace are no alarm")
	assert.Equal(t, 2.0, testutil.ToFloat64(h.metrics.remoteErrors.WithLabelValues("hub")), "but they are counted")
	got, err := h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "A", string(got.Data["tls.crt"]))
}

func TestRemoteThatNeverLoadsIsReportedAfterTheSyncTimeout(t *testing.T) {
	t.Parallel()
	hub := fake.NewClientset()
	release := make(chan struct{})
	hub.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release // a list that hangs, as over a black-holed connection
		return true, nil, apierrors.NewTimeoutError("hung", 0)
	})
	hub.PrependWatchReactor("secrets", func(k8stesting.Action) (bool, watch.Interface, error) {
		<-release
		return true, nil, apierrors.NewTimeoutError("hung", 0)
	})
	h := newHarness(t, harnessOptions{hub: hub, syncTimeout: 2 * time.Second}, namespaceObj("app", nil), placeholder("hub:certs/wildcard"))
	t.Cleanup(func() { close(release) }) // runs before the harness stops the Remote
	h.waitRemote(t, "not loaded after 2s")
	h.drain(t)
	assert.Empty(t, writes(h.client))
	events := strings.Join(h.events(), "\n")
	assert.Contains(t, events, ReasonClusterUnavailable)
	assert.Contains(t, events, "not loaded after 2s")
}

// failingHub is a hub whose list and watch requests fail with err while
// failing is set.
func failingHub(t *testing.T, err error, objs ...runtime.Object) (*fake.Clientset, *atomic.Bool) {
	t.Helper()
	hub := fake.NewClientset(objs...)
	var failing atomic.Bool
	failing.Store(true)
	hub.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, err
		}
		return false, nil, nil
	})
	hub.PrependWatchReactor("secrets", func(k8stesting.Action) (bool, watch.Interface, error) {
		if failing.Load() {
			return true, nil, err
		}
		return false, nil, nil
	})
	return hub, &failing
}

func TestRemoteIsWatchedAfreshAsSoonAsTheClusterAnswersAgain(t *testing.T) {
	t.Parallel()
	hub, failing := failingHub(t, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused"), hubSource("A", "spoke"))
	h := newHarness(t, harnessOptions{hub: hub, failureGrace: 100 * time.Millisecond, probeAfter: 100 * time.Millisecond},
		namespaceObj("app", nil), placeholder("hub:certs/wildcard"))
	h.waitRemote(t, "connection refused")
	// Long enough for client-go's backoff to reach several seconds.
	time.Sleep(4 * time.Second)
	failing.Store(false)
	answered := time.Now()
	h.waitRemote(t, "")
	assert.Less(t, time.Since(answered), 2*time.Second, "the probe, once a second, finds the cluster back")
	assert.Positive(t, testutil.ToFloat64(h.metrics.remoteReconnects.WithLabelValues("hub", "answered")))
	h.drain(t)
	got, err := h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "A", string(got.Data["tls.crt"]), "filled once the cluster answers")
}

func TestReconnectKeepsTheCacheUntilTheNewWatchHasLoaded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{hub: fake.NewClientset(hubSource("A", "spoke")), failureGrace: 100 * time.Millisecond},
		namespaceObj("app", nil), placeholder("hub:certs/wildcard"))
	h.waitRemote(t, "")
	h.drain(t)

	// New credentials: the cluster behind them answers slowly.
	rotated := fake.NewClientset(hubSource("B", "spoke"))
	release := make(chan struct{})
	released := sync.OnceFunc(func() { close(release) })
	t.Cleanup(released)
	rotated.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	h.remote.Reconnect(rotated)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(h.metrics.remoteReconnects.WithLabelValues("hub", "credentials")) == 1
	}, 5*time.Second, 10*time.Millisecond)
	source, err := h.remote.Get("certs", "wildcard")
	require.NoError(t, err, "the last cache answers while the new watch loads")
	assert.Equal(t, "A", string(source.Data["tls.crt"].Bytes))
	h.ctrl.queue.Add("app/tls")
	h.drain(t)
	assert.Len(t, writes(h.client), 1, "the fill only: nothing is emptied or written again meanwhile")

	released()
	require.Eventually(t, func() bool {
		source, err := h.remote.Get("certs", "wildcard")
		return err == nil && source != nil && string(source.Data["tls.crt"].Bytes) == "B"
	}, 5*time.Second, 10*time.Millisecond, "the new watch's cache once it has loaded")
	h.drain(t)
	got, err := h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "B", string(got.Data["tls.crt"]))
	cluster := h.replicator.clusters[0]
	cluster.report()
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.clusterConnected.WithLabelValues("hub")))
	assert.NoError(t, cluster.check())

	// Credentials the cluster rejects.
	rejecting, _ := failingHub(t, apierrors.NewUnauthorized("Unauthorized"))
	h.remote.Reconnect(rejecting)
	h.waitRemote(t, "rejects the credentials (401 Unauthorized)")
	cluster.report()
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.clusterRejected.WithLabelValues("hub")))
	assert.Equal(t, 0.0, testutil.ToFloat64(h.metrics.clusterConnected.WithLabelValues("hub")))
	assert.ErrorContains(t, cluster.check(), "last connected")
	h.ctrl.queue.Add("app/tls")
	h.drain(t)
	assert.Contains(t, strings.Join(h.events(), "\n"), "rejects the credentials")
	got, err = h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "B", string(got.Data["tls.crt"]), "kept")
}

func TestANewKindOfFailureIsReportedAgain(t *testing.T) {
	t.Parallel()
	hub := fake.NewClientset(hubSource("A", "spoke"))
	var failure atomic.Pointer[error]
	refused := errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	failure.Store(&refused)
	refuse := func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, *failure.Load() }
	hub.PrependReactor("list", "secrets", refuse)
	hub.PrependWatchReactor("secrets", func(a k8stesting.Action) (bool, watch.Interface, error) {
		_, _, err := refuse(a)
		return true, nil, err
	})
	h := newHarness(t, harnessOptions{hub: hub, failureGrace: 100 * time.Millisecond, probeAfter: 100 * time.Millisecond},
		namespaceObj("app", nil), placeholder("hub:certs/wildcard"))
	h.waitRemote(t, "connection refused")
	h.drain(t)
	require.Contains(t, strings.Join(h.events(), "\n"), "connection refused")

	var rejected error = apierrors.NewUnauthorized("Unauthorized")
	failure.Store(&rejected)
	h.waitRemote(t, "rejects the credentials")
	require.Eventually(t, func() bool { return h.ctrl.queue.Len() > 0 }, 5*time.Second, 10*time.Millisecond, "the placeholders are looked at again")
	h.drain(t)
	assert.Contains(t, strings.Join(h.events(), "\n"), "rejects the credentials", "a new Event with the new reason")
}

// waitRemoteSource waits until the hub's watch shows certs/wildcard as done
// wants (nil: deleted).
func (h *harness) waitRemoteSource(t *testing.T, done func(*Object) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		o, err := h.remote.Get("certs", "wildcard")
		return err == nil && done(o)
	}, 5*time.Second, 10*time.Millisecond)
}

func TestANamespaceThatAnswersOnlyAListIsNotListedEverySecond(t *testing.T) {
	t.Parallel()
	// A Role with get and list but no watch: the probe's list works, the
	// informer's watch never does.
	hub := fake.NewClientset(hubSource("A", "spoke"))
	hub.PrependWatchReactor("secrets", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", errors.New("no watch"))
	})
	var lists atomic.Int32
	hub.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return false, nil, nil
	})
	h := newHarness(t, harnessOptions{hub: hub, failureGrace: 100 * time.Millisecond, quickProbes: 1}, namespaceObj("app", nil))
	h.waitRemote(t, "403 Forbidden")
	start := lists.Load()
	time.Sleep(8 * time.Second)
	restarts := testutil.ToFloat64(h.metrics.remoteReconnects.WithLabelValues("hub", "answered"))
	assert.LessOrEqual(t, restarts, 4.0, "watched afresh after 1, then 2 and 4 s, not every second")
	assert.Positive(t, restarts)
	assert.LessOrEqual(t, lists.Load()-start, int32(20), "lists: a probe a second and one per informer started")
}

func TestANamespaceBackByItsOldInformerIsWatchedAfresh(t *testing.T) {
	t.Parallel()
	hub, failing := failingHub(t, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused"), hubSource("A", "spoke"))
	// No probes: the informer's own retries bring it back.
	h := newHarness(t, harnessOptions{hub: hub, failureGrace: 100 * time.Millisecond, probeAfter: time.Hour},
		namespaceObj("app", nil), placeholder("hub:certs/wildcard"))
	h.waitRemote(t, "connection refused")
	failing.Store(false)
	h.waitRemote(t, "")
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(h.metrics.remoteReconnects.WithLabelValues("hub", "recovered")) == 1
	}, 5*time.Second, 20*time.Millisecond, "its informer, whose backoff grew while it failed, is replaced once")
	assert.Zero(t, testutil.ToFloat64(h.metrics.remoteReconnects.WithLabelValues("hub", "answered")))
	h.drain(t)
	got, err := h.client.CoreV1().Secrets("app").Get(h.ctx, "tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "A", string(got.Data["tls.crt"]))
	time.Sleep(2 * time.Second) // a second look finds nothing more to do
	assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.remoteReconnects.WithLabelValues("hub", "recovered")), "once")
}
