package replicate

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPushPolicy(t *testing.T) {
	operator := PushPolicy{From: patterns("cert-manager|certs"), RBACFrom: patterns("platform"), ToSystem: patterns("kube-public")}
	tests := map[string]struct {
		policy       PushPolicy
		namespace    string
		grantsRights bool
		want         bool
		setting      string // named in the refusal
	}{
		"the zero policy lets nobody push":                      {policy: PushPolicy{}, namespace: "certs", setting: SettingPushFrom},
		"a listed namespace may push Secrets":                   {policy: operator, namespace: "certs", want: true},
		"an unlisted namespace may not":                         {policy: operator, namespace: "tenant", setting: SettingPushFrom},
		"a name containing a listed one is not listed":          {policy: operator, namespace: "certs-evil", setting: SettingPushFrom},
		"Roles need the RBAC list":                              {policy: operator, namespace: "certs", grantsRights: true, setting: SettingPushRBACFrom},
		"a namespace on the RBAC list may push Roles":           {policy: operator, namespace: "platform", grantsRights: true, want: true},
		"the RBAC list alone does not open other kinds":         {policy: operator, namespace: "platform", setting: SettingPushFrom},
		"a system namespace is no source unless listed as such": {policy: operator, namespace: "kube-system", setting: SettingPushFrom},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ok, why := tt.policy.AllowsSource(tt.namespace, tt.grantsRights)
			assert.Equal(t, tt.want, ok)
			if tt.want {
				assert.Empty(t, why)
				return
			}
			assert.Contains(t, why, tt.namespace)
			assert.Contains(t, why, tt.setting, "the refusal names the setting to change")
		})
	}
}

func TestPushPolicyTargets(t *testing.T) {
	operator := PushPolicy{ToSystem: patterns("kube-public")}
	for namespace, want := range map[string]bool{
		"kube-system":     false,
		"kube-node-lease": false,
		"kube-public":     true, // named by the operator
		"kube-systems":    true, // not a system namespace
		"default":         true,
		"team-a":          true,
	} {
		assert.Equal(t, want, operator.AllowsTarget(namespace), namespace)
	}
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease"} {
		assert.True(t, IsSystemNamespace(ns), ns)
		assert.False(t, PushPolicy{}.AllowsTarget(ns), "%s closed by default", ns)
	}
}
