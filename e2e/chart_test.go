package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestChartLint(t *testing.T) {
	needTools(t)
	for _, values := range [][]string{
		nil,
		// Every optional part on, with values of its own.
		{"--values", "testdata/values-custom.yaml"},
		// The optional parts on with their default values.
		{"--set", "networkPolicy.enabled=true", "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true"},
	} {
		out, err := helm(t, append([]string{"lint", "--strict", chartDir}, values...)...)
		require.NoError(t, err, out)
	}
}

// TestChartTemplateGolden renders the chart with default and non-default
// values and compares with testdata; UPDATE_GOLDEN=1 rewrites the files.
func TestChartTemplateGolden(t *testing.T) {
	needTools(t)
	for golden, values := range map[string][]string{
		"testdata/chart-default.golden.yaml": nil,
		"testdata/chart-custom.golden.yaml":  {"--values", "testdata/values-custom.yaml"},
	} {
		out, err := helm(t, append([]string{"template", "replicator", chartDir, "--namespace", "replicator"}, values...)...)
		require.NoError(t, err, out)
		if os.Getenv("UPDATE_GOLDEN") == "1" {
			require.NoError(t, os.WriteFile(golden, []byte(out), 0o644))
		}
		want, err := os.ReadFile(golden)
		require.NoError(t, err)
		assert.Equal(t, string(want), out, "%s is stale: run make manifests", golden)
	}
}

func TestDeployManifestsMatchTheChart(t *testing.T) {
	needTools(t)
	out, err := helm(t, "template", "replicator", chartDir, "--namespace", "replicator")
	require.NoError(t, err, out)
	want, err := os.ReadFile("../deploy/replicator.yaml")
	require.NoError(t, err)
	assert.Equal(t, out, string(want), "deploy/replicator.yaml drifted from the chart: run make manifests")
}

func TestChartRejectsWrongValues(t *testing.T) {
	needTools(t)
	for _, set := range []string{
		"workers=0",
		"logFormat=xml",
		"kinds.configmap=true",
		"replicaCount=-1",
		"resyncPeriod=soon",
		"kubeApiQps=0",
		"allowAll=maybe",
		"dialects=emberstack",
		"typo=1",
		"global=1",
		"livenessProbe.periodSeconds=0",
		"readinessProbe.failureThreshold=often",
		"livenessProbe.successThreshold=1",
		"networkPolicy.enabled=yes",
		"networkPolicy.apiServerPorts=443",
		"networkPolicy.apiServerPorts=null",
		"networkPolicy.apiServerPorts={0}",
		"networkPolicy.apiServerCIDRs={10.0.0.1}",
		"networkPolicy.metricsFrom[0].podSelectors.app=prometheus",
		"networkPolicy.typo=1",
		"prometheusRule.enabled=1",
		"prometheusRule.labels.release=null",
		"prometheusRule.noLeaderFor=5min",
		"prometheusRule.queueDepth=many",
		"prometheusRule.queueLatencySeconds=60",
		"prometheusRule.restartsPerHour=-1",
		"prometheusRule.typo=1",
		"grafanaDashboard.enabled=no",
		"grafanaDashboard.labels.grafana_dashboard=1",
		"grafanaDashboard.namespace=Monitoring",
		"extraObjects=object",
		"extraObjects[0]=1",
	} {
		out, err := helm(t, "template", "r", chartDir, "--set", set)
		assert.Error(t, err, "--set %s was accepted", set)
		assert.Contains(t, out, "values don't meet the specifications of the schema", "--set %s", set)
	}
}

// TestChartWorksAsASubchart renders a parent chart holding this one: Helm
// hands a subchart the parent's global values, which the schema accepts.
func TestChartWorksAsASubchart(t *testing.T) {
	needTools(t)
	parent := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(parent, "Chart.yaml"), []byte("apiVersion: v2\nname: platform\nversion: 1.0.0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "values.yaml"), []byte("global:\n  imageRegistry: registry.example.com\n"+
		"replicator:\n  replicaCount: 1\n  prometheusRule: {enabled: true}\n"), 0o644))
	require.NoError(t, os.CopyFS(filepath.Join(parent, "charts", "replicator"), os.DirFS(chartDir)))
	out, err := helm(t, "template", "platform", parent, "--namespace", "platform", "--set", "global.team=platform")
	require.NoError(t, err, out)
	assert.Contains(t, out, "name: platform-replicator")
	assert.Contains(t, out, "kind: PrometheusRule")
	assert.Contains(t, out, "replicas: 1")
}

// TestChartPassesEveryDialect renders the chart with all three dialects and
// runs the binary's flag parsing on the Deployment's own arguments.
func TestChartPassesEveryDialect(t *testing.T) {
	needTools(t)
	out, err := helm(t, "template", "r", chartDir, "--show-only", "templates/deployment.yaml", "--set", `dialects=replicator\,reflector\,kubed`)
	require.NoError(t, err, out)
	assert.Contains(t, out, "- --dialects=replicator,reflector,kubed")
	cmd := exec.Command(binary, "--dialects=replicator,reflector,kubed", "--version")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
}

func TestChartRendersHardenedPod(t *testing.T) {
	needTools(t)
	out, err := helm(t, "template", "r", chartDir, "--show-only", "templates/deployment.yaml")
	require.NoError(t, err, out)
	for _, want := range []string{
		"runAsNonRoot: true", "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false",
		"- ALL", "type: RuntimeDefault", "path: /healthz", "path: /readyz", "replicas: 2",
	} {
		assert.Contains(t, out, want)
	}
	out, err = helm(t, "template", "r", chartDir, "--show-only", "templates/rbac.yaml")
	require.NoError(t, err, out)
	assert.NotContains(t, out, `"*"`, "no wildcard permissions")
}

func TestChartInstallGrantsExactlyWhatTheReplicatorNeeds(t *testing.T) {
	e := newEnv(t)
	release := fmt.Sprintf("e%d", e.id)
	ns, sa := e.install(release)

	// Run the binary out of cluster as the chart's ServiceAccount, with the
	// arguments the chart gives the pod.
	kubeconfig := filepath.Join(t.TempDir(), "sa")
	require.NoError(t, cluster.WriteKubeconfig(kubeconfig, sa))
	p := e.startReplicatorWithKubeconfig("chart", kubeconfig,
		"--annotation-prefix", e.prefix, "--leader-elect-lease-name", release+"-replicator", "--leader-elect-namespace", ns)

	src, app, push := e.ns("src", nil), e.ns("app", nil), e.ns("push", nil)
	source := e.allow(app)
	source[e.a.ReplicateTo] = push
	e.create(secret(src, "wildcard", corev1.SecretTypeTLS, tlsV1, source))
	e.create(e.tlsPlaceholder(app, "wildcard", src+"/wildcard"))
	e.waitData(app, "wildcard", tlsV1)
	e.waitData(push, "wildcard", tlsV1)
	e.waitEvent(app, "wildcard", "Replicated")
	e.delete(src, "wildcard")
	e.waitGone(push, "wildcard")
	e.waitData(app, "wildcard", tlsEmpty)
	assert.True(t, p.leading(), "the chart's Role lets it hold the Lease")
	assert.NotContains(t, strings.ToLower(p.logs.String()), "forbidden")

	may := func(verb, group, resource, namespace string) bool {
		return access(t, e, sa, authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: namespace})
	}
	for _, r := range kindResources {
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			assert.True(t, may(verb, r.group, r.resource, app), "%s %s", r.resource, verb)
		}
	}
	assert.True(t, may("list", "", "namespaces", ""))
	assert.True(t, may("create", "", "events", app))
	lease := func(verb, name string) bool {
		return access(t, e, sa, authorizationv1.ResourceAttributes{Verb: verb, Group: "coordination.k8s.io", Resource: "leases", Namespace: ns, Name: name})
	}
	assert.True(t, lease("update", release+"-replicator"), "its own Lease")
	assert.False(t, lease("update", "someone-elses-lease"), "only its own Lease")
	for _, denied := range []struct{ verb, group, resource, namespace string }{
		{"create", "", "pods", app},
		{"create", "apps", "deployments", app},
		{"create", "rbac.authorization.k8s.io", "clusterroles", ""},
		{"escalate", "rbac.authorization.k8s.io", "roles", app},
		{"bind", "rbac.authorization.k8s.io", "clusterroles", ""},
		{"create", "", "serviceaccounts/token", app},
		{"update", "coordination.k8s.io", "leases", app},
		{"delete", "", "namespaces", ""},
	} {
		assert.False(t, may(denied.verb, denied.group, denied.resource, denied.namespace), "%+v", denied)
	}
}

func TestChartWithAKindOffGrantsNothingForIt(t *testing.T) {
	for _, off := range kindResources {
		t.Run(off.value, func(t *testing.T) {
			e := newEnv(t)
			_, sa := e.install(fmt.Sprintf("e%d", e.id), "kinds."+off.value+"=false", "leaderElection.enabled=false")
			app := e.ns("app", nil)
			for _, r := range kindResources {
				for _, verb := range []string{"get", "watch", "create"} {
					assert.Equal(t, r != off, access(t, e, sa, authorizationv1.ResourceAttributes{Verb: verb, Group: r.group, Resource: r.resource, Namespace: app}), "%s %s", verb, r.resource)
				}
			}
			assert.False(t, access(t, e, sa, authorizationv1.ResourceAttributes{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: app}))
			assert.True(t, access(t, e, sa, authorizationv1.ResourceAttributes{Verb: "watch", Resource: "namespaces"}))

			// The binary with that kind off and only these permissions
			// gets ready: it does not watch the kind (a watch would be
			// refused and its cache would never sync).
			kubeconfig := filepath.Join(t.TempDir(), "sa")
			require.NoError(t, cluster.WriteKubeconfig(kubeconfig, sa))
			flag := map[string]string{"secrets": "--replicate-secrets", "configMaps": "--replicate-configmaps", "roles": "--replicate-roles",
				"roleBindings": "--replicate-role-bindings", "serviceAccounts": "--replicate-service-accounts"}[off.value]
			p := e.startReplicatorWithKubeconfig("chart", kubeconfig, "--annotation-prefix", e.prefix, "--leader-elect=false", flag+"=false")
			time.Sleep(time.Second)
			assert.NotContains(t, strings.ToLower(p.logs.String()), "forbidden")
		})
	}
	t.Run("everything", func(t *testing.T) {
		e := newEnv(t)
		var set []string
		for _, r := range kindResources {
			set = append(set, "kinds."+r.value+"=false")
		}
		_, sa := e.install(fmt.Sprintf("e%d", e.id), set...)
		for _, r := range kindResources {
			assert.False(t, access(t, e, sa, authorizationv1.ResourceAttributes{Verb: "list", Group: r.group, Resource: r.resource}), r.resource)
		}
	})
}

// TestChartRBACEscalation runs the binary with the chart's permissions: a Role
// granting more than the replicator holds is refused by the API server and
// reported as an Event, the process stays up and keeps replicating, and with
// rbac.escalate=true the same Role is replicated.
func TestChartRBACEscalation(t *testing.T) {
	for _, escalate := range []bool{false, true} {
		t.Run(fmt.Sprintf("escalate=%v", escalate), func(t *testing.T) {
			e := newEnv(t)
			release := fmt.Sprintf("e%d", e.id)
			_, sa := e.install(release, fmt.Sprintf("rbac.escalate=%v", escalate), "leaderElection.enabled=false")
			kubeconfig := filepath.Join(t.TempDir(), "sa")
			require.NoError(t, cluster.WriteKubeconfig(kubeconfig, sa))
			p := e.startReplicatorWithKubeconfig("chart", kubeconfig, "--annotation-prefix", e.prefix, "--leader-elect=false",
				"--push-rbac-from-namespaces", fmt.Sprintf("e%d-src", e.id))

			roles := e.objects(roleKind)
			bindings := e.objects(roleBindingKind)
			src, push := e.ns("src", nil), e.ns("push", nil)
			podAdmin := map[string]any{"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"*"}}}}
			// cluster-admin, not edit: the test cluster runs no
			// aggregation controller, so edit holds no rules there.
			editBinding := map[string]any{"roleRef": map[string]any{"apiGroup": rbacGroup, "kind": "ClusterRole", "name": "cluster-admin"},
				"subjects": []any{map[string]any{"apiGroup": rbacGroup, "kind": "Group", "name": "tenant"}}}
			roles.create(src, "pod-admin", map[string]string{e.a.ReplicateTo: push}, nil, podAdmin)
			bindings.create(src, "editors", map[string]string{e.a.ReplicateTo: push}, nil, editBinding)
			// Within what the replicator holds: always replicated.
			roles.create(src, "config-reader", map[string]string{e.a.ReplicateTo: push}, nil, roleKind.content(2))
			roles.wait(push, "config-reader", roleKind.content(2))

			if escalate {
				roles.wait(push, "pod-admin", podAdmin)
				bindings.wait(push, "editors", editBinding)
				return
			}
			msg := e.waitEvent(src, "pod-admin", "WriteFailed")
			assert.Contains(t, msg, "forbidden")
			e.waitEvent(src, "editors", "WriteFailed")
			_, err := roles.get(push, "pod-admin")
			assert.True(t, apierrors.IsNotFound(err), "no Role granting more than the replicator holds")
			_, err = bindings.get(push, "editors")
			assert.True(t, apierrors.IsNotFound(err))
			e.eventually(wait, "forbidden writes counted", func() error {
				if v, err := p.metric("replicator_write_errors_total", map[string]string{"kind": "Role", "class": "forbidden"}); err != nil || v < 1 {
					return fmt.Errorf("%v, %v", v, err)
				}
				return nil
			})
			// Still up and replicating.
			select {
			case <-p.Exited():
				t.Fatalf("the replicator exited: %v", p.ExitErr())
			default:
			}
			e.create(secret(src, "later", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{e.a.ReplicateTo: push}))
			e.waitData(push, "later", map[string]string{"k": "v"})
		})
	}
}

func TestDeployManifestsApplyWithKubectl(t *testing.T) {
	needTools(t)
	kubeconfig := filepath.Join(t.TempDir(), "admin")
	require.NoError(t, cluster.WriteKubeconfig(kubeconfig, cluster.Config))
	kubectl := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "kubectl")
	out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "../deploy/").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, want := range []string{"namespace/replicator", "deployment.apps/replicator", "clusterrole.rbac.authorization.k8s.io/replicator", "serviceaccount/replicator"} {
		assert.Contains(t, string(out), want)
	}
}
