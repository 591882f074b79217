package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubereplicator/replicator/controlplane"
	"github.com/kubereplicator/replicator/internal/testsupport"
)

// hub is a second cluster, the source side of cross-cluster pull: the
// namespace certs, a ServiceAccount that may read only the Secrets there
// (the Role the README documents), and one that may read nothing.
type hub struct {
	e      *env
	cp     *controlplane.ControlPlane
	client kubernetes.Interface
	// reader and stranger are kubeconfigs of the two ServiceAccounts.
	reader, stranger string
}

func (e *env) startHub() *hub {
	e.t.Helper()
	cp, client, _ := privateCluster(e.t)
	h := &hub{e: e, cp: cp, client: client}
	for _, ns := range []string{"certs", "private", "spokes"} {
		_, err := client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(e.t, err)
	}
	for _, sa := range []string{"spoke-reader", "stranger"} {
		_, err := client.CoreV1().ServiceAccounts("spokes").Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		require.NoError(e.t, err)
	}
	_, err := client.RbacV1().Roles("certs").Create(e.ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "replicator-source"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	_, err = client.RbacV1().RoleBindings("certs").Create(e.ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "replicator-source"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "replicator-source"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "spokes", Name: "spoke-reader"}},
	}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	kubeconfig := func(sa string) string {
		cfg, err := cp.ServiceAccountConfig(e.ctx, "spokes", sa)
		require.NoError(e.t, err)
		path := filepath.Join(e.t.TempDir(), sa+".kubeconfig")
		require.NoError(e.t, cp.WriteKubeconfig(path, cfg))
		return path
	}
	h.reader, h.stranger = kubeconfig("spoke-reader"), kubeconfig("stranger")
	return h
}

func (h *hub) create(s *corev1.Secret) {
	h.e.t.Helper()
	h.e.createIn(h.client, s)
}

func (h *hub) modify(namespace, name string, change func(*corev1.Secret)) {
	h.e.t.Helper()
	h.e.modifyIn(h.client, namespace, name, change)
}

// source is a TLS Secret for the hub allowing namespaces and clusters.
func (h *hub) source(name, namespaces, clusters, crt string) *corev1.Secret {
	a := h.e.allow(namespaces)
	if clusters != "" {
		a[h.e.a.ReplicationAllowedClusters] = clusters
	}
	return secret("certs", name, corev1.SecretTypeTLS, map[string]string{"tls.crt": crt, "tls.key": "key of " + crt}, a)
}

// spoke runs the replicator binary against the shared cluster as spoke-1,
// pulling from the hub with the reader's credentials.
func (e *env) spoke(h *hub, args ...string) *proc {
	e.t.Helper()
	return e.startReplicator("spoke", append([]string{"--annotation-prefix", e.prefix, "--leader-elect=false", "--cluster-name", "spoke-1",
		"--source-cluster", "hub=" + h.reader, "--source-cluster-namespaces", "hub=certs"}, args...)...)
}

// TestCrossClusterPull fills placeholders in one cluster from Secrets in
// another, follows renewals by watch, refuses every case the source has not
// opted into, and empties the placeholder when the hub revokes or deletes.
func TestCrossClusterPull(t *testing.T) {
	e := newEnv(t)
	h := e.startHub()
	app := e.ns("app", nil)
	h.create(h.source("wildcard", "e[0-9]+-app", "spoke-.*", "hub-cert-v1"))
	h.create(h.source("no-opt-in", "e[0-9]+-app", "", "hub-no-opt-in"))
	h.create(h.source("other-cluster", "e[0-9]+-app", "spoke-2", "hub-other-cluster"))
	h.create(h.source("other-namespace", "team-.*", "spoke-.*", "hub-other-ns"))
	h.create(h.source("hidden", ".*", ".*", "hub-private"))
	// "locked" is the same hub with credentials that may read nothing.
	p := e.spoke(h, "--source-cluster", "locked="+h.stranger, "--source-cluster-namespaces", "locked=certs")

	placeholders := map[string]string{
		"tls":             "hub:certs/wildcard",
		"no-opt-in":       "hub:certs/no-opt-in",
		"other-cluster":   "hub:certs/other-cluster",
		"other-namespace": "hub:certs/other-namespace",
		"not-watched":     "hub:private/hidden",
		"unknown":         "elsewhere:certs/wildcard",
		"no-access":       "locked:certs/wildcard",
	}
	for name, from := range placeholders {
		e.create(e.tlsPlaceholder(app, name, from))
	}

	e.waitData(app, "tls", map[string]string{"tls.crt": "hub-cert-v1", "tls.key": "key of hub-cert-v1"})
	assert.Contains(t, e.waitEvent(app, "tls", "Replicated"), "hub:certs/wildcard")

	renewed := time.Now()
	h.modify("certs", "wildcard", func(s *corev1.Secret) {
		s.Data = map[string][]byte{"tls.crt": []byte("hub-cert-v2"), "tls.key": []byte("key of hub-cert-v2")}
	})
	secretValues.Store("hub-cert-v2", true)
	secretValues.Store("key of hub-cert-v2", true)
	e.waitData(app, "tls", map[string]string{"tls.crt": "hub-cert-v2", "tls.key": "key of hub-cert-v2"})
	t.Logf("a renewal in the hub reached the spoke's placeholder in %s", time.Since(renewed).Round(time.Millisecond))

	refused := map[string]struct{ reason, detail string }{
		"no-opt-in":       {"ReplicationDenied", "not served to other clusters"},
		"other-cluster":   {"ReplicationDenied", "does not allow cluster spoke-1"},
		"other-namespace": {"ReplicationDenied", "does not allow namespace " + app},
		"not-watched":     {"InvalidAnnotation", "namespace private of cluster hub is not watched"},
		"unknown":         {"InvalidAnnotation", `cluster "elsewhere" is not configured`},
		"no-access":       {"SourceClusterUnavailable", "forbidden"},
	}
	for name, want := range refused {
		assert.Contains(t, e.waitEvent(app, name, want.reason), want.detail, name)
	}
	e.caughtUp(p)
	for name := range refused {
		assert.Equal(t, map[string]int{"tls.crt": 0, "tls.key": 0}, keysOf(e.mustGet(app, name).Data), "%s stays empty", name)
	}

	code, body, err := testsupport.HTTPGet("http://" + p.Addr() + "/readyz/clusters")
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "[+] hub ok")
	assert.Contains(t, body, "[-] locked: namespace certs:")
	code, _, err = testsupport.HTTPGet("http://" + p.Addr() + "/readyz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "a source cluster that cannot be read does not make the replicator unready")
	up, err := p.metric("replicator_source_cluster_up", map[string]string{"cluster": "hub", "namespace": "certs"})
	require.NoError(t, err)
	assert.Equal(t, 1.0, up)
	up, err = p.metric("replicator_source_cluster_up", map[string]string{"cluster": "locked", "namespace": "certs"})
	require.NoError(t, err)
	assert.Equal(t, 0.0, up)

	// Revocation in the hub revokes the data here; granting again refills.
	h.modify("certs", "wildcard", func(s *corev1.Secret) { delete(s.Annotations, e.a.ReplicationAllowedClusters) })
	e.waitData(app, "tls", map[string]string{"tls.crt": "", "tls.key": ""})
	h.modify("certs", "wildcard", func(s *corev1.Secret) { s.Annotations[e.a.ReplicationAllowedClusters] = "spoke-1" })
	e.waitData(app, "tls", map[string]string{"tls.crt": "hub-cert-v2", "tls.key": "key of hub-cert-v2"})
	require.NoError(t, h.client.CoreV1().Secrets("certs").Delete(e.ctx, "wildcard", metav1.DeleteOptions{}))
	e.waitData(app, "tls", map[string]string{"tls.crt": "", "tls.key": ""})
	assert.Contains(t, e.waitEvent(app, "tls", "SourceNotFound"), "hub:certs/wildcard")
}

// TestChartPullsThroughTheMountedKubeconfig installs the chart with a source
// cluster, then does what the kubelet would: mounts the kubeconfig Secret
// where the pod spec says and runs the binary with the pod's arguments as the
// chart's ServiceAccount. The placeholder fills from the hub.
func TestChartPullsThroughTheMountedKubeconfig(t *testing.T) {
	e := newEnv(t)
	h := e.startHub()
	release := fmt.Sprintf("e%d", e.id)
	ns, sa := e.install(release, "clusterName=spoke-1", "sourceClusters[0].name=hub",
		"sourceClusters[0].kubeconfigSecret=hub-kubeconfig", "sourceClusters[0].namespaces[0]=certs")
	kubeconfig, err := os.ReadFile(h.reader)
	require.NoError(t, err)
	_, err = admin.CoreV1().Secrets(ns).Create(e.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "hub-kubeconfig"}, Data: map[string][]byte{"kubeconfig": kubeconfig},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	deployment, err := admin.AppsV1().Deployments(ns).Get(e.ctx, release+"-replicator", metav1.GetOptions{})
	require.NoError(t, err)
	pod := deployment.Spec.Template.Spec
	// Where the kubelet would mount each Secret volume.
	root := t.TempDir()
	var mounts []string
	for _, m := range pod.Containers[0].VolumeMounts {
		assert.True(t, m.ReadOnly, "%s is mounted read-only", m.Name)
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		require.GreaterOrEqual(t, i, 0, "volume %s", m.Name)
		source := pod.Volumes[i].Secret
		require.NotNil(t, source, "volume %s is a Secret", m.Name)
		s, err := admin.CoreV1().Secrets(ns).Get(e.ctx, source.SecretName, metav1.GetOptions{})
		require.NoError(t, err)
		for _, item := range source.Items {
			path := filepath.Join(root, m.MountPath, item.Path)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
			require.NoError(t, os.WriteFile(path, s.Data[item.Key], 0o600))
		}
		mounts = append(mounts, m.MountPath)
	}
	require.Len(t, mounts, 1)
	var args []string
	for _, a := range e.deploymentArgs(ns, release) {
		args = append(args, strings.ReplaceAll(a, mounts[0], filepath.Join(root, mounts[0])))
	}
	assert.Contains(t, args, "--cluster-name=spoke-1")
	assert.Contains(t, args, "--source-cluster-namespaces=hub=certs")
	e.startReplicatorWithKubeconfig("chart", e.kubeconfig(sa), append(args, "--leader-elect-namespace", ns)...)

	app := e.ns("app", nil)
	h.create(h.source("wildcard", app, "spoke-1", "chart-hub-cert"))
	e.create(e.tlsPlaceholder(app, "tls", "hub:certs/wildcard"))
	e.waitData(app, "tls", map[string]string{"tls.crt": "chart-hub-cert", "tls.key": "key of chart-hub-cert"})
}

func TestChartSourceClustersNeedAClusterName(t *testing.T) {
	needTools(t)
	base := []string{"template", "r", chartDir, "--set", "sourceClusters[0].name=hub", "--set", "sourceClusters[0].kubeconfigSecret=hub", "--set", "sourceClusters[0].namespaces[0]=certs"}
	out, err := helm(t, base...)
	assert.Error(t, err)
	assert.Contains(t, out, "clusterName is required with sourceClusters")
	for _, set := range []string{"clusterName=Spoke_1", "sourceClusters[0].name=Hub", "sourceClusters[0].namespaces=null", "sourceClusters[0].kubeconfig=x"} {
		out, err := helm(t, append(base, "--set", "clusterName=spoke", "--set", set)...)
		assert.Error(t, err, "--set %s was accepted", set)
		assert.Contains(t, out, "values don't meet the specifications of the schema", "--set %s", set)
	}
	out, err = helm(t, append(base, "--set", "clusterName=spoke")...)
	require.NoError(t, err, out)
}
