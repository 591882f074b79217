package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
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
		ref     string
		want    []string
		from    string
		err     string
	}{
		"the one replicator Deployment":          {objects: []*appsv1.Deployment{chart}, want: []string{"--namespace=replicator", "--annotation-prefix=example.com", "--push-from-namespaces=", "--cluster-name=spoke"}, from: "deployment replicator/replicator"},
		"none: the binary's defaults":            {from: "the binary's defaults"},
		"a Deployment named":                     {objects: []*appsv1.Deployment{chart, replicatorDeployment("other", "r", "--allow-all=true")}, ref: "other/r", want: []string{"--namespace=other", "--allow-all=true"}, from: "deployment other/r"},
		"several: one must be named":             {objects: []*appsv1.Deployment{chart, replicatorDeployment("other", "r")}, err: "several replicator Deployments"},
		"-: the binary's defaults":               {objects: []*appsv1.Deployment{chart}, ref: "-", from: "the binary's defaults"},
		"a Deployment named that does not exist": {ref: "nowhere/r", err: "reading deployment nowhere/r"},
		"a malformed name":                       {ref: "nowhere", err: "not NAMESPACE/NAME"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			client := fake.NewClientset()
			for _, d := range tt.objects {
				_, err := client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
				require.NoError(t, err)
			}
			args, from, err := deploymentArgs(ctx, client, tt.ref)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, args, "source clusters left out: explain reads this cluster only; the Deployment's namespace is the replicator's own")
			assert.Contains(t, from, tt.from)
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
