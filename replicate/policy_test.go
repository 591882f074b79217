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
	operator := PushPolicy{
		From: patterns("certs,team-.*"), RBACFrom: patterns("platform"), ToSystem: patterns("kube-public"),
		Protected: []string{"replicator"},
	}
	tests := map[string]struct {
		source, target string
		grantsRights   bool
		want           bool
	}{
		"an ordinary namespace receives":                                             {source: "team-a", target: "default", want: true},
		"a name like a system namespace's is no system namespace":                    {source: "team-a", target: "kube-systems", want: true},
		"kube-system stays closed":                                                   {source: "certs", target: "kube-system"},
		"kube-node-lease stays closed":                                               {source: "certs", target: "kube-node-lease"},
		"an opened system namespace receives from a namespace named plainly":         {source: "certs", target: "kube-public", want: true},
		"an opened system namespace stays closed to a namespace a pattern lets push": {source: "team-a", target: "kube-public"},
		"Roles reach an opened system namespace from the RBAC list's names":          {source: "platform", target: "kube-public", grantsRights: true, want: true},
		"the general list's names do not open it to Roles":                           {source: "certs", target: "kube-public", grantsRights: true},
		"the replicator's own namespace never receives":                              {source: "certs", target: "replicator"},
		"the replicator's own namespace never receives Roles either":                 {source: "platform", target: "replicator", grantsRights: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, operator.AllowsTarget(tt.source, tt.target, tt.grantsRights))
		})
	}
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease"} {
		assert.True(t, IsSystemNamespace(ns), ns)
		assert.False(t, PushPolicy{From: patterns("certs")}.AllowsTarget("certs", ns, false), "%s closed by default", ns)
	}
}

// The policy's check of a source names the list it read, as written, and
// the entry that matched.
func TestPushPolicySourceCheckSaysWhatItRead(t *testing.T) {
	operator := PushPolicy{From: patterns("cert-manager, team-.*"), RBACFrom: patterns("platform")}
	for name, tt := range map[string]struct {
		namespace    string
		grantsRights bool
		want         Lookup
	}{
		"the entry that matched": {namespace: "team-a",
			want: Lookup{Written: Written{Key: "--push-from-namespaces", Value: "cert-manager, team-.*", Entries: 2}, Name: "team-a", Matched: true, Entry: "team-.*"}},
		"no entry matches": {namespace: "tenant",
			want: Lookup{Written: Written{Key: "--push-from-namespaces", Value: "cert-manager, team-.*", Entries: 2}, Name: "tenant"}},
		"the RBAC list for kinds that grant rights": {namespace: "team-a", grantsRights: true,
			want: Lookup{Written: Written{Key: "--push-rbac-from-namespaces", Value: "platform", Entries: 1}, Name: "team-a"}},
	} {
		t.Run(name, func(t *testing.T) {
			c := operator.SourceCheck(tt.namespace, tt.grantsRights)
			assert.Equal(t, []Lookup{tt.want}, c.Checked)
			ok, why := operator.AllowsSource(tt.namespace, tt.grantsRights)
			assert.Equal(t, ok, c.Passed)
			if !ok {
				assert.Equal(t, why, c.Detail, "the refusal is the check's")
			}
		})
	}
}
