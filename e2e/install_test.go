package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// This file installs the chart and runs the binary the way its Deployment
// would.

const chartDir = "../chart"

// helm runs the helm binary built by tools/build.sh.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "helm"), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func needTools(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	t.Parallel()
}

// access asks the API server what identity cfg may do.
func access(t *testing.T, e *env, cfg *rest.Config, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	client := kubernetes.NewForConfigOrDie(cfg)
	r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(e.ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return r.Status.Allowed
}

// adminKubeconfig writes a kubeconfig of the test cluster's admin and
// returns its path.
func (e *env) adminKubeconfig() string {
	e.t.Helper()
	return e.kubeconfig(cluster.Config)
}

// kubeconfig writes a kubeconfig of cfg (the test cluster's) and returns its
// path.
func (e *env) kubeconfig(cfg *rest.Config) string {
	e.t.Helper()
	return writeKubeconfig(e.t, cfg)
}

// writeKubeconfig writes a kubeconfig of cfg (the test cluster's) into a
// directory of t's and returns its path.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, cluster.WriteKubeconfig(path, cfg))
	return path
}

// install helm-installs the chart into its own namespace and returns the
// namespace and a config authenticated as the chart's ServiceAccount.
func (e *env) install(release string, set ...string) (string, *rest.Config) {
	e.t.Helper()
	ns := e.ns(release, nil)
	args := []string{"install", release, chartDir, "--namespace", ns, "--kubeconfig", e.adminKubeconfig(), "--set", "annotationPrefix=" + e.prefix}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(e.t, args...)
	require.NoError(e.t, err, out)
	cfg, err := cluster.ServiceAccountConfig(e.ctx, ns, release+"-replicator")
	require.NoError(e.t, err)
	return ns, cfg
}

// kindResources are the resources of the replicated kinds, with the chart
// value that switches each.
var kindResources = []struct{ value, group, resource string }{
	{"secrets", "", "secrets"},
	{"configMaps", "", "configmaps"},
	{"roles", "rbac.authorization.k8s.io", "roles"},
	{"roleBindings", "rbac.authorization.k8s.io", "rolebindings"},
	{"serviceAccounts", "", "serviceaccounts"},
}

// deploymentArgs returns the arguments the chart's Deployment gives the
// replicator, without --status-addr (a test picks a free port).
func (e *env) deploymentArgs(namespace, release string) []string {
	e.t.Helper()
	deployment, err := admin.AppsV1().Deployments(namespace).Get(e.ctx, release+"-replicator", metav1.GetOptions{})
	require.NoError(e.t, err)
	var args []string
	for _, a := range deployment.Spec.Template.Spec.Containers[0].Args {
		if !strings.HasPrefix(a, "--status-addr=") {
			args = append(args, a)
		}
	}
	return args
}

// chartReplicator runs the binary as the chart's Deployment would: its
// arguments (and extra ones), as its ServiceAccount (the kubeconfig sa),
// with its RBAC. The leader Lease lives in the release's namespace, and the
// release's namespace is the replicator's own, as POD_NAMESPACE says in a
// pod.
func (e *env) chartReplicator(namespace, release, sa string, extra ...string) *proc {
	e.t.Helper()
	return e.chartReplicatorRunning(binary, namespace, release, sa, extra...)
}

// chartReplicatorRunning is chartReplicator with another build of the binary.
func (e *env) chartReplicatorRunning(bin, namespace, release, sa string, extra ...string) *proc {
	e.t.Helper()
	args := append(e.deploymentArgs(namespace, release), "--leader-elect-namespace="+namespace, "--namespace="+namespace)
	return e.startBinary("chart", bin, sa, append(args, extra...)...)
}

// installAndRun installs the chart with set and runs it; it returns the
// release's namespace, the ServiceAccount's kubeconfig and the process.
func (e *env) installAndRun(release string, set ...string) (string, string, *proc) {
	e.t.Helper()
	ns, cfg := e.install(release, set...)
	sa := e.kubeconfig(cfg)
	return ns, sa, e.chartReplicator(ns, release, sa)
}
