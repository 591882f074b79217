package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
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

// TestChartRejectsWrongValues: each row is one check of values.schema.json,
// named by what it refuses, and the --set values (comma-separated, as Helm
// takes them) that break it.
func TestChartRejectsWrongValues(t *testing.T) {
	needTools(t)
	const hub = "sourceClusters[0].name=hub,sourceClusters[0].kubeconfigSecret=hub,sourceClusters[0].namespaces[0]=certs,clusterName=spoke,"
	for _, c := range []struct{ why, set string }{
		{"workers are at least one", "workers=0"},
		{"the log format is plain or json", "logFormat=xml"},
		{"a kind the chart does not know", "kinds.configmap=true"},
		{"replicas are not negative", "replicaCount=-1"},
		{"the resync period is a Go duration", "resyncPeriod=soon"},
		{"the request rate is positive or -1", "kubeApiQps=0"},
		{"a switch is a boolean", "allowAll=maybe"},
		{"a dialect the replicator does not read", "dialects=emberstack"},
		{"a value the chart does not have", "typo=1"},
		{"global is a map", "global=1"},
		{"a probe's period is at least a second", "livenessProbe.periodSeconds=0"},
		{"a probe's threshold is a number", "readinessProbe.failureThreshold=often"},
		{"a probe has no successThreshold", "livenessProbe.successThreshold=1"},
		{"a probe's enabled is a boolean", "livenessProbe.enabled=yes"},
		{"networkPolicy.enabled is a boolean", "networkPolicy.enabled=yes"},
		{"the API server's ports are a list", "networkPolicy.apiServerPorts=443"},
		{"the API server's ports are required", "networkPolicy.apiServerPorts=null"},
		{"a port is at least 1", "networkPolicy.apiServerPorts={0}"},
		{"a CIDR has a prefix length", "networkPolicy.apiServerCIDRs={10.0.0.1}"},
		{"a NetworkPolicy peer's keys", "networkPolicy.metricsFrom[0].podSelectors.app=prometheus"},
		{"networkPolicy's keys", "networkPolicy.typo=1"},
		{"prometheusRule.enabled is a boolean", "prometheusRule.enabled=1"},
		{"labels are strings", "prometheusRule.labels.release=null"},
		{"a Prometheus duration", "prometheusRule.noLeaderFor=5min"},
		{"a threshold is a number", "prometheusRule.queueDepth=many"},
		{"the queue latency's histogram ends at 26 s", "prometheusRule.queueLatencySeconds=60"},
		{"restarts are not negative", "prometheusRule.restartsPerHour=-1"},
		{"prometheusRule's keys", "prometheusRule.typo=1"},
		{"grafanaDashboard.enabled is a boolean", "grafanaDashboard.enabled=no"},
		{"a label value is a string", "grafanaDashboard.labels.grafana_dashboard=1"},
		{"the dashboard's namespace is a namespace name", "grafanaDashboard.namespace=Monitoring"},
		{"extraObjects is a list", "extraObjects=object"},
		{"an extra object is a map or a template", "extraObjects[0]=1"},

		{"an image digest is sha256: or sha512: and hex", "image.digest=latest"},
		{"image's keys", "image.digets=sha256:0"},
		{"namespaceOverride is a namespace name", "namespaceOverride=Team_A"},
		{"revisionHistoryLimit is not negative", "revisionHistoryLimit=-1"},
		{"Deployment annotations are strings", "deploymentAnnotations.a=1"},
		{"the Lease's name is a DNS subdomain", "leaderElection.leaseName=My_Lease"},
		{"the Lease's namespace is a namespace name", "leaderElection.namespace=kube.system"},
		{"leaderElection's keys", "leaderElection.leaseNamespace=x"},
		{"an environment variable has a name", "extraEnv[0].value=x"},
		{"an environment variable's keys", "extraEnv[0].name=A,extraEnv[0].vaule=x"},
		{"an environment variable's valueFrom is one of Kubernetes' sources", "extraEnv[0].name=A,extraEnv[0].valueFrom.secretRef.name=s"},
		{"an environment variable's valueFrom has one source", "extraEnv[0].name=A,extraEnv[0].valueFrom.secretKeyRef.name=s,extraEnv[0].valueFrom.configMapKeyRef.name=c"},
		{"a volume has a name", "extraVolumes[0].emptyDir.medium=Memory"},
		{"a volume's source is one Kubernetes knows", "extraVolumes[0].name=v,extraVolumes[0].secert.secretName=s"},
		{"a volume has one source", "extraVolumes[0].name=v,extraVolumes[0].emptyDir.medium=Memory,extraVolumes[0].secret.secretName=s"},
		{"a volume's name is a DNS label", "extraVolumes[0].name=My_Volume,extraVolumes[0].emptyDir.medium=Memory"},
		{"a volume mount has a path", "extraVolumeMounts[0].name=v"},
		{"a volume mount's keys", "extraVolumeMounts[0].name=v,extraVolumeMounts[0].mountPath=/x,extraVolumeMounts[0].readonly=true"},
		{"a volume mount's propagation", "extraVolumeMounts[0].name=v,extraVolumeMounts[0].mountPath=/x,extraVolumeMounts[0].mountPropagation=Shared"},
		{"resources has limits, requests and claims", "resources.limit.memory=1Gi"},
		{"a resource name Kubernetes knows", "resources.limits.memroy=1Gi"},
		{"a quantity as Kubernetes writes it", "resources.limits.memory=1GB"},
		{"a quantity is not negative", "resources.requests.cpu=-1"},
		{"a resource claim's keys", "resources.claims[0].nmae=gpu"},
		{"the pod's security context's keys", "podSecurityContext.runAsNonroot=true"},
		{"a seccomp profile type", "podSecurityContext.seccompProfile.type=Default"},
		{"a user id is not negative", "podSecurityContext.runAsUser=-1"},
		{"fsGroupChangePolicy's values", "podSecurityContext.fsGroupChangePolicy=Never"},
		{"a sysctl has a value", "podSecurityContext.sysctls[0].name=net.core.somaxconn"},
		{"the container's security context's keys", "securityContext.readOnlyRootFileSystem=true"},
		{"capabilities are added or dropped", "securityContext.capabilities.remove[0]=ALL"},
		{"privileged is a boolean", "securityContext.privileged=no"},
		{"procMount's values", "securityContext.procMount=Masked"},
		{"an AppArmor profile's keys", "securityContext.appArmorProfile.type=Localhost,securityContext.appArmorProfile.profile=x"},
		{"a toleration's keys", "tolerations[0].opertor=Exists"},
		{"a toleration's operator", "tolerations[0].operator=Equals"},
		{"a taint effect", "tolerations[0].effect=NoScheduling"},
		{"affinity's kinds", "affinity.podAntiAfinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1"},
		{"an affinity's keys", "affinity.podAntiAffinity.preferredDuringScheduling[0].weight=1"},
		{"a topology spread constraint's required keys", "topologySpreadConstraints[0].maxSkew=1"},
		{"whenUnsatisfiable's values", "topologySpreadConstraints[0].maxSkew=1,topologySpreadConstraints[0].topologyKey=zone,topologySpreadConstraints[0].whenUnsatisfiable=Never"},
		{"a label selector's keys", "topologySpreadConstraints[0].maxSkew=1,topologySpreadConstraints[0].topologyKey=zone,topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule,topologySpreadConstraints[0].labelSelector.matchLabel.a=b"},
		{"an image pull Secret's keys", "imagePullSecrets[0].nmae=regcred"},
		{"a source cluster's token comes from a Secret or a ServiceAccount, not both", hub + "sourceClusters[0].tokenSecret.name=t,sourceClusters[0].serviceAccountToken.audience=hub"},
		{"a token Secret has a name", hub + "sourceClusters[0].tokenSecret.key=token"},
		{"a token Secret's keys", hub + "sourceClusters[0].tokenSecret.secretName=t"},
		{"a ServiceAccount token has an audience", hub + "sourceClusters[0].serviceAccountToken.expirationSeconds=3600"},
		{"a ServiceAccount token lives at least 600 s", hub + "sourceClusters[0].serviceAccountToken.audience=hub,sourceClusters[0].serviceAccountToken.expirationSeconds=60"},
	} {
		out, err := helm(t, "template", "r", chartDir, "--set", c.set)
		assert.Error(t, err, "%s: --set %s was accepted", c.why, c.set)
		assert.Contains(t, out, "values don't meet the specifications of the schema", "%s: --set %s", c.why, c.set)
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
	p := e.startReplicatorWithKubeconfig("chart", e.kubeconfig(sa),
		"--annotation-prefix", e.prefix, "--leader-elect-lease-name", release+"-replicator", "--leader-elect-namespace", ns)

	src, app, push := e.ns("src", nil), e.ns("app", nil), e.ns("push", nil)
	e.create(secret(src, "wildcard", corev1.SecretTypeTLS, tlsV1, with(e.allow(app), e.a.ReplicateTo, push)))
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
			flag := map[string]string{"secrets": "--replicate-secrets", "configMaps": "--replicate-configmaps", "roles": "--replicate-roles",
				"roleBindings": "--replicate-role-bindings", "serviceAccounts": "--replicate-service-accounts"}[off.value]
			p := e.startReplicatorWithKubeconfig("chart", e.kubeconfig(sa), "--annotation-prefix", e.prefix, "--leader-elect=false", flag+"=false")
			// At work: it has reconciled a marker of a kind it watches,
			// created after it was ready. A watch of the kind turned off
			// would have been started with the others, and refused, before.
			on := kinds[slices.IndexFunc(kinds, func(kc kindCase) bool { return kc.resource.Resource != off.resource })]
			e.caughtUp(p, on)
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
			p := e.startReplicatorWithKubeconfig("chart", e.kubeconfig(sa), "--annotation-prefix", e.prefix, "--leader-elect=false",
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
	kubectl := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "kubectl")
	out, err := exec.Command(kubectl, "--kubeconfig", writeKubeconfig(t, cluster.Config), "apply", "-f", "../deploy/").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, want := range []string{"namespace/replicator", "deployment.apps/replicator", "clusterrole.rbac.authorization.k8s.io/replicator", "serviceaccount/replicator"} {
		assert.Contains(t, string(out), want)
	}
}

// renderChart renders the chart as the release r in namespace with args
// (--set, --values, ...) and returns its objects.
func renderChart(t *testing.T, namespace string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", "r", chartDir, "--namespace", namespace}, args...)...)
	require.NoError(t, err, out)
	return parseManifests(t, out)
}

// parseManifests splits helm template's output into its objects.
func parseManifests(t *testing.T, out string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(out, "\n---\n") {
		var m map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(doc), &m), doc)
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs
}

// findObject returns the object of that kind and name, or fails.
func findObject(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	require.Failf(t, "object not rendered", "%s %s", kind, name)
	return nil
}

// typed converts o into out, refusing any field out's type does not have.
func typed(t *testing.T, o *unstructured.Unstructured, out any) {
	t.Helper()
	b, err := json.Marshal(o.Object)
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(b, out), "%s %s has fields Kubernetes does not know", o.GetKind(), o.GetName())
}

// chartDeployment returns the rendered Deployment.
func chartDeployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			var d appsv1.Deployment
			typed(t, o, &d)
			return &d
		}
	}
	require.Fail(t, "no Deployment rendered")
	return nil
}

// serverAccepts has the test cluster's API server check the chart's
// Deployment, RBAC objects, Service and ServiceAccount among objs as it
// would at install (every field known, every value valid) in a dry run that
// stores nothing.
func serverAccepts(t *testing.T, e *env, objs []*unstructured.Unstructured) {
	t.Helper()
	resources := map[string]schema.GroupVersionResource{
		"Deployment":     {Group: "apps", Version: "v1", Resource: "deployments"},
		"Role":           {Group: rbacGroup, Version: "v1", Resource: "roles"},
		"RoleBinding":    {Group: rbacGroup, Version: "v1", Resource: "rolebindings"},
		"Service":        {Version: "v1", Resource: "services"},
		"ServiceAccount": {Version: "v1", Resource: "serviceaccounts"},
	}
	client := dynamic.NewForConfigOrDie(cluster.Config)
	checked := 0
	for _, o := range objs {
		r, ok := resources[o.GetKind()]
		if !ok {
			continue
		}
		_, err := client.Resource(r).Namespace(o.GetNamespace()).Create(e.ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		require.NoError(t, err, "the API server refuses %s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
		checked++
	}
	require.Positive(t, checked)
}

// TestChartProbes renders every shape a probe's value can take and has the
// API server accept the Deployment: a probe is on unless enabled is false,
// with the timings given and Kubernetes' defaults for the others.
func TestChartProbes(t *testing.T) {
	e := newEnv(t)
	ns := e.ns("probes", nil)
	probe := func(path string, period, failure, timeout int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("status")}},
			PeriodSeconds: period, FailureThreshold: failure, TimeoutSeconds: timeout,
		}
	}
	liveness, readiness := probe("/healthz", 10, 3, 1), probe("/readyz", 5, 2, 1)
	values := filepath.Join(t.TempDir(), "probes.yaml")
	require.NoError(t, os.WriteFile(values, []byte("livenessProbe: null\nreadinessProbe: {enabled: false}\n"), 0o644))
	for _, c := range []struct {
		why                 string
		args                []string
		liveness, readiness *corev1.Probe
	}{
		{"the chart's timings by default", nil, liveness, readiness},
		{"an empty map keeps them: Helm merges it over the defaults", []string{"--set-json", "livenessProbe={}"}, liveness, readiness},
		{"a timing of one's own replaces only that one", []string{"--set", "livenessProbe.periodSeconds=30"}, probe("/healthz", 30, 3, 1), readiness},
		{"a timing set to null is Kubernetes' default", []string{"--set", "readinessProbe.periodSeconds=null"}, liveness, probe("/readyz", 0, 2, 1)},
		{"a probe set to null has only Kubernetes' defaults", []string{"--set", "livenessProbe=null"}, probe("/healthz", 0, 0, 0), readiness},
		{"enabled=false leaves the probe out", []string{"--set", "livenessProbe.enabled=false"}, nil, readiness},
		{"both can be left out", []string{"--set", "livenessProbe.enabled=false", "--set", "readinessProbe.enabled=false"}, nil, nil},
		{"the same in a values file", []string{"--values", values}, probe("/healthz", 0, 0, 0), nil},
	} {
		objs := renderChart(t, ns, c.args...)
		container := chartDeployment(t, objs).Spec.Template.Spec.Containers[0]
		assert.Equal(t, c.liveness, container.LivenessProbe, "%s: liveness probe", c.why)
		assert.Equal(t, c.readiness, container.ReadinessProbe, "%s: readiness probe", c.why)
		serverAccepts(t, e, objs)
	}
}

// leaseOf returns the Lease name and namespace the Deployment passes, and
// the Role the chart grants on Leases with its binding.
func leaseOf(t *testing.T, objs []*unstructured.Unstructured) (name, namespace string, role *rbacv1.Role, binding *rbacv1.RoleBinding) {
	t.Helper()
	for _, a := range chartDeployment(t, objs).Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--leader-elect-lease-name="); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(a, "--leader-elect-namespace="); ok {
			namespace = v
		}
	}
	role, binding = &rbacv1.Role{}, &rbacv1.RoleBinding{}
	typed(t, findObject(t, objs, "Role", "r-replicator-leader-election"), role)
	typed(t, findObject(t, objs, "RoleBinding", "r-replicator-leader-election"), binding)
	return name, namespace, role, binding
}

// TestChartRoleFollowsTheLease: whatever names the Lease and its namespace,
// the Role grants get and update on that Lease alone, in that namespace,
// to the chart's ServiceAccount in the chart's namespace.
func TestChartRoleFollowsTheLease(t *testing.T) {
	needTools(t)
	for _, c := range []struct {
		why                     string
		set                     []string
		lease, leaseNS, chartNS string
	}{
		{"by default the full name, in the release namespace", nil, "r-replicator", "replicator", "replicator"},
		{"a name of one's own", []string{"leaderElection.leaseName=shared-lock"}, "shared-lock", "replicator", "replicator"},
		{"a namespace of one's own", []string{"leaderElection.namespace=leases"}, "r-replicator", "leases", "replicator"},
		{"the chart's namespace", []string{"namespaceOverride=platform"}, "r-replicator", "platform", "platform"},
		{"all three", []string{"namespaceOverride=platform", "leaderElection.namespace=leases", "leaderElection.leaseName=lock.example.com"}, "lock.example.com", "leases", "platform"},
	} {
		var args []string
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		name, namespace, role, binding := leaseOf(t, renderChart(t, "replicator", args...))
		assert.Equal(t, c.lease, name, "%s: --leader-elect-lease-name", c.why)
		assert.Equal(t, c.leaseNS, namespace, "%s: --leader-elect-namespace", c.why)
		assert.Equal(t, c.leaseNS, role.Namespace, "%s: the Role's namespace", c.why)
		assert.Equal(t, c.leaseNS, binding.Namespace, "%s: the RoleBinding's namespace", c.why)
		assert.Equal(t, []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{c.lease}, Verbs: []string{"get", "update"}},
		}, role.Rules, c.why)
		assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "r-replicator", Namespace: c.chartNS}}, binding.Subjects, c.why)
	}
}

// TestChartLeadsWithItsOwnLease installs the chart into a namespace of its
// own (namespaceOverride) with a Lease named and placed by the values, and
// runs the binary with the Deployment's arguments as its ServiceAccount: the
// chart's Role lets it hold that Lease, and no other.
func TestChartLeadsWithItsOwnLease(t *testing.T) {
	e := newEnv(t)
	release := fmt.Sprintf("e%d", e.id)
	releaseNS, chartNS, leaseNS := e.ns(release, nil), e.ns("chart", nil), e.ns("leases", nil)
	out, err := helm(t, "install", release, chartDir, "--namespace", releaseNS, "--kubeconfig", e.adminKubeconfig(),
		"--set", "annotationPrefix="+e.prefix, "--set", "namespaceOverride="+chartNS,
		"--set", "leaderElection.namespace="+leaseNS, "--set", "leaderElection.leaseName=shared-lock")
	require.NoError(t, err, out)
	for _, name := range []string{release + "-replicator", release + "-replicator-metrics"} {
		_, err := admin.CoreV1().Services(releaseNS).Get(e.ctx, name, metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "nothing in the release namespace: %s", name)
	}
	cfg, err := cluster.ServiceAccountConfig(e.ctx, chartNS, release+"-replicator")
	require.NoError(t, err, "the ServiceAccount is in the chart's namespace")
	// --namespace as POD_NAMESPACE gives it in a pod: the Deployment's.
	p := e.startReplicatorWithKubeconfig("chart", e.kubeconfig(cfg), append(e.deploymentArgs(chartNS, release), "--namespace="+chartNS)...)
	e.waitLeading(wait, "the replicator leads", p)
	lease, err := admin.CoordinationV1().Leases(leaseNS).Get(e.ctx, "shared-lock", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotEmpty(t, lease.Spec.HolderIdentity)
	assert.NotContains(t, strings.ToLower(p.logs.String()), "forbidden")
	may := func(verb, namespace, name string) bool {
		return access(t, e, cfg, authorizationv1.ResourceAttributes{Verb: verb, Group: "coordination.k8s.io", Resource: "leases", Namespace: namespace, Name: name})
	}
	assert.True(t, may("update", leaseNS, "shared-lock"))
	assert.False(t, may("update", leaseNS, release+"-replicator"), "only the Lease the values name")
	assert.False(t, may("update", chartNS, "shared-lock"), "only in the Lease's namespace")
	assert.False(t, may("create", chartNS, ""))
}

// TestChartNamespaceOverride: every namespaced object goes into
// namespaceOverride, and what names the namespace follows.
func TestChartNamespaceOverride(t *testing.T) {
	needTools(t)
	objs := renderChart(t, "replicator", "--set", "namespaceOverride=platform", "--set", "serviceMonitor.enabled=true",
		"--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true", "--set", "networkPolicy.enabled=true")
	clusterScoped := map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true}
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()] = true
		if clusterScoped[o.GetKind()] {
			assert.Empty(t, o.GetNamespace(), "%s %s", o.GetKind(), o.GetName())
			continue
		}
		assert.Equal(t, "platform", o.GetNamespace(), "%s %s", o.GetKind(), o.GetName())
	}
	for _, kind := range []string{"Deployment", "ServiceAccount", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "Role", "RoleBinding", "ClusterRoleBinding"} {
		assert.True(t, kinds[kind], "%s rendered", kind)
	}
	var binding rbacv1.ClusterRoleBinding
	typed(t, findObject(t, objs, "ClusterRoleBinding", "r-replicator"), &binding)
	assert.Equal(t, "platform", binding.Subjects[0].Namespace)
	rule := findObject(t, objs, "PrometheusRule", "r-replicator")
	b, err := json.Marshal(rule.Object)
	require.NoError(t, err)
	assert.Contains(t, string(b), `namespace=\"platform\"`, "the alerts select the series of the chart's namespace")
	// The replicator's own namespace is the pod's (POD_NAMESPACE), and so
	// is the Lease's.
	d := chartDeployment(t, objs)
	assert.Equal(t, "metadata.namespace", d.Spec.Template.Spec.Containers[0].Env[0].ValueFrom.FieldRef.FieldPath)
	assert.Contains(t, d.Spec.Template.Spec.Containers[0].Args, "--leader-elect-namespace=platform")
}

func TestChartImage(t *testing.T) {
	needTools(t)
	digest := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct{ tag, digest, want string }{
		{"", "", "kubereplicator/replicator:0.1.0"},
		{"v1.2.3", "", "kubereplicator/replicator:v1.2.3"},
		{"", digest, "kubereplicator/replicator@" + digest},
		{"v1.2.3", digest, "kubereplicator/replicator:v1.2.3@" + digest},
	} {
		d := chartDeployment(t, renderChart(t, "replicator", "--set", "image.tag="+c.tag, "--set", "image.digest="+c.digest))
		assert.Equal(t, c.want, d.Spec.Template.Spec.Containers[0].Image, "tag %q, digest %q", c.tag, c.digest)
	}
}

// TestChartPodExtras renders what an operator adds to the pod (environment,
// volumes, annotations, the Kubernetes fields the schema checks, at their
// fullest) and has the API server accept the Deployment: the schema refuses
// none of what Kubernetes takes.
func TestChartPodExtras(t *testing.T) {
	e := newEnv(t)
	ns := e.ns("extras", nil)
	values := filepath.Join(t.TempDir(), "extras.yaml")
	require.NoError(t, os.WriteFile(values, []byte(`
revisionHistoryLimit: 3
deploymentAnnotations: {reloader.example.com/auto: "true"}
podAnnotations: {team: platform}
extraEnv:
  - {name: GOMEMLIMIT, value: 200MiB}
  - {name: HUB_TOKEN_AUDIENCE, valueFrom: {configMapKeyRef: {name: settings, key: audience, optional: true}}}
  - {name: MEMORY_LIMIT, valueFrom: {resourceFieldRef: {containerName: replicator, resource: limits.memory}}}
extraVolumes:
  - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - {name: ca, projected: {sources: [{configMap: {name: extra-ca}}]}}
extraVolumeMounts:
  - {name: scratch, mountPath: /tmp}
  - {name: ca, mountPath: /etc/extra-ca, readOnly: true, recursiveReadOnly: IfPossible}
clusterName: spoke-1
sourceClusters:
  - {name: hub, kubeconfigSecret: hub-kubeconfig, namespaces: [certs]}
resources:
  requests: {cpu: 0.05, memory: 64Mi, ephemeral-storage: 1Gi}
  limits: {memory: 256Mi, hugepages-2Mi: 0, example.com/widget: 1}
podSecurityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  fsGroupChangePolicy: OnRootMismatch
  supplementalGroups: [65533]
  supplementalGroupsPolicy: Merge
  sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "1024"}]
  seccompProfile: {type: RuntimeDefault}
  appArmorProfile: {type: RuntimeDefault}
  seLinuxOptions: {level: "s0:c123,c456"}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  privileged: false
  procMount: Default
  capabilities: {drop: [ALL]}
  seccompProfile: {type: RuntimeDefault}
tolerations:
  - {key: dedicated, operator: Equal, value: infra, effect: NoSchedule}
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]}]
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - {weight: 100, podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app.kubernetes.io/name: replicator}}}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: DoNotSchedule
    minDomains: 2
    nodeAffinityPolicy: Honor
    nodeTaintsPolicy: Ignore
    matchLabelKeys: [pod-template-hash]
    labelSelector: {matchExpressions: [{key: app.kubernetes.io/name, operator: In, values: [replicator]}]}
`), 0o644))
	objs := renderChart(t, ns, "--values", values)
	serverAccepts(t, e, objs)
	d := chartDeployment(t, objs)
	pod := d.Spec.Template.Spec
	container := pod.Containers[0]
	assert.Equal(t, int32(3), *d.Spec.RevisionHistoryLimit)
	assert.Equal(t, "true", d.Annotations["reloader.example.com/auto"])
	assert.Equal(t, "platform", d.Spec.Template.Annotations["team"])
	var env []string
	for _, v := range container.Env {
		env = append(env, v.Name)
	}
	assert.Equal(t, []string{"POD_NAMESPACE", "GOMEMLIMIT", "HUB_TOKEN_AUDIENCE", "MEMORY_LIMIT"}, env, "the chart's own first, then extraEnv")
	var volumes, mounts []string
	for _, v := range pod.Volumes {
		volumes = append(volumes, v.Name)
	}
	for _, m := range container.VolumeMounts {
		mounts = append(mounts, m.Name+" "+m.MountPath)
	}
	assert.Equal(t, []string{"cluster-hub", "scratch", "ca"}, volumes)
	assert.Equal(t, []string{"cluster-hub /etc/replicator/clusters/hub", "scratch /tmp", "ca /etc/extra-ca"}, mounts)
	assert.Equal(t, "example.com/widget", string(slices.Sorted(maps.Keys(container.Resources.Limits))[0]))

	// And without any of it, the defaults render none of it.
	d = chartDeployment(t, renderChart(t, ns))
	assert.Equal(t, int32(10), *d.Spec.RevisionHistoryLimit)
	assert.Empty(t, d.Annotations)
	assert.Len(t, d.Spec.Template.Spec.Containers[0].Env, 1)
	assert.Empty(t, d.Spec.Template.Spec.Volumes)
	assert.Empty(t, d.Spec.Template.Spec.Containers[0].VolumeMounts)
}

// TestChartServiceMonitorNeedsTheService: the ServiceMonitor scrapes the
// metrics Service; without it the chart refuses to render rather than
// install a ServiceMonitor that scrapes nothing.
func TestChartServiceMonitorNeedsTheService(t *testing.T) {
	needTools(t)
	out, err := helm(t, "template", "r", chartDir, "--set", "serviceMonitor.enabled=true", "--set", "service.enabled=false")
	assert.Error(t, err)
	assert.Contains(t, out, "serviceMonitor.enabled=true needs service.enabled=true")

	objs := renderChart(t, "replicator", "--set", "service.enabled=false")
	for _, o := range objs {
		assert.NotContains(t, []string{"Service", "ServiceMonitor"}, o.GetKind())
	}

	objs = renderChart(t, "replicator", "--set", "serviceMonitor.enabled=true")
	var service corev1.Service
	typed(t, findObject(t, objs, "Service", "r-replicator-metrics"), &service)
	monitor := findObject(t, objs, "ServiceMonitor", "r-replicator")
	selector, _, err := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	require.NoError(t, err)
	require.NotEmpty(t, selector)
	for k, v := range selector {
		assert.Equal(t, v, service.Labels[k], "the ServiceMonitor selects the Service by %s", k)
	}
	endpoints, _, err := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	require.NoError(t, err)
	assert.Equal(t, service.Spec.Ports[0].Name, endpoints[0].(map[string]any)["port"])
}

// jsonFields are the JSON names of a Kubernetes type's fields, those of
// inlined structs included.
func jsonFields(typ reflect.Type) []string {
	var names []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case opts == "inline" || f.Anonymous && name == "":
			names = append(names, jsonFields(f.Type)...)
		case name != "" && name != "-":
			names = append(names, name)
		}
	}
	return names
}

// TestChartSchemaFollowsTheKubernetesAPI: the schema's objects for the
// Kubernetes types passed through to the pod have exactly the keys of the
// k8s.io/api in go.mod, so that a typo is refused and no field Kubernetes
// has is; updating k8s.io/api tells what to add.
func TestChartSchemaFollowsTheKubernetesAPI(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	require.NoError(t, err)
	var schema struct {
		Definitions map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"definitions"`
	}
	require.NoError(t, json.Unmarshal(raw, &schema))
	for definition, typ := range map[string]reflect.Type{
		"resourceRequirements":     reflect.TypeFor[corev1.ResourceRequirements](),
		"resourceClaim":            reflect.TypeFor[corev1.ResourceClaim](),
		"podSecurityContext":       reflect.TypeFor[corev1.PodSecurityContext](),
		"securityContext":          reflect.TypeFor[corev1.SecurityContext](),
		"seLinuxOptions":           reflect.TypeFor[corev1.SELinuxOptions](),
		"windowsOptions":           reflect.TypeFor[corev1.WindowsSecurityContextOptions](),
		"seccompProfile":           reflect.TypeFor[corev1.SeccompProfile](),
		"appArmorProfile":          reflect.TypeFor[corev1.AppArmorProfile](),
		"capabilities":             reflect.TypeFor[corev1.Capabilities](),
		"sysctl":                   reflect.TypeFor[corev1.Sysctl](),
		"toleration":               reflect.TypeFor[corev1.Toleration](),
		"affinity":                 reflect.TypeFor[corev1.Affinity](),
		"nodeAffinity":             reflect.TypeFor[corev1.NodeAffinity](),
		"podAffinity":              reflect.TypeFor[corev1.PodAffinity](),
		"podAntiAffinity":          reflect.TypeFor[corev1.PodAntiAffinity](),
		"topologySpreadConstraint": reflect.TypeFor[corev1.TopologySpreadConstraint](),
		"labelSelector":            reflect.TypeFor[metav1.LabelSelector](),
		"labelSelectorRequirement": reflect.TypeFor[metav1.LabelSelectorRequirement](),
		"envVar":                   reflect.TypeFor[corev1.EnvVar](),
		"envVarSource":             reflect.TypeFor[corev1.EnvVarSource](),
		"volume":                   reflect.TypeFor[corev1.Volume](),
		"volumeMount":              reflect.TypeFor[corev1.VolumeMount](),
		"localObjectReference":     reflect.TypeFor[corev1.LocalObjectReference](),
	} {
		d, ok := schema.Definitions[definition]
		if !assert.True(t, ok, "the schema defines %s", definition) {
			continue
		}
		assert.ElementsMatch(t, jsonFields(typ), slices.Collect(maps.Keys(d.Properties)), "%s: the keys of %s", definition, typ)
	}
}

// TestChartReadme: helm show readme prints chart/README.md, whose links into
// the repository lead to files that exist and whose values are the chart's.
func TestChartReadme(t *testing.T) {
	needTools(t)
	out, err := helm(t, "show", "readme", chartDir)
	require.NoError(t, err, out)
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(readme)), strings.TrimSpace(out))
	links := regexp.MustCompile(`https://github\.com/kubereplicator/replicator/blob/main/([^)#\s]+)`).FindAllStringSubmatch(string(readme), -1)
	require.NotEmpty(t, links)
	for _, l := range links {
		_, err := os.Stat(filepath.Join("..", l[1]))
		assert.NoError(t, err, "chart/README.md links %s", l[1])
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	var values map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &values))
	named := 0
	for _, row := range regexp.MustCompile("(?m)^\\| (`.*?) \\|").FindAllStringSubmatch(string(readme), -1) {
		for _, v := range regexp.MustCompile("`([A-Za-z.*]+)`").FindAllStringSubmatch(row[1], -1) {
			named++
			var at any = values
			for _, key := range strings.Split(strings.TrimSuffix(v[1], ".*"), ".") {
				m, ok := at.(map[string]any)
				require.True(t, ok, "chart/README.md names %s, which values.yaml does not have", v[1])
				at, ok = m[key]
				require.True(t, ok, "chart/README.md names %s, which values.yaml does not have", v[1])
			}
		}
	}
	assert.Greater(t, named, 10)

	out, err = helm(t, "show", "chart", chartDir)
	require.NoError(t, err, out)
	var chart struct {
		KubeVersion string   `json:"kubeVersion"`
		Home        string   `json:"home"`
		Sources     []string `json:"sources"`
		Maintainers []any    `json:"maintainers"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(out), &chart))
	assert.Equal(t, ">=1.34.0-0", chart.KubeVersion)
	assert.Equal(t, "https://github.com/kubereplicator/replicator", chart.Home)
	assert.Equal(t, []string{"https://github.com/kubereplicator/replicator"}, chart.Sources)
	assert.NotEmpty(t, chart.Maintainers)
	out, err = helm(t, "template", "r", chartDir, "--kube-version", "1.33.9")
	assert.Error(t, err)
	assert.Contains(t, out, "incompatible with Kubernetes v1.33.9")
	out, err = helm(t, "template", "r", chartDir, "--kube-version", "1.34.0")
	assert.NoError(t, err, out)
}

// tokenFileSection returns the section of docs/cross-cluster.md on token
// files.
func tokenFileSection(t *testing.T) string {
	t.Helper()
	page, err := os.ReadFile("../docs/cross-cluster.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(page), "\n## A token file instead of a token in the kubeconfig\n")
	require.True(t, ok, "docs/cross-cluster.md has its token file section")
	section, _, _ = strings.Cut(section, "\n## ")
	return section
}

// TestChartMountsTheTokenFileOfTheDocs renders the helm commands of
// docs/cross-cluster.md's token file section: the token, from a Secret or
// the kubelet, lands in the file the kubeconfig's tokenFile names, beside
// the kubeconfig, and the API server accepts the Deployment.
func TestChartMountsTheTokenFileOfTheDocs(t *testing.T) {
	e := newEnv(t)
	ns := e.ns("tokens", nil)
	section := tokenFileSection(t)
	tokenFiles := regexp.MustCompile(`users\.spoke-reader\.tokenFile (\S+)`).FindAllStringSubmatch(section, -1)
	require.Len(t, tokenFiles, 2, "each recipe sets a tokenFile")
	commands := helmCommands(section)
	require.Len(t, commands, 2, "a helm command for each recipe")
	for i, line := range commands {
		tokenFile := tokenFiles[i][1]
		args := append(helmTemplateArgs(t, shellWords(t, line)), "--namespace", ns)
		out, err := helm(t, args...)
		require.NoError(t, err, out)
		objs := parseManifests(t, out)
		serverAccepts(t, e, objs)
		pod := chartDeployment(t, objs).Spec.Template.Spec
		dir := filepath.Dir(tokenFile)
		assert.Contains(t, pod.Containers[0].Args, "--source-cluster=hub="+dir+"/kubeconfig", "the kubeconfig is beside the token")
		i = slices.IndexFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
		require.GreaterOrEqual(t, i, 0, "a volume is mounted at %s", dir)
		mount := pod.Containers[0].VolumeMounts[i]
		assert.True(t, mount.ReadOnly)
		i = slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
		require.GreaterOrEqual(t, i, 0)
		projected := pod.Volumes[i].Projected
		require.NotNil(t, projected, "the kubeconfig and the token in one projected volume")
		require.Len(t, projected.Sources, 2)
		assert.Equal(t, &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "hub-kubeconfig"},
			Items: []corev1.KeyToPath{{Key: "kubeconfig", Path: "kubeconfig"}}}, projected.Sources[0].Secret)
		token := projected.Sources[1]
		switch {
		case strings.Contains(line, "tokenSecret"):
			assert.Equal(t, &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "hub-token"},
				Items: []corev1.KeyToPath{{Key: "token", Path: filepath.Base(tokenFile)}}}, token.Secret, line)
		case strings.Contains(line, "serviceAccountToken"):
			expiry := int64(3600)
			assert.Equal(t, &corev1.ServiceAccountTokenProjection{Audience: "hub", ExpirationSeconds: &expiry, Path: filepath.Base(tokenFile)},
				token.ServiceAccountToken, line)
		default:
			t.Errorf("%s: neither tokenSecret nor serviceAccountToken", line)
		}
	}
}

// TestChartPullsThroughATokenFile follows the first recipe of
// docs/cross-cluster.md's token file section against a second API server:
// the hub's token in a Secret of its own, a kubeconfig naming the file. The
// test does what the kubelet would (writes each Secret source of each
// mounted volume under a directory standing for the pod's root) and runs
// the binary with the pod's arguments as the chart's ServiceAccount.
func TestChartPullsThroughATokenFile(t *testing.T) {
	e := newEnv(t)
	h := e.startHub()
	release := fmt.Sprintf("e%d", e.id)
	ns, sa := e.install(release, "clusterName=spoke-1", "sourceClusters[0].name=hub", "sourceClusters[0].kubeconfigSecret=hub-kubeconfig",
		"sourceClusters[0].namespaces[0]=certs", "sourceClusters[0].tokenSecret.name=hub-token")
	const tokenFile = "/etc/replicator/clusters/hub/token"
	kc, err := clientcmd.LoadFromFile(h.reader)
	require.NoError(t, err)
	var token string
	for _, user := range kc.AuthInfos {
		token, user.Token, user.TokenFile = user.Token, "", tokenFile
	}
	require.NotEmpty(t, token)
	kubeconfig, err := clientcmd.Write(*kc)
	require.NoError(t, err)
	for name, data := range map[string]map[string][]byte{"hub-kubeconfig": {"kubeconfig": kubeconfig}, "hub-token": {"token": []byte(token)}} {
		_, err = admin.CoreV1().Secrets(ns).Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	deployment, err := admin.AppsV1().Deployments(ns).Get(e.ctx, release+"-replicator", metav1.GetOptions{})
	require.NoError(t, err)
	pod := deployment.Spec.Template.Spec
	root := t.TempDir()
	under := func(s, mount string) string { return strings.ReplaceAll(s, mount, filepath.Join(root, mount)) }
	var mounts []string
	for _, m := range pod.Containers[0].VolumeMounts {
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		require.GreaterOrEqual(t, i, 0, "volume %s", m.Name)
		require.NotNil(t, pod.Volumes[i].Projected, "volume %s is projected", m.Name)
		for _, source := range pod.Volumes[i].Projected.Sources {
			require.NotNil(t, source.Secret, "volume %s: the test fills Secret sources only", m.Name)
			s, err := admin.CoreV1().Secrets(ns).Get(e.ctx, source.Secret.Name, metav1.GetOptions{})
			require.NoError(t, err)
			for _, item := range source.Secret.Items {
				path := filepath.Join(root, m.MountPath, item.Path)
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
				// Paths into the mount (the kubeconfig's tokenFile) are the
				// test root's.
				require.NoError(t, os.WriteFile(path, []byte(under(string(s.Data[item.Key]), m.MountPath)), 0o600))
			}
		}
		mounts = append(mounts, m.MountPath)
	}
	require.Equal(t, []string{filepath.Dir(tokenFile)}, mounts)
	var args []string
	for _, a := range e.deploymentArgs(ns, release) {
		args = append(args, under(a, mounts[0]))
	}
	e.startReplicatorWithKubeconfig("chart", e.kubeconfig(sa), args...)

	app := e.ns("app", nil)
	h.create(h.source("wildcard", app, "spoke-1", "token-file-cert"))
	e.create(e.tlsPlaceholder(app, "tls", "hub:certs/wildcard"))
	e.waitData(app, "tls", map[string]string{"tls.crt": "token-file-cert", "tls.key": "key of token-file-cert"})
}

// TestChartInstallRefusesWhatTheSchemaLeavesToKubernetes: a typo below
// the level the schema checks (a volume source's field, an affinity term's)
// renders, and helm install fails on it, before anything is created: Helm
// checks the objects against the cluster's OpenAPI schema (as
// docs/operations.md says).
func TestChartInstallRefusesWhatTheSchemaLeavesToKubernetes(t *testing.T) {
	e := newEnv(t)
	for i, set := range []string{
		"extraVolumes[0].name=ca,extraVolumes[0].secret.secretNmae=ca",
		"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerm[0].matchExpressions[0].key=zone",
	} {
		release := fmt.Sprintf("e%d-%d", e.id, i)
		ns := e.ns(fmt.Sprintf("typo%d", i), nil)
		out, err := helm(t, "template", release, chartDir, "--namespace", ns, "--set", set)
		require.NoError(t, err, "the schema leaves %s to Kubernetes: %s", set, out)
		out, err = helm(t, "install", release, chartDir, "--namespace", ns, "--kubeconfig", e.adminKubeconfig(), "--set", set)
		assert.Error(t, err, "helm install --set %s", set)
		assert.Contains(t, out, "unknown field", "--set %s", set)
		_, err = admin.AppsV1().Deployments(ns).Get(e.ctx, release+"-replicator", metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "nothing created: %v", err)
	}
}
