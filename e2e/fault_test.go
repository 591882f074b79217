package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubereplicator/replicator/controlplane"
)

// privateCluster starts a control plane of the test's own, for faults that
// would disturb the tests sharing the main one.
func privateCluster(t *testing.T) (*controlplane.ControlPlane, kubernetes.Interface, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: controlplane.BinDirFromEnv(), Dir: filepath.Join(t.TempDir(), "cluster")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cp.Stop() })
	cp.Config.WarningHandler = rest.NoWarnings{}
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = -1, 0
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, cp.WriteKubeconfig(kubeconfig, cp.Config))
	return cp, kubernetes.NewForConfigOrDie(cfg), kubeconfig
}

// fanOut makes n namespaces labelled for a push and a source pushing into
// them; it returns the source's namespace and a function counting correct
// replicas.
func (e *env) fanOut(client kubernetes.Interface, n int, data string) (string, func() (int, error)) {
	e.t.Helper()
	label := fmt.Sprintf("e%d-fan", e.id)
	src := fmt.Sprintf("e%d-fan-src", e.id)
	_, err := client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: src}}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("e%d-fan-%d", e.id, i), Labels: map[string]string{label: "yes"}}}, metav1.CreateOptions{})
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		require.NoError(e.t, <-errs)
	}
	s := secret(src, "shared", corev1.SecretTypeOpaque, map[string]string{"k": data}, map[string]string{e.a.ReplicateToMatching: label + "=yes"})
	s.Labels = map[string]string{label: "replica"}
	_, err = client.CoreV1().Secrets(src).Create(e.ctx, s, metav1.CreateOptions{})
	require.NoError(e.t, err)
	count := func() (int, error) {
		list, err := client.CoreV1().Secrets("").List(e.ctx, metav1.ListOptions{LabelSelector: label + "=replica"})
		if err != nil {
			return 0, err
		}
		c := 0
		for _, r := range list.Items {
			if r.Namespace == src {
				continue
			}
			if r.Annotations[e.a.ReplicatedFrom] != src+"/shared" {
				return 0, fmt.Errorf("%s/%s has no marker", r.Namespace, r.Name)
			}
			if string(r.Data["k"]) == data {
				c++
			}
		}
		return c, nil
	}
	return src, count
}

func (e *env) waitCount(timeout time.Duration, what string, count func() (int, error), done func(int) bool) int {
	e.t.Helper()
	var n int
	e.eventually(timeout, what, func() error {
		c, err := count()
		if err != nil {
			return err
		}
		n = c
		if !done(c) {
			return fmt.Errorf("%d so far", c)
		}
		return nil
	})
	return n
}

// TestAPIServerOutageMidFanOut stops the API server for 15 s in the middle of
// a 500-namespace push: the replicator reports not ready, reconnects by
// itself and finishes, with exactly one correct replica per namespace.
func TestAPIServerOutageMidFanOut(t *testing.T) {
	e := newEnv(t)
	cp, client, kubeconfig := privateCluster(t)
	p := e.startReplicatorWithKubeconfig("replicator", kubeconfig, "--annotation-prefix", e.prefix, "--leader-elect=false", "--kube-api-qps=20", "--kube-api-burst=20")
	const n = 500
	_, count := e.fanOut(client, n, "v1")
	got := e.waitCount(time.Minute, "fan-out under way", count, func(c int) bool { return c >= 50 })
	require.Less(t, got, n, "the fan-out should still be going")

	require.NoError(t, cp.StopAPIServer())
	stopped := time.Now()
	e.waitReadyz(20*time.Second, "not ready while the API server is down", p, http.StatusServiceUnavailable)
	// An outage of 15 s: about time.
	time.Sleep(15*time.Second - time.Since(stopped))
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	require.NoError(t, cp.StartAPIServer(ctx))
	e.waitReadyz(30*time.Second, "ready again", p, http.StatusOK)
	e.waitCount(2*time.Minute, "every replica after the outage", count, func(c int) bool { return c == n })
	select {
	case <-p.Exited():
		t.Fatalf("the replicator exited: %v", p.ExitErr())
	default:
	}
}

// TestKilledMidFanOutAndMidCleanup SIGKILLs the replicator in the middle of a
// push and again in the middle of its cleanup: started again, it finishes
// both from what is in the cluster.
func TestKilledMidFanOutAndMidCleanup(t *testing.T) {
	e := newEnv(t)
	_, client, kubeconfig := privateCluster(t)
	args := []string{"--annotation-prefix", e.prefix, "--leader-elect=false", "--kube-api-qps=20", "--kube-api-burst=20"}
	p := e.startReplicatorWithKubeconfig("first", kubeconfig, args...)
	const n = 300
	src, count := e.fanOut(client, n, "v1")
	got := e.waitCount(time.Minute, "fan-out under way", count, func(c int) bool { return c >= 30 })
	require.NoError(t, p.Signal(syscall.SIGKILL))
	<-p.Exited()
	got2, err := count()
	require.NoError(t, err)
	require.Less(t, got2, n, "killed mid-way")
	t.Logf("killed after %d (then %d) of %d replicas", got, got2, n)

	p = e.startReplicatorWithKubeconfig("second", kubeconfig, args...)
	e.waitCount(time.Minute, "every replica after the restart", count, func(c int) bool { return c == n })

	// Stop pushing, and kill it again half-way through the cleanup.
	s, err := client.CoreV1().Secrets(src).Get(e.ctx, "shared", metav1.GetOptions{})
	require.NoError(t, err)
	delete(s.Annotations, e.a.ReplicateToMatching)
	_, err = client.CoreV1().Secrets(src).Update(e.ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.waitCount(time.Minute, "cleanup under way", count, func(c int) bool { return c <= n-30 })
	require.NoError(t, p.Signal(syscall.SIGKILL))
	<-p.Exited()
	left, err := count()
	require.NoError(t, err)
	require.Greater(t, left, 0, "killed mid-way")
	t.Logf("killed with %d replicas left", left)

	e.startReplicatorWithKubeconfig("third", kubeconfig, args...)
	e.waitCount(time.Minute, "no replica left after the restart", count, func(c int) bool { return c == 0 })
	_, err = client.CoreV1().Secrets(src).Get(e.ctx, "shared", metav1.GetOptions{})
	assert.NoError(t, err, "the source stays")
}

// etcdCall posts a request to etcd's JSON gateway and decodes the answer.
func etcdCall(t *testing.T, cp *controlplane.ControlPlane, path string, body any) map[string]any {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post(cp.EtcdURL()+path, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %v", path, out)
	return out
}

// TestEtcdRestartAndExpiredWatches restarts etcd under a running replicator,
// then restarts the API server with etcd compacted past what the
// replicator's watches saw, so that they expire (410 Gone) and relist. The
// replicas that were right are not written again, and changes still flow.
func TestEtcdRestartAndExpiredWatches(t *testing.T) {
	e := newEnv(t)
	cp, client, kubeconfig := privateCluster(t)
	p := e.startReplicatorWithKubeconfig("replicator", kubeconfig, "--annotation-prefix", e.prefix, "--leader-elect=false")
	const n = 50
	src, count := e.fanOut(client, n, "v1")
	e.waitCount(time.Minute, "fan-out", count, func(c int) bool { return c == n })
	writes := func() float64 {
		v, _ := p.metric("replicator_writes_total", map[string]string{"kind": "Secret"})
		return v
	}
	// A replica can be seen before its writer has counted it.
	e.eventually(wait, "the fan-out's writes counted", func() error {
		if w := writes(); w != n {
			return fmt.Errorf("%v writes", w)
		}
		return nil
	})
	before := writes()

	require.NoError(t, cp.StopEtcd())
	time.Sleep(5 * time.Second) // an outage of 5 s: about time
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	require.NoError(t, cp.StartEtcd(ctx))
	e.waitReadyz(30*time.Second, "ready after the etcd restart", p, http.StatusOK)

	// Expire the watches: with the API server down, move etcd on and
	// compact its history, so that resuming from the last seen version is
	// refused.
	list, err := client.CoreV1().Secrets("").List(e.ctx, metav1.ListOptions{})
	require.NoError(t, err)
	seen := list.ResourceVersion
	require.NoError(t, cp.StopAPIServer())
	for i := 0; i < 3; i++ {
		etcdCall(t, cp, "/v3/kv/put", map[string]string{"key": base64.StdEncoding.EncodeToString([]byte("/e2e/bump")), "value": base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i)))})
	}
	rev := etcdCall(t, cp, "/v3/kv/range", map[string]string{"key": base64.StdEncoding.EncodeToString([]byte("/e2e/bump"))})["header"].(map[string]any)["revision"]
	etcdCall(t, cp, "/v3/kv/compaction", map[string]any{"revision": rev, "physical": true})
	require.NoError(t, cp.StartAPIServer(ctx))
	e.waitReadyz(30*time.Second, "ready after the API server restart", p, http.StatusOK)
	// Any watch resuming from before the compaction is refused: the
	// replicator's watches, which last saw at most seen, had to relist.
	w, err := client.CoreV1().Secrets("").Watch(e.ctx, metav1.ListOptions{ResourceVersion: seen})
	if err == nil {
		select {
		case ev := <-w.ResultChan():
			w.Stop()
			require.Equal(t, watch.Error, ev.Type, "a watch from before the compaction")
			err = apierrors.FromObject(ev.Object)
		case <-time.After(10 * time.Second):
			w.Stop()
			t.Fatal("a watch from before the compaction was not refused")
		}
	}
	require.True(t, apierrors.IsResourceExpired(err) || apierrors.IsGone(err), "want 410 Gone, got %v", err)
	// The marker is seen through the watches started after the relists:
	// once the replicator reconciled it and settled, it has answered all
	// they brought.
	e.caughtUpIn(client, p)
	assert.Equal(t, before, writes(), "replicas that were right are not written again")

	// Changes still reach every replica.
	s, err := client.CoreV1().Secrets(src).Get(e.ctx, "shared", metav1.GetOptions{})
	require.NoError(t, err)
	s.Data["k"] = []byte("v2")
	_, err = client.CoreV1().Secrets(src).Update(e.ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	count2 := func() (int, error) {
		list, err := client.CoreV1().Secrets("").List(e.ctx, metav1.ListOptions{LabelSelector: fmt.Sprintf("e%d-fan=replica", e.id)})
		if err != nil {
			return 0, err
		}
		c := 0
		for _, r := range list.Items {
			if r.Namespace != src && string(r.Data["k"]) == "v2" {
				c++
			}
		}
		return c, nil
	}
	e.waitCount(time.Minute, "the update after the faults", count2, func(c int) bool { return c == n })
	// As above: the last replicas can be seen before their writes are
	// counted.
	e.eventually(wait, "the update's writes counted", func() error {
		if w := writes(); w < before+n {
			return fmt.Errorf("%v writes", w-before)
		}
		return nil
	})
	assert.Equal(t, before+n, writes(), "one write per replica for the update")
}

// TestLeaderFailoverMidFanOut kills the leader in the middle of a fan-out: the
// standby takes over once the Lease expires and writes exactly the replicas
// that were still missing.
func TestLeaderFailoverMidFanOut(t *testing.T) {
	e := newEnv(t)
	_, client, kubeconfig := privateCluster(t)
	args := []string{"--annotation-prefix", e.prefix, "--kube-api-qps=20", "--kube-api-burst=20", "--leader-elect-namespace=default",
		"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms"}
	a := e.startReplicatorWithKubeconfig("a", kubeconfig, args...)
	e.waitLeading(30*time.Second, "a leads", a)
	b := e.startReplicatorWithKubeconfig("b", kubeconfig, args...)
	const n = 300
	_, count := e.fanOut(client, n, "v1")
	e.waitCount(time.Minute, "fan-out under way", count, func(c int) bool { return c >= 40 })
	require.NoError(t, a.Signal(syscall.SIGKILL))
	<-a.Exited()
	// Until b holds the expired Lease nobody writes: what exists once a's
	// last requests have landed is what a wrote. A killed process says
	// nothing of the requests it had in flight: they land within a moment,
	// well within the Lease's 4 s. About time.
	time.Sleep(500 * time.Millisecond)
	present, err := count()
	require.NoError(t, err)
	require.False(t, b.leading(), "b cannot lead before the Lease expires")
	require.Less(t, present, n, "killed mid-way")
	e.waitLeading(30*time.Second, "b takes over", b)
	e.waitCount(time.Minute, "every replica", count, func(c int) bool { return c == n })
	// Every write of b's counted.
	e.caughtUpIn(client, b)
	t.Logf("a wrote %d replicas before it was killed; b wrote %v", present, b.writes())
	assert.Equal(t, float64(n-present), b.writes(), "b wrote only the missing replicas: none was written by both")
}

// TestKilledMidRevocation SIGKILLs the replicator while it empties 200 pull
// targets after the source withdrew its permission: started again, it
// empties the rest; no target keeps the data.
func TestKilledMidRevocation(t *testing.T) {
	e := newEnv(t)
	_, client, kubeconfig := privateCluster(t)
	args := []string{"--annotation-prefix", e.prefix, "--leader-elect=false", "--kube-api-qps=20", "--kube-api-burst=20"}
	const n = 200
	_, err := client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "src"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.CoreV1().Secrets("src").Create(e.ctx, secret("src", "shared", corev1.SecretTypeTLS, tlsV1,
		map[string]string{e.a.ReplicationAllowed: "true", e.a.ReplicationAllowedNS: "app-.*"}), metav1.CreateOptions{})
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("app-%d", i)
		_, err := client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = client.CoreV1().Secrets(ns).Create(e.ctx, e.tlsPlaceholder(ns, "tls", "src/shared"), metav1.CreateOptions{})
		require.NoError(t, err)
	}
	holding := func(want map[string]string) func() (int, error) {
		return func() (int, error) {
			list, err := client.CoreV1().Secrets("").List(e.ctx, metav1.ListOptions{})
			if err != nil {
				return 0, err
			}
			c := 0
			for _, s := range list.Items {
				if s.Name == "tls" && sameData(s.Data, want) {
					c++
				}
			}
			return c, nil
		}
	}
	p := e.startReplicatorWithKubeconfig("first", kubeconfig, args...)
	e.waitCount(time.Minute, "every target filled", holding(tlsV1), func(c int) bool { return c == n })

	s, err := client.CoreV1().Secrets("src").Get(e.ctx, "shared", metav1.GetOptions{})
	require.NoError(t, err)
	s.Annotations[e.a.ReplicationAllowed] = "false"
	_, err = client.CoreV1().Secrets("src").Update(e.ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.waitCount(time.Minute, "revocation under way", holding(tlsEmpty), func(c int) bool { return c >= 20 })
	require.NoError(t, p.Signal(syscall.SIGKILL))
	<-p.Exited()
	left, err := holding(tlsV1)()
	require.NoError(t, err)
	require.Greater(t, left, 0, "killed mid-way")
	t.Logf("killed with %d of %d targets still holding the data", left, n)

	e.startReplicatorWithKubeconfig("second", kubeconfig, args...)
	e.waitCount(time.Minute, "every target emptied", holding(tlsEmpty), func(c int) bool { return c == n })
	still, err := holding(tlsV1)()
	require.NoError(t, err)
	assert.Zero(t, still)
}
