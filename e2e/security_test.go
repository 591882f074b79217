package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestTenantCannotObtainAnotherNamespacesSecret tries every annotation trick a
// tenant who can only write Secrets in its own namespaces has, against a
// Secret shared with one other namespace, and checks that its value never
// reaches anything the tenant can read.
func TestTenantCannotObtainAnotherNamespacesSecret(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	victim := e.ns("victim", nil)
	friend, other := e.ns("friend", nil), e.ns("other", nil)
	// Namespaces named to tempt sloppy pattern matching.
	evilPrefix, evilSuffix := e.ns("friend-evil", nil), e.ns("evil-other", nil)
	mine, relay := e.ns("tenant", nil), e.ns("tenant-relay", nil)
	tenantNamespaces := []string{mine, relay, evilPrefix, evilSuffix}
	tenant := e.tenant(tenantNamespaces...)

	value := fmt.Sprintf("victim-value-%d", e.id)
	e.create(secret(victim, "db", corev1.SecretTypeOpaque, map[string]string{"password": value},
		e.allow(friend+"|"+other)))
	// A source that allows replication but lists no namespace.
	noList := map[string]string{e.a.ReplicationAllowed: "true"}
	e.create(secret(victim, "nolist", corev1.SecretTypeOpaque, map[string]string{"password": value}, noList))
	// The tenant cannot simply read it.
	_, err := tenant.CoreV1().Secrets(victim).Get(e.ctx, "db", metav1.GetOptions{})
	require.True(t, apierrors.IsForbidden(err), "the tenant has no access of its own: %v", err)

	create := func(namespace, name string, annotations map[string]string) {
		t.Helper()
		_, err := tenant.CoreV1().Secrets(namespace).Create(e.ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}, Type: corev1.SecretTypeOpaque,
		}, metav1.CreateOptions{})
		require.NoError(t, err, "%s/%s", namespace, name)
	}
	from := func(ref string) map[string]string { return map[string]string{e.a.ReplicateFrom: ref} }
	attempts := map[string]string{
		"plain pull without permission":       victim + "/db",
		"pull of a source without a list":     victim + "/nolist",
		"leading and trailing whitespace":     "  " + victim + "/db\t",
		"whitespace inside":                   victim + " / db",
		"a Cyrillic look-alike namespace":     strings.Replace(victim, "i", "\u0456", 1) + "/db",
		"dot-dot before the namespace":        "../" + victim + "/db",
		"dot-dot after the own namespace":     mine + "/../" + victim + "/db",
		"an overlong name":                    victim + "/" + strings.Repeat("d", 300),
		"a cluster prefix for this cluster":   "local:" + victim + "/db",
		"a second slash":                      victim + "/db/password",
		"an upper-case namespace":             strings.ToUpper(victim) + "/db",
		"a percent-encoded slash":             victim + "%2Fdb",
		"an empty reference":                  "",
		"a placeholder named like the source": "db",
	}
	i := 0
	for why, ref := range attempts {
		name := fmt.Sprintf("try-%d", i)
		if why == "a placeholder named like the source" {
			name = "db"
		}
		i++
		create(mine, name, from(ref))
		t.Logf("%s: %s/%s replicate-from %q", why, mine, name, ref)
	}
	// Namespaces whose names contain an allowed one.
	create(evilPrefix, "db", from(victim+"/db"))
	create(evilSuffix, "db", from(victim+"/db"))
	// A chain through a namespace the tenant controls: the relay opens
	// itself to the tenant and pulls from the victim.
	create(relay, "db", with(e.allow(".*"), e.a.ReplicateFrom, victim+"/db"))
	create(mine, "via-relay", from(relay+"/db"))

	// Every one of them reconciled: some say so, and the marker comes after
	// them all.
	e.waitEvent(mine, "db", "ReplicationCycle")
	e.waitEvent(evilPrefix, "db", "ReplicationDenied")
	e.waitEvent(evilSuffix, "db", "ReplicationDenied")
	e.waitEvent(relay, "db", "ReplicationDenied")
	e.caughtUp(r)

	for _, ns := range tenantNamespaces {
		list, err := tenant.CoreV1().Secrets(ns).List(e.ctx, metav1.ListOptions{})
		require.NoError(t, err)
		for _, s := range list.Items {
			for k, v := range s.Data {
				assert.NotContains(t, string(v), value, "%s/%s key %s holds the victim's value", ns, s.Name, k)
			}
			for k, v := range s.Annotations {
				assert.NotContains(t, v, value, "%s/%s annotation %s", ns, s.Name, k)
			}
		}
	}
	// The friends do get it: the source is not simply broken.
	e.create(secret(friend, "db", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: victim + "/db"}))
	e.waitData(friend, "db", map[string]string{"password": value})
}
