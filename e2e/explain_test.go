package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubereplicator/replicator/replicate"
)

// explainText runs `replicator explain` (text) with the env's settings and
// returns its output and exit error.
func (e *env) explainText(kubeconfig, object string) (string, string, error) {
	cmd := exec.Command(binary, "explain", "--kubeconfig", kubeconfig, "--deployment=-",
		"--annotation-prefix", e.prefix, "--push-from-namespaces=.*", object)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestExplainSaysWhy runs explain as a person would on three cases (a
// filled placeholder, one in a namespace the source does not list, a
// source whose push meets an object it does not own) and prints its output
// (docs/troubleshooting.md quotes it); then bad input: each a one-line
// error and a non-zero exit.
func TestExplainSaysWhy(t *testing.T) {
	e := newEnv(t)
	e.start()
	certs, shop, other, team := e.ns("certs", nil), e.ns("shop", nil), e.ns("other", nil), e.ns("team", nil)
	// The object no replicator made exists before the source would push.
	e.create(secret(other, "wildcard-tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "MINE", "tls.key": "MINE-KEY"}, nil))
	e.create(secret(certs, "wildcard-tls", corev1.SecretTypeTLS, tlsV1, with(e.allow(shop+",blog-.*"), e.a.ReplicateTo, team+","+other)))
	e.create(e.tlsPlaceholder(shop, "wildcard-tls", certs+"/wildcard-tls"))
	e.create(e.tlsPlaceholder(other, "tls", certs+"/wildcard-tls"))
	e.waitData(shop, "wildcard-tls", tlsV1)
	e.waitData(team, "wildcard-tls", tlsV1)
	e.waitEvent(other, "tls", replicate.ReasonDenied)
	e.waitEvent(certs, "wildcard-tls", replicate.ReasonTargetConflict)
	kubeconfig := e.adminKubeconfig()

	want := map[string][]string{
		"secret/" + shop + "/wildcard-tls": {
			"pull target: " + e.a.ReplicateFrom + ": " + certs + "/wildcard-tls",
			"pass  " + e.a.ReplicationAllowedNS + ": allows namespace " + shop + "\n" +
				`          checked "` + shop + `,blog-.*": matched by entry ` + "`" + shop + "`\n",
			"last data change written: ",
			"would write: nothing",
		},
		"secret/" + other + "/tls": {
			"FAIL  " + e.a.ReplicationAllowedNS + ": source " + certs + "/wildcard-tls does not allow namespace " + other + "\n" +
				`          checked "` + shop + `,blog-.*": no entry matches ` + "`" + other + "`\n",
			"would write: nothing",
			"event on " + other + "/tls: Warning ReplicationDenied",
		},
		"secret/" + certs + "/wildcard-tls": {
			"pass  push policy",
			`checked --push-from-namespaces ".*": matched by entry ` + "`.*`",
			"reads " + e.a.ReplicateTo + ` "` + team + "," + other + `"`,
			"target " + team + ": up to date (" + e.a.ReplicateTo + ": matched by entry `" + team + "`)",
			"target " + other + ": conflict (" + e.a.ReplicateTo + ": matched by entry `" + other + "`)",
			"pulled by " + shop + "/wildcard-tls: allowed",
			"pulled by " + other + "/tls: refused",
			"event on " + certs + "/wildcard-tls: Warning TargetConflict",
		},
	}
	for object, lines := range want {
		out, stderr, err := e.explainText(kubeconfig, object)
		require.NoError(t, err, stderr)
		t.Logf("$ replicator explain %s\n%s", object, out)
		for _, line := range lines {
			assert.Contains(t, out, line, object)
		}
	}

	// The same binary as a kubectl plugin.
	plugins := t.TempDir()
	require.NoError(t, os.Symlink(binary, filepath.Join(plugins, "kubectl-replicator")))
	plugin := exec.Command(filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "kubectl"),
		"replicator", "explain", "--deployment=-", "--annotation-prefix", e.prefix, "secret/"+shop+"/wildcard-tls")
	plugin.Env = append(os.Environ(), "PATH="+plugins+":"+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
	pluginOut, err := plugin.CombinedOutput()
	require.NoError(t, err, "%s", pluginOut)
	assert.Contains(t, string(pluginOut), "would write: nothing", "kubectl replicator explain")

	// Bad input: one line on stderr, a non-zero exit.
	for object, why := range map[string]string{
		"pod/" + shop + "/x":           "unknown kind",
		"secret/" + shop:               "is not KIND/NAMESPACE/NAME",
		"secret/" + shop + "/Bad_Name": "secret/" + shop + "/Bad_Name",
		"secret/" + shop + "/missing":  "not found",
	} {
		out, stderr, err := e.explainText(kubeconfig, object)
		assert.Error(t, err, object)
		assert.Empty(t, out, object)
		assert.Contains(t, stderr, why, object)
		assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %q", stderr)
	}

	// A caller who may read only its own namespace cannot list Secrets
	// cluster-wide: said in one line.
	sa := "reader"
	_, err = admin.CoreV1().ServiceAccounts(shop).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.RbacV1().RoleBindings(shop).Create(e.ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: shop}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg, err := cluster.ServiceAccountConfig(e.ctx, shop, sa)
	require.NoError(t, err)
	out, stderr, err := e.explainText(e.kubeconfig(cfg), "secret/"+shop+"/wildcard-tls")
	assert.Error(t, err)
	assert.Empty(t, out)
	assert.Contains(t, stderr, "cannot list")
	assert.Contains(t, stderr, "forbidden")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %q", stderr)

	// A caller who may read Secrets and namespaces cluster-wide but not
	// Deployments gets the answer of the binary's defaults, and a warning
	// line that says so.
	reader := e.clusterReader(shop, "secrets", "namespaces")
	var warnedOut, warnedErr strings.Builder
	e.eventually(wait, "the reader's rights take effect", func() error {
		warnedOut.Reset()
		warnedErr.Reset()
		cmd := exec.Command(binary, "explain", "--kubeconfig", reader, "--annotation-prefix", e.prefix, "secret/"+shop+"/wildcard-tls")
		cmd.Stdout, cmd.Stderr = &warnedOut, &warnedErr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v: %s", err, warnedErr.String())
		}
		return nil
	})
	t.Logf("$ replicator explain secret/%s/wildcard-tls\n%s", shop, warnedOut.String())
	assert.Contains(t, warnedOut.String(), "  settings: the binary's defaults (the replicator's Deployment could not be read), --annotation-prefix given here\n")
	assert.Regexp(t, "(?m)^  warning: cannot list deployments .*forbidden; explain needs list on deployments .* the binary's defaults were used", warnedOut.String())
	assert.Contains(t, warnedOut.String(), "would write: nothing")
}

// clusterReader returns a kubeconfig for a new ServiceAccount in namespace
// that may get, list and watch resources (core) cluster-wide, and nothing
// else.
func (e *env) clusterReader(namespace string, resources ...string) string {
	e.t.Helper()
	name := namespace + "-reader"
	_, err := admin.CoreV1().ServiceAccounts(namespace).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "cluster-reader"}}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	_, err = admin.RbacV1().ClusterRoles().Create(e.ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: resources, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(e.ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "cluster-reader", Namespace: namespace}},
	}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	e.t.Cleanup(func() {
		_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	cfg, err := cluster.ServiceAccountConfig(e.ctx, namespace, "cluster-reader")
	require.NoError(e.t, err)
	return e.kubeconfig(cfg)
}
