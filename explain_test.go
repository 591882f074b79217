package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubereplicator/replicator/replicate"
)

func replicatorDeployment(namespace, name string, args ...string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app.kubernetes.io/name": "replicator"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "replicator", Args: args},
		}}}},
	}
}

func TestExplainTakesTheDeploymentsSettings(t *testing.T) {
	ctx := context.Background()
	chart := replicatorDeployment("replicator", "replicator", "--annotation-prefix=example.com", "--push-from-namespaces=", "--source-cluster=hub=/etc/hub/kubeconfig", "--cluster-name=spoke")
	tests := map[string]struct {
		objects []*appsv1.Deployment
		// forbidden: the caller may not list Deployments.
		forbidden bool
		ref       string
		want      []string
		from      string
		warning   []string
		err       string
	}{
		"the one replicator Deployment":          {objects: []*appsv1.Deployment{chart}, want: []string{"--namespace=replicator", "--annotation-prefix=example.com", "--push-from-namespaces=", "--cluster-name=spoke"}, from: "deployment replicator/replicator"},
		"none: the binary's defaults":            {from: "the binary's defaults"},
		"a Deployment named":                     {objects: []*appsv1.Deployment{chart, replicatorDeployment("other", "r", "--allow-all=true")}, ref: "other/r", want: []string{"--namespace=other", "--allow-all=true"}, from: "deployment other/r"},
		"several: one must be named":             {objects: []*appsv1.Deployment{chart, replicatorDeployment("other", "r")}, err: "several replicator Deployments"},
		"-: the binary's defaults":               {objects: []*appsv1.Deployment{chart}, ref: "-", from: "the binary's defaults"},
		"a Deployment named that does not exist": {ref: "nowhere/r", err: "reading deployment nowhere/r"},
		"a malformed name":                       {ref: "nowhere", err: "not NAMESPACE/NAME"},
		"a caller who may not list Deployments is warned that the binary's defaults are used": {
			objects: []*appsv1.Deployment{chart}, forbidden: true, from: "the binary's defaults",
			warning: []string{"forbidden", "explain needs list on deployments", "the binary's defaults were used"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			client := fake.NewClientset()
			for _, d := range tt.objects {
				_, err := client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
				require.NoError(t, err)
			}
			if tt.forbidden {
				forbidDeployments(client)
			}
			settings, err := deploymentArgs(ctx, client, tt.ref)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, settings.args, "source clusters left out: explain reads this cluster only; the Deployment's namespace is the replicator's own")
			assert.Contains(t, settings.from, tt.from)
			if len(tt.warning) == 0 {
				assert.Empty(t, settings.warning)
			}
			for _, w := range tt.warning {
				assert.Contains(t, settings.warning, w)
			}
		})
	}
}

func TestExplainReadsTheObjectName(t *testing.T) {
	for in, want := range map[string]string{
		"secret/shop/wildcard-tls": "Secret", "Secrets/shop/x": "Secret", "cm/a/b": "ConfigMap",
		"sa/a/b": "ServiceAccount", "rolebinding/a/b": "RoleBinding", "role/a/b": "Role",
	} {
		kind, _, _, err := parseObject(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, kind.Name(), in)
	}
	for _, bad := range []string{"secret/shop", "pod/a/b", "secret//b", "secret/A/b", "secret/a/b/c"} {
		_, _, _, err := parseObject(bad)
		assert.Error(t, err, bad)
	}
	_, _, _, err := parseObject("pod/a/b")
	assert.EqualError(t, err, `unknown kind "pod": one of secret, configmap, role, rolebinding, serviceaccount`, "the kinds named from the registry")
}

func TestExplainUsageNamesTheKindsOfTheRegistry(t *testing.T) {
	assert.Contains(t, explainUsage(), `
decisions on the object in dry run, and prints what it would write and why.
It writes nothing. KIND is secret, configmap, role, rolebinding or
serviceaccount. The replicator's settings come from its Deployment's
arguments (--deployment, or the one Deployment labelled
`, "worded and wrapped as before the registry")
}

// forbidDeployments makes client refuse to list or get Deployments, as the
// API server does for a caller without the right.
func forbidDeployments(client *fake.Clientset) {
	client.PrependReactor("*", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "",
			errors.New(`User "alice" cannot list resource "deployments" in API group "apps" at the cluster scope`))
	})
}

// A caller who may not list Deployments gets an answer from the binary's
// defaults, and a warning line that says so and names the right missing,
// in text and in JSON.
func TestExplainWarnsWhenTheDeploymentCannotBeRead(t *testing.T) {
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "certs"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "certs", Name: "tls", Annotations: map[string]string{
			"replicator.v1.mittwald.de/replication-allowed": "true", "replicator.v1.mittwald.de/replication-allowed-namespaces": "shop",
		}}, Data: map[string][]byte{"k": []byte("v")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "tls", Annotations: map[string]string{
			"replicator.v1.mittwald.de/replicate-from": "certs/tls",
		}}},
		replicatorDeployment("replicator", "replicator", "--annotation-prefix=example.com"),
	)
	forbidDeployments(client)
	req := explainRequest{kind: replicate.Secrets(), namespace: "shop", name: "tls", output: "text", timeout: 10 * time.Second}

	var stdout, stderr strings.Builder
	require.Equal(t, 0, explain(client, req, &stdout, &stderr), stderr.String())
	out := stdout.String()
	t.Logf("%s", out)
	assert.Contains(t, out, "settings: the binary's defaults (the replicator's Deployment could not be read)")
	warning := regexp.MustCompile(`(?m)^  warning: .*$`).FindString(out)
	assert.Contains(t, warning, "forbidden", "one line says why")
	assert.Contains(t, warning, "list on deployments", "and names the right missing")
	assert.Contains(t, warning, "the binary's defaults were used")
	assert.Contains(t, out, "pass  replicator.v1.mittwald.de/replication-allowed-namespaces", "the answer is the defaults'")

	stdout.Reset()
	req.output = "json"
	require.Equal(t, 0, explain(client, req, &stdout, &stderr), stderr.String())
	var ex replicate.Explanation
	require.NoError(t, json.Unmarshal([]byte(stdout.String()), &ex))
	require.Len(t, ex.Warnings, 1)
	assert.Contains(t, ex.Warnings[0], "list on deployments")
}

// explain's help lists its own flags and the replicator's that change its
// answer, with what they do in explain: no flag it would ignore.
func TestExplainHelpSaysWhatItDoes(t *testing.T) {
	var stdout, stderr strings.Builder
	require.Equal(t, 0, runExplain([]string{"-h"}, &stdout, &stderr))
	help := stderr.String()
	kubeconfig := regexp.MustCompile(`(?m)^  -kubeconfig string\n\s+(.*)$`).FindStringSubmatch(help)
	require.Len(t, kubeconfig, 2, help)
	assert.Contains(t, kubeconfig[1], "$KUBECONFIG, else ~/.kube/config", "the loading rules explain uses")
	assert.NotContains(t, kubeconfig[1], "empty: in-cluster", "not the replicator's own help")
	for _, listed := range []string{"-context", "-deployment", "-output", "-timeout", "-annotation-prefix", "-push-from-namespaces", "-exclude-namespaces", "-dialects", "-allow-all", "-cluster-name", "-namespace", "-replicate-secrets"} {
		assert.Regexp(t, `(?m)^  `+listed+`\b`, help)
	}
	for _, ignored := range []string{"source-cluster", "leader-elect", "log-level", "status-addr", "workers", "kube-api-qps", "dry-run", "version"} {
		assert.NotContains(t, help, "-"+ignored, "explain ignores it")
	}

	stderr.Reset()
	assert.Equal(t, 2, runExplain([]string{"--source-cluster=hub=/etc/hub", "secret/shop/tls"}, &stdout, &stderr), "a flag explain ignores is refused")
	assert.Contains(t, stderr.String(), "flag provided but not defined: -source-cluster")
}
