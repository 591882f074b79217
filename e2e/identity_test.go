package e2e

import (
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// This file makes the identities that attack the replicator: tenants with
// namespaced rights only.

// tenant returns a client for a ServiceAccount that may only read and write
// Secrets in the given namespaces (the first holds the account).
func (e *env) tenant(namespaces ...string) kubernetes.Interface {
	e.t.Helper()
	rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "delete"}}}
	return e.identity(namespaces[0], "tenant", rules, namespaces...)
}

// identity creates the ServiceAccount home/name with a Role holding rules in
// each of namespaces, and returns a client acting as it.
func (e *env) identity(home, name string, rules []rbacv1.PolicyRule, namespaces ...string) kubernetes.Interface {
	e.t.Helper()
	_, err := admin.CoreV1().ServiceAccounts(home).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	for _, ns := range namespaces {
		_, err := admin.RbacV1().Roles(ns).Create(e.ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		require.NoError(e.t, err)
		_, err = admin.RbacV1().RoleBindings(ns).Create(e.ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: home}},
		}, metav1.CreateOptions{})
		require.NoError(e.t, err)
	}
	cfg, err := cluster.ServiceAccountConfig(e.ctx, home, name)
	require.NoError(e.t, err)
	cfg.WarningHandler = cluster.Config.WarningHandler
	return kubernetes.NewForConfigOrDie(cfg)
}

// namespaceAdmin returns a client for the ServiceAccount "admin" in
// namespace, holding every verb on the replicated kinds there (what a
// namespace admin has, bind and escalate included) and nothing elsewhere.
func (e *env) namespaceAdmin(namespace string) kubernetes.Interface {
	e.t.Helper()
	return e.identity(namespace, "admin", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps", "serviceaccounts"}, Verbs: []string{"*"}},
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles", "rolebindings"}, Verbs: []string{"*"}},
	}, namespace)
}

// subjectMay asks the API server whether the ServiceAccount namespace/name
// may do verb on resource in target ("" for cluster-wide).
func (e *env) subjectMay(namespace, name, verb, group, resource, target string) bool {
	e.t.Helper()
	r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(e.ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + namespace + ":" + name,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: target, Verb: verb, Group: group, Resource: resource,
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	return r.Status.Allowed
}
