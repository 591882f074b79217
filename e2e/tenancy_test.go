package e2e

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubereplicator/replicator/replicate"
)

// The tests here attack the push policy (SPEC "Who may push") as a tenant
// would: an identity that can do anything with the replicated kinds in its
// own namespace and nothing elsewhere, against the replicator as the chart
// runs it.

// TestTenantCannotPushOutOfItsNamespace installs the chart with its default
// values and attacks it as a namespace admin: every kind pushed into
// kube-system and into another tenant's namespace, and every annotation that
// might widen the policy. Nothing lands, no right is gained, each refusal is
// an Event naming the setting and a metric. Then the operator opens push for
// the namespaces it trusts, and the same kinds of push work from there only.
func TestTenantCannotPushOutOfItsNamespace(t *testing.T) {
	e := newEnv(t)
	release := fmt.Sprintf("e%d", e.id)
	ns, sa, p := e.installAndRun(release)
	args := e.deploymentArgs(ns, release)
	assert.Contains(t, args, "--push-from-namespaces=", "the chart lets no namespace push by default")
	assert.Contains(t, args, "--push-rbac-from-namespaces=")
	assert.Contains(t, args, "--push-to-system-namespaces=")

	mine := e.ns("tenant", nil)
	victim := e.ns("victim", map[string]string{"team": fmt.Sprintf("victim-%d", e.id)})
	shared := e.ns("shared", nil)
	platform := e.ns("platform", nil)
	tenant := e.namespaceAdmin(mine)
	a := e.a
	self := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "admin", Namespace: mine}}
	// Unique in the shared system namespaces.
	reader, signer, tokenName := fmt.Sprintf("e%d-reader", e.id), fmt.Sprintf("e%d-signer", e.id), fmt.Sprintf("bootstrap-token-e%05d", e.id%100000)

	// 1. A Role and a RoleBinding to it, pushed into kube-system: the
	// tenant would read every Secret there.
	_, err := tenant.RbacV1().Roles(mine).Create(e.ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: reader, Annotations: pushedTo(a, "kube-system")},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = tenant.RbacV1().RoleBindings(mine).Create(e.ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: reader, Annotations: pushedTo(a, "kube-system")},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: reader}, Subjects: self,
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// 2. A RoleBinding to a Role that exists only in kube-system.
	_, err = tenant.RbacV1().RoleBindings(mine).Create(e.ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: signer, Annotations: pushedTo(a, "kube-system")},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "system:controller:bootstrap-signer"}, Subjects: self,
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// 3. A bootstrap token (joins nodes on a kubeadm cluster), by name and
	// by a label selector on the system namespace.
	_, err = tenant.CoreV1().Secrets(mine).Create(e.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: tokenName, Annotations: map[string]string{a.ReplicateTo: "kube-system", a.ReplicateToMatching: "kubernetes.io/metadata.name=kube-system"}},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{"token-id": tokenName[len(tokenName)-6:], "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// 4. Every kind planted in another tenant's namespace, by name and by
	// its labels.
	planted := map[string]string{a.ReplicateTo: victim, a.ReplicateToMatching: "team=" + fmt.Sprintf("victim-%d", e.id)}
	e.createIn(tenant, secret(mine, "planted", corev1.SecretTypeOpaque, map[string]string{"k": "planted-data"}, planted))
	_, err = tenant.CoreV1().ConfigMaps(mine).Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "planted", Annotations: planted}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = tenant.CoreV1().ServiceAccounts(mine).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "planted", Annotations: planted}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = tenant.RbacV1().RoleBindings(mine).Create(e.ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "planted", Annotations: planted},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: reader}, Subjects: self,
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// 5. Annotations that might widen the policy.
	source := func(name string, annotations map[string]string) {
		t.Helper()
		e.createIn(tenant, secret(mine, name, corev1.SecretTypeOpaque, map[string]string{"k": "widened"}, annotations))
	}
	toVictim := pushedTo(a, victim)
	source("allow-annotations", with(toVictim, a.ReplicationAllowed, "true", a.ReplicationAllowedNS, ".*"))
	source("posing-as-replica", with(toVictim, a.ReplicatedFrom, shared+"/wildcard"))
	// Three Secrets the replicator does not read at all: no Event says it
	// saw them; the relay, created after them, does.
	source("other-prefix", map[string]string{replicate.NewAnnotations(replicate.DefaultPrefix).ReplicateTo: victim})
	source("reflector-dialect", map[string]string{
		"reflector.v1.k8s.emberstack.com/reflection-allowed": "true", "reflector.v1.k8s.emberstack.com/reflection-allowed-namespaces": victim,
		"reflector.v1.k8s.emberstack.com/reflection-auto-enabled": "true", "reflector.v1.k8s.emberstack.com/reflection-auto-namespaces": victim,
	})
	source("kubed-dialect", map[string]string{"kubed.appscode.com/sync": ""})
	// A placeholder that pulls what it may and pushes it on.
	e.create(secret(shared, "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "shared-cert"}, e.allow(mine)))
	source("relay", with(toVictim, a.ReplicateFrom, shared+"/wildcard"))

	// Each push refused, on the object, naming the setting that refuses it
	// (objects of several kinds are named "planted", and reader is a Role
	// and a RoleBinding).
	for _, o := range []struct{ kind, name, setting string }{
		{"Secret", tokenName, replicate.SettingPushFrom},
		{"Secret", "planted", replicate.SettingPushFrom},
		{"Secret", "allow-annotations", replicate.SettingPushFrom},
		{"Secret", "posing-as-replica", replicate.SettingPushFrom},
		{"Secret", "relay", replicate.SettingPushFrom},
		{"ConfigMap", "planted", replicate.SettingPushFrom},
		{"ServiceAccount", "planted", replicate.SettingPushFrom},
		{"RoleBinding", "planted", replicate.SettingPushRBACFrom},
		{"Role", reader, replicate.SettingPushRBACFrom},
		{"RoleBinding", reader, replicate.SettingPushRBACFrom},
		{"RoleBinding", signer, replicate.SettingPushRBACFrom},
	} {
		ev := e.waitForEvent(admin, eventsOn{Kind: o.kind, Namespace: mine, Name: o.name, Reason: replicate.ReasonPushDenied}, 0)
		assert.Contains(t, ev.Message, o.setting, "%s %s", o.kind, o.name)
	}
	// The relay is filled: pull into the tenant's own namespace works.
	e.waitData(mine, "relay", map[string]string{"k": "shared-cert"})
	// Those reconciles done, and every Secret before the marker.
	e.caughtUp(p)

	for _, name := range []string{reader, signer, tokenName} {
		assert.Empty(t, e.kindsNamed("kube-system", name), "nothing of the tenant's in kube-system")
	}
	for _, name := range []string{"planted", "allow-annotations", "posing-as-replica", "other-prefix", "reflector-dialect", "kubed-dialect", "relay"} {
		assert.Empty(t, e.kindsNamed(victim, name), "nothing of the tenant's in another tenant's namespace")
	}
	_, err = tenant.CoreV1().Secrets("kube-system").List(e.ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "the tenant gained no right in kube-system: %v", err)
	_, err = tenant.CoreV1().Secrets(victim).List(e.ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "nor in the other tenant's namespace: %v", err)
	assert.False(t, e.subjectMay(mine, "admin", "get", "", "secrets", "kube-system"))
	for _, kind := range []string{"Secret", "ConfigMap", "ServiceAccount", "Role", "RoleBinding"} {
		v, err := p.metric("replicator_problems_total", map[string]string{"kind": kind, "reason": replicate.ReasonPushDenied})
		require.NoError(t, err)
		assert.GreaterOrEqual(t, v, 1.0, "%s refusals counted", kind)
	}

	// The operator opens push for the namespaces it trusts: one chart
	// value each.
	p.stop(t)
	out, err := helm(t, "upgrade", release, chartDir, "--namespace", ns, "--kubeconfig", e.adminKubeconfig(), "--reuse-values",
		"--set", "pushFromNamespaces="+shared, "--set", "pushRBACFromNamespaces="+platform, "--set", "pushToSystemNamespaces=kube-public")
	require.NoError(t, err, out)
	assert.Contains(t, out, "allowed from namespaces matching \""+shared+"\"", "NOTES say what is open")
	p = e.chartReplicator(ns, release, sa)

	public := fmt.Sprintf("e%d-wildcard", e.id)
	t.Cleanup(func() { _ = admin.CoreV1().Secrets("kube-public").Delete(e.ctx, public, metav1.DeleteOptions{}) })
	e.create(secret(shared, public, corev1.SecretTypeOpaque, map[string]string{"k": "public-data"}, pushedTo(a, victim+"|kube-public|kube-system")))
	e.waitData(victim, public, map[string]string{"k": "public-data"})
	e.waitData("kube-public", public, map[string]string{"k": "public-data"})
	assert.Contains(t, e.waitEvent(shared, public, replicate.ReasonPushDenied), replicate.SettingPushToSystem, "kube-system stays closed")
	configMaps, serviceAccounts, roles, bindings := e.objects(configMapKind), e.objects(serviceAccountKind), e.objects(roleKind), e.objects(roleBindingKind)
	configMaps.create(shared, "settings", pushedTo(a, victim), nil, configMapKind.content(1))
	serviceAccounts.create(shared, "puller", pushedTo(a, victim), nil, serviceAccountKind.content(1))
	roles.create(platform, "config-reader", pushedTo(a, victim), nil, roleKind.content(2))
	bindings.create(platform, "viewers", pushedTo(a, victim), nil, roleBindingKind.content(1))
	configMaps.wait(victim, "settings", configMapKind.content(1))
	serviceAccounts.wait(victim, "puller", serviceAccountKind.content(1))
	roles.wait(victim, "config-reader", roleKind.content(2))
	bindings.wait(victim, "viewers", roleBindingKind.content(1))
	// A namespace trusted for Secrets is not trusted for Roles.
	roles.create(shared, "shared-role", pushedTo(a, victim), nil, roleKind.content(1))
	assert.Contains(t, e.waitEvent(shared, "shared-role", replicate.ReasonPushDenied), replicate.SettingPushRBACFrom)
	// And the tenant still cannot push: the replicator started again has
	// reconciled every object of every kind it found at its start.
	e.caughtUp(p, kinds...)
	assert.Empty(t, e.kindsNamed(victim, "planted"))
	assert.Empty(t, e.kindsNamed(victim, "shared-role"))
	assert.Empty(t, e.kindsNamed("kube-system", public))
}

// TestTightenedPushPolicyDeletesOnlyOurReplicas runs the binary with its
// defaults (any namespace may push Secrets and ConfigMaps, as
// kubernetes-replicator), then restarts it with a list: the replicas of
// sources no longer allowed are deleted, foreign objects stay.
func TestTightenedPushPolicyDeletesOnlyOurReplicas(t *testing.T) {
	e := newEnv(t)
	team, certs, app := e.ns("team", nil), e.ns("certs", nil), e.ns("app", nil)
	base := []string{"--annotation-prefix", e.prefix, "--leader-elect=false"}
	p := e.startReplicator("open", base...)
	e.create(secret(app, "foreign", corev1.SecretTypeOpaque, map[string]string{"k": "mine"}, nil))
	e.create(secret(team, "config", corev1.SecretTypeOpaque, map[string]string{"k": "team"}, pushedTo(e.a, app)))
	e.create(secret(team, "foreign", corev1.SecretTypeOpaque, map[string]string{"k": "team"}, pushedTo(e.a, app)))
	e.create(secret(certs, "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "cert"}, pushedTo(e.a, app)))
	configMaps := e.objects(configMapKind)
	configMaps.create(team, "settings", pushedTo(e.a, app), nil, configMapKind.content(1))
	e.waitData(app, "config", map[string]string{"k": "team"})
	e.waitData(app, "wildcard", map[string]string{"k": "cert"})
	configMaps.wait(app, "settings", configMapKind.content(1))
	e.waitEvent(team, "foreign", replicate.ReasonTargetConflict)
	p.stop(t)

	p = e.startReplicator("tightened", append(base, "--push-from-namespaces="+certs)...)
	e.waitGone(app, "config")
	configMaps.waitGone(app, "settings")
	assert.Contains(t, e.waitEvent(team, "config", replicate.ReasonPushDenied), replicate.SettingPushFrom)
	e.modify(certs, "wildcard", func(s *corev1.Secret) { s.Data["k"] = []byte("cert-2") })
	e.waitData(app, "wildcard", map[string]string{"k": "cert-2"})
	// Every source reconciled by the replicator started again, the team's
	// foreign one included.
	e.caughtUp(p)
	assert.Equal(t, "mine", string(e.mustGet(app, "foreign").Data["k"]), "a foreign object is never deleted")
	v, err := p.metric("replicator_writes_total", map[string]string{"kind": "Secret", "mode": "push", "action": "delete"})
	require.NoError(t, err)
	assert.Equal(t, 1.0, v, "Secret replicas deleted: the team's, nothing else")
}

// TestPulledRolesGrantRightsOnlyInTheirNamespace pulls a Role and a
// RoleBinding into a tenant's namespace with the chart's default values and
// RBAC, and asks the API server where the bound identity may now act: in that
// namespace only.
func TestPulledRolesGrantRightsOnlyInTheirNamespace(t *testing.T) {
	e := newEnv(t)
	_, _, p := e.installAndRun(fmt.Sprintf("e%d", e.id))
	platform, mine, other := e.ns("platform", nil), e.ns("tenant", nil), e.ns("other", nil)
	tenant := e.namespaceAdmin(mine)
	_, err := admin.CoreV1().ServiceAccounts(mine).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The sources. The binding's role does not exist in platform, so the
	// binding grants nothing there: any right the subject gets comes from
	// the copies.
	allow := e.allow(mine)
	_, err = admin.RbacV1().Roles(platform).Create(e.ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "config-reader", Annotations: allow},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	appReader := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "app-config-reader"}
	_, err = admin.RbacV1().RoleBindings(platform).Create(e.ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "config-readers", Annotations: allow},
		RoleRef:    appReader,
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "app", Namespace: mine}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.False(t, e.subjectMay(mine, "app", "list", "", "configmaps", platform), "the sources grant nothing")

	// The tenant's placeholders: an empty Role, and a binding to it with
	// no subjects.
	from := func(name string) map[string]string {
		return map[string]string{e.a.ReplicateFrom: platform + "/" + name}
	}
	_, err = tenant.RbacV1().Roles(mine).Create(e.ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: appReader.Name, Annotations: from("config-reader")}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = tenant.RbacV1().RoleBindings(mine).Create(e.ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "config-readers", Annotations: from("config-readers")},
		RoleRef:    appReader,
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	e.eventually(wait, "the pulled binding grants in the tenant's namespace", func() error {
		if !e.subjectMay(mine, "app", "list", "", "configmaps", mine) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	assert.True(t, e.subjectMay(mine, "app", "get", "", "configmaps", mine))
	e.caughtUp(p, roleKind, roleBindingKind)
	for _, elsewhere := range []string{platform, other, "kube-system", ""} {
		assert.False(t, e.subjectMay(mine, "app", "list", "", "configmaps", elsewhere), "no right in %q", elsewhere)
	}
	assert.False(t, e.subjectMay(mine, "app", "list", "", "secrets", mine), "no right the source did not give")
}
