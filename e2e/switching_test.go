package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubereplicator/replicator/replicate"
)

// TestSwitchingAdoptsTheCopiesOtherReplicatorsMade leaves copies of a source
// as kubernetes-replicator, reflector and kubed leave them (their own
// annotations and labels), plus a look-alike that no replicator made. This
// replicator takes over the three copies (Event Adopted), keeps them in sync,
// repairs them and removes them with their source; the look-alike is never
// touched.
func TestSwitchingAdoptsTheCopiesOtherReplicatorsMade(t *testing.T) {
	e := newEnv(t)
	certs := e.ns("certs", nil)
	byReplicator, byReflector, byKubed, lookAlike := e.ns("kr", nil), e.ns("reflector", nil), e.ns("kubed", nil), e.ns("plain", nil)
	old := map[string]string{"tls.crt": "OLD-CERT", "tls.key": "OLD-KEY"}
	copyIn := func(namespace string, annotations, labels map[string]string) {
		s := secret(namespace, "wildcard", corev1.SecretTypeTLS, old, annotations)
		s.Labels = labels
		e.create(s)
	}
	// The source as kubernetes-replicator left it, pushing.
	all := byReplicator + "," + byReflector + "," + byKubed + "," + lookAlike
	source := e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, map[string]string{e.a.ReplicateTo: all}))
	// kubernetes-replicator: its bookkeeping under our prefix, no marker,
	// the version of the source it copied (the source has not changed
	// since).
	copyIn(byReplicator, map[string]string{e.a.ReplicatedAt: "2026-01-01T00:00:00Z", e.a.ReplicatedFromVersion: source.ResourceVersion, e.a.ReplicatedKeys: "tls.crt,tls.key"}, nil)
	// reflector: an auto copy naming its source.
	copyIn(byReflector, map[string]string{
		"reflector.v1.k8s.emberstack.com/reflects":          certs + "/wildcard",
		"reflector.v1.k8s.emberstack.com/auto-reflects":     "True",
		"reflector.v1.k8s.emberstack.com/reflected-version": "12345",
		"reflector.v1.k8s.emberstack.com/reflected-at":      `"2026-01-01T00:00:00.0000000+00:00"`,
	}, nil)
	// kubed: origin labels and annotation.
	copyIn(byKubed, map[string]string{"kubed.appscode.com/origin": fmt.Sprintf(`{"namespace":%q,"name":"wildcard","resourceVersion":"12345"}`, certs)},
		map[string]string{"kubed.appscode.com/origin.name": "wildcard", "kubed.appscode.com/origin.namespace": certs, "kubed.appscode.com/origin.cluster": "unicorn"})
	// Nobody's copy: same name, no bookkeeping.
	mine := e.create(secret(lookAlike, "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "MINE", "tls.key": "MINE-KEY"}, nil))

	r := e.start()
	adopted := []string{byReplicator, byReflector, byKubed}
	for _, ns := range adopted {
		s := e.waitData(ns, "wildcard", tlsV1)
		assert.Equal(t, certs+"/wildcard", s.Annotations[e.a.ReplicatedFrom], "%s: marked as ours", ns)
	}
	msg := e.waitEvent(certs, "wildcard", replicate.ReasonAdopted)
	for _, ns := range adopted {
		assert.Contains(t, msg, ns)
	}
	assert.Contains(t, e.waitEvent(certs, "wildcard", replicate.ReasonTargetConflict), lookAlike)

	// From now on they are ours: renewed, repaired, removed with the source.
	e.modify(certs, "wildcard", func(s *corev1.Secret) {
		s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
	})
	for _, ns := range adopted {
		e.waitData(ns, "wildcard", tlsV2)
	}
	e.modify(byKubed, "wildcard", func(s *corev1.Secret) { s.Data["tls.crt"] = []byte("EDITED") })
	e.waitData(byKubed, "wildcard", tlsV2)
	e.delete(certs, "wildcard")
	for _, ns := range adopted {
		e.waitGone(ns, "wildcard")
	}
	e.caughtUp(r)
	e.unchanged(mine, "the look-alike is never touched")
}

// TestDryRunWritesNothingAndSaysWhatItWould runs the binary with --dry-run on
// a cluster where every kind of write is due (a placeholder to fill, replicas
// to create, a copy to adopt, a stale replica to delete): it logs and counts
// each, and sends no write request at all.
func TestDryRunWritesNothingAndSaysWhatItWould(t *testing.T) {
	e := newEnv(t)
	certs, app, fresh, copied, stale := e.ns("certs", nil), e.ns("app", nil), e.ns("fresh", nil), e.ns("copied", nil), e.ns("stale", nil)
	source := e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, map[string]string{
		e.a.ReplicationAllowed: "true", e.a.ReplicationAllowedNS: app, e.a.ReplicateTo: fresh + "," + copied,
	}))
	e.create(e.tlsPlaceholder(app, "wildcard", certs+"/wildcard"))
	e.create(secret(copied, "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": "OLD-CERT", "tls.key": "OLD-KEY"},
		map[string]string{e.a.ReplicatedAt: "2026-01-01T00:00:00Z", e.a.ReplicatedFromVersion: source.ResourceVersion}))
	e.create(secret(stale, "wildcard", corev1.SecretTypeTLS, tlsV1, map[string]string{e.a.ReplicatedFrom: certs + "/wildcard"}))

	p := e.startReplicator("dry-run", "--annotation-prefix", e.prefix, "--dry-run", "--log-format=json")
	for _, want := range []map[string]string{
		{"kind": "Secret", "mode": "pull", "action": "update"},
		{"kind": "Secret", "mode": "push", "action": "create"},
		{"kind": "Secret", "mode": "push", "action": "adopt"},
		{"kind": "Secret", "mode": "push", "action": "delete"},
	} {
		e.eventually(wait, fmt.Sprintf("dry-run write %v counted", want), func() error {
			if v, err := p.metric("replicator_dry_run_writes_total", want); err != nil || v != 1 {
				return fmt.Errorf("%v (%v)", v, err)
			}
			return nil
		})
	}
	logs := p.logs.String()
	for _, want := range []string{`"action":"create"`, `"action":"adopt"`, `"action":"delete"`, `"action":"update"`, fresh, copied, stale, app} {
		assert.Contains(t, logs, want)
	}
	assert.Contains(t, logs, "dry run: would write")
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		v, err := p.metric("rest_client_requests_total", map[string]string{"method": method})
		require.NoError(t, err)
		assert.Zero(t, v, "%s requests sent", method)
	}
	// Every write it would have made counted, and its reconciles done.
	e.settled(p)
	e.waitData(app, "wildcard", tlsEmpty)
	_, err := e.get(fresh, "wildcard")
	assert.True(t, apierrors.IsNotFound(err), "no replica created")
	assert.Equal(t, "OLD-CERT", string(e.mustGet(copied, "wildcard").Data["tls.crt"]), "the copy is not adopted")
	e.mustGet(stale, "wildcard")
	assert.Empty(t, e.eventsFor(admin, eventsOn{Namespace: certs, Name: "wildcard", Reason: replicate.ReasonAdopted}), "no Event recorded")
}

// TestKubedRecipe follows cert-manager's FAQ recipe for kubed as written
// there, with --dialects=replicator,kubed: the namespace labelled
// cert-manager-tls=sandbox, the Secret annotated kubed.appscode.com/sync.
func TestKubedRecipe(t *testing.T) {
	e := newEnv(t)
	recipe := map[string]string{"cert-manager-tls": "sandbox"}
	certs, sandbox, later, plain, foreign := e.ns("cert-manager", nil), e.ns("sandbox", recipe), e.ns("later", nil), e.ns("plain", nil), e.ns("foreign", recipe)
	// kubed's annotation has no prefix of this test's own: only the source
	// here may push, so that other tests' objects carrying it (the tenancy
	// test's, say) are left to their own replicators.
	r := e.start(func(o *replicate.Options) {
		o.Annotations = o.Annotations.WithDialects(replicate.NewDialects(replicate.DialectKubed))
		o.Push = replicate.PushPolicy{From: mustPatterns(t, certs)}
	})
	mine := e.create(secret(foreign, "wildcard-tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "MINE", "tls.key": "MINE-KEY"}, nil))
	e.create(secret(certs, "wildcard-tls", corev1.SecretTypeTLS, tlsV1, map[string]string{replicate.KubedSyncAnnotation: "cert-manager-tls=sandbox"}))

	s := e.waitData(sandbox, "wildcard-tls", tlsV1)
	assert.Equal(t, "wildcard-tls", s.Labels["kubed.appscode.com/origin.name"], "kubed's bookkeeping on the copy")
	assert.Equal(t, certs, s.Labels["kubed.appscode.com/origin.namespace"])
	assert.Contains(t, e.waitEvent(certs, "wildcard-tls", replicate.ReasonTargetConflict), foreign)
	e.caughtUp(r)
	e.absent(plain, "wildcard-tls")

	e.labelNamespace(later, recipe)
	e.waitData(later, "wildcard-tls", tlsV1)
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) {
		s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
	})
	e.waitData(sandbox, "wildcard-tls", tlsV2)
	e.waitData(later, "wildcard-tls", tlsV2)
	// Unlike kubed, a namespace that stops matching loses its copy.
	e.labelNamespace(later, nil)
	e.waitGone(later, "wildcard-tls")
	// The annotation removed: the copies go; the foreign object stays.
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) { delete(s.Annotations, replicate.KubedSyncAnnotation) })
	e.waitGone(sandbox, "wildcard-tls")
	// Back, then the source deleted: the copies go with it. ("" and
	// "true", every namespace, are table tests: here they would reach the
	// namespaces of the tests running beside this one.)
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) { s.Annotations[replicate.KubedSyncAnnotation] = "cert-manager-tls=sandbox" })
	e.waitData(sandbox, "wildcard-tls", tlsV2)
	e.delete(certs, "wildcard-tls")
	e.waitGone(sandbox, "wildcard-tls")
	e.caughtUp(r)
	e.unchanged(mine, "a foreign object is never touched")
}

// rk are reflector's annotations.
var rk = replicate.NewReflectorKeys()

// reflectorRecipe is cert-manager's FAQ recipe for reflector as a
// Certificate's secretTemplate puts it on the Secret, with this test's
// namespaces for "dev,staging,prod".
func reflectorRecipe(namespaces string) map[string]string {
	return map[string]string{
		rk.Allowed: "true", rk.AllowedNamespaces: namespaces,
		rk.AutoEnabled: "true", rk.AutoNamespaces: namespaces,
	}
}

// TestReflectorRecipe follows cert-manager's FAQ recipe for reflector with
// --dialects=replicator,reflector: copies in the listed namespaces, existing
// and created later; a mirror (reflects, any name) filled in a listed
// namespace and refused in an unlisted one; namespaces selected by label,
// labelled later and unlabelled; a renewal; a repair; the annotations removed;
// the source deleted; an object of the same name nobody made left alone; and
// a tenant who may not push getting nothing out of reflector's annotations.
func TestReflectorRecipe(t *testing.T) {
	e := newSerialEnv(t)
	certs, dev, staging, other, foreign := e.ns("cert-manager", nil), e.ns("dev", nil), e.ns("staging", nil), e.ns("other", nil), e.ns("foreign", nil)
	tenant, victim := e.ns("tenant", nil), e.ns("victim", nil)
	prod := fmt.Sprintf("e%d-prod", e.id) // created later
	// As the chart would be set for this recipe: only cert-manager's
	// namespace may push (Roles too, to show that reflector's dialect is
	// not read on them).
	r := e.start(func(o *replicate.Options) {
		o.Annotations = o.Annotations.WithDialects(replicate.NewDialects(replicate.DialectReflector))
		o.Push = replicate.PushPolicy{From: mustPatterns(t, certs), RBACFrom: mustPatterns(t, certs)}
	})
	mine := e.create(secret(foreign, "wildcard-tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "MINE", "tls.key": "MINE-KEY"}, nil))
	listed := strings.Join([]string{dev, staging, prod, foreign}, ",")
	source := secret(certs, "wildcard-tls", corev1.SecretTypeTLS, tlsV1, reflectorRecipe(listed))
	source.Labels = map[string]string{"controller.cert-manager.io/fao": "true"}
	e.create(source)

	for _, ns := range []string{dev, staging} {
		s := e.waitData(ns, "wildcard-tls", tlsV1)
		assert.Equal(t, certs+"/wildcard-tls", s.Annotations[rk.Reflects], "reflector's bookkeeping on the copy")
		assert.Equal(t, "True", s.Annotations[rk.AutoReflects])
		assert.NotEmpty(t, s.Annotations[rk.ReflectedVersion])
		assert.Empty(t, s.Labels, "type and data only, as reflector copies")
	}
	assert.Contains(t, e.waitEvent(certs, "wildcard-tls", replicate.ReasonTargetConflict), foreign)
	e.caughtUp(r)
	e.absent(other, "wildcard-tls")

	// A namespace of the list created later gets its copy.
	e.ns("prod", nil)
	e.waitData(prod, "wildcard-tls", tlsV1)

	// Mirrors of any name: filled where the source allows, refused elsewhere.
	mirror := func(namespace string) {
		e.create(secret(namespace, "my-tls", corev1.SecretTypeTLS, tlsEmpty, map[string]string{rk.Reflects: certs + "/wildcard-tls"}))
	}
	mirror(dev)
	mirror(other)
	s := e.waitData(dev, "my-tls", tlsV1)
	assert.NotEmpty(t, s.Annotations[rk.ReflectedVersion], "reflector would read the mirror as up to date")
	assert.Contains(t, e.waitEvent(other, "my-tls", replicate.ReasonDenied), other)
	e.waitData(other, "my-tls", tlsEmpty)
	e.noWrites(r, 3*time.Second, "steady state")

	// Selected by label, labelled later, then unlabelled: the copy and
	// the mirror's permission follow the label.
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) {
		s.Annotations[rk.AllowedSelector] = "team=web"
		s.Annotations[rk.AutoSelector] = "team=web"
	})
	e.labelNamespace(other, map[string]string{"team": "web"})
	e.waitData(other, "wildcard-tls", tlsV1)
	e.waitData(other, "my-tls", tlsV1)
	e.labelNamespace(other, nil)
	e.waitGone(other, "wildcard-tls")
	e.waitData(other, "my-tls", tlsEmpty)

	// A renewal reaches copies and mirror; an edited copy is repaired.
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) {
		s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
	})
	for _, ns := range []string{dev, staging, prod} {
		e.waitData(ns, "wildcard-tls", tlsV2)
	}
	e.waitData(dev, "my-tls", tlsV2)
	e.modify(staging, "wildcard-tls", func(s *corev1.Secret) { s.Data["tls.crt"] = []byte("EDITED") })
	e.waitData(staging, "wildcard-tls", tlsV2)
	e.caughtUp(r)
	renewedMirror := e.mustGet(dev, "my-tls")

	// Auto push switched off: the copies go, the mirror stays filled;
	// reflection no longer allowed: the mirror is emptied (reflector would
	// leave the data there).
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) { delete(s.Annotations, rk.AutoEnabled) })
	for _, ns := range []string{dev, staging, prod} {
		e.waitGone(ns, "wildcard-tls")
	}
	e.caughtUp(r)
	e.unchanged(renewedMirror, "the mirror stays filled when auto push is switched off")
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) { delete(s.Annotations, rk.Allowed) })
	e.waitData(dev, "my-tls", tlsEmpty)

	// Back as the recipe has it, then the source deleted: copies go with
	// it, the mirror is emptied.
	e.modify(certs, "wildcard-tls", func(s *corev1.Secret) {
		for k, v := range reflectorRecipe(listed) {
			s.Annotations[k] = v
		}
	})
	e.waitData(dev, "wildcard-tls", tlsV2)
	e.waitData(dev, "my-tls", tlsV2)
	e.delete(certs, "wildcard-tls")
	for _, ns := range []string{dev, staging, prod} {
		e.waitGone(ns, "wildcard-tls")
	}
	e.waitData(dev, "my-tls", tlsEmpty)
	e.caughtUp(r)
	e.unchanged(mine, "never touched")

	// A source pushing in two dialects pushes into the union of their
	// namespaces; removing one dialect's annotation leaves the other's.
	e.create(secret(certs, "both-tls", corev1.SecretTypeTLS, tlsV1, with(reflectorRecipe(dev), e.a.ReplicateTo, staging)))
	e.waitData(dev, "both-tls", tlsV1)
	e.waitData(staging, "both-tls", tlsV1)
	e.caughtUp(r)
	both := e.mustGet(dev, "both-tls")
	e.modify(certs, "both-tls", func(s *corev1.Secret) { delete(s.Annotations, e.a.ReplicateTo) })
	e.waitGone(staging, "both-tls")
	e.caughtUp(r)
	e.unchanged(both, "reflector's dialect still pushes there")

	// ConfigMaps too (data and binaryData); Roles never, as reflector: the
	// Role marker comes after the Role.
	cms, roles := e.objects(configMapKind), e.objects(roleKind)
	cms.create(certs, "settings", reflectorRecipe(dev), nil, configMapKind.content(1))
	roles.create(certs, "reader", reflectorRecipe(dev), nil, roleKind.content(1))
	cms.wait(dev, "settings", configMapKind.content(1))
	e.caughtUp(r, roleKind)
	assert.Empty(t, e.kindsNamed(dev, "reader"), "reflector's dialect is read on Secrets and ConfigMaps only")
	assert.Empty(t, e.eventsFor(admin, eventsOn{Namespace: certs, Name: "reader", Reason: replicate.ReasonPushDenied}), "the Role is no push source at all")

	// A tenant who may not push gets nothing into another namespace with
	// reflector's annotations.
	e.create(secret(tenant, "planted", corev1.SecretTypeOpaque, map[string]string{"k": "tenant-value"}, reflectorRecipe(victim)))
	assert.Contains(t, e.waitEvent(tenant, "planted", replicate.ReasonPushDenied), replicate.SettingPushFrom)
	e.caughtUp(r)
	e.absent(victim, "planted")
}

// TestSwitchingFromEachToolAsItLeftTheCluster starts from the state each
// replaced tool leaves: sources annotated in its own dialect, the copies it
// made with its exact bookkeeping, a reflector mirror it filled, and a
// look-alike nobody made. A dry run first says what would change and writes
// nothing; then the replicator, reading all three dialects, adopts every
// copy, and from then on the copies and the mirror follow a renewal, are
// repaired and vanish (the mirror: is emptied) with their sources. The
// look-alike is never touched.
func TestSwitchingFromEachToolAsItLeftTheCluster(t *testing.T) {
	e := newSerialEnv(t)
	certs, krNS, reflNS, kubedNS, plain := e.ns("certs", nil), e.ns("kr", nil), e.ns("reflected", nil), e.ns("kubed", map[string]string{"migrating-from-kubed": fmt.Sprint(e.id)}), e.ns("plain", nil)
	fresh := e.ns("fresh", nil) // in reflector's list, with no copy yet
	old := map[string]string{"tls.crt": "OLD-CERT", "tls.key": "OLD-KEY"}
	copyOf := func(namespace, name string, annotations, labels map[string]string) {
		s := secret(namespace, name, corev1.SecretTypeTLS, old, annotations)
		s.Labels = labels
		e.create(s)
	}
	// kubernetes-replicator's source and its copy.
	krSource := e.create(secret(certs, "kr-tls", corev1.SecretTypeTLS, tlsV1, map[string]string{e.a.ReplicateTo: krNS + "," + plain}))
	copyOf(krNS, "kr-tls", map[string]string{e.a.ReplicatedAt: "2026-01-01T00:00:00Z", e.a.ReplicatedFromVersion: krSource.ResourceVersion, e.a.ReplicatedKeys: "tls.crt,tls.key"}, nil)
	// reflector's source, its auto copy and a mirror it filled.
	e.create(secret(certs, "reflector-tls", corev1.SecretTypeTLS, tlsV1, reflectorRecipe(reflNS+","+plain+","+fresh)))
	copyOf(reflNS, "reflector-tls", map[string]string{
		rk.Reflects: certs + "/reflector-tls", rk.AutoReflects: "True", rk.ReflectedVersion: "12345", rk.ReflectedAt: `"2026-01-01T00:00:00.0000000+00:00"`,
	}, nil)
	copyOf(reflNS, "mirror", map[string]string{rk.Reflects: certs + "/reflector-tls", rk.ReflectedVersion: "12345", rk.ReflectedAt: "2026-01-01T00:00:00.0000000+00:00"}, nil)
	// kubed's source and its copy.
	e.create(secret(certs, "kubed-tls", corev1.SecretTypeTLS, tlsV1, map[string]string{replicate.KubedSyncAnnotation: fmt.Sprintf("migrating-from-kubed=%d", e.id)}))
	copyOf(kubedNS, "kubed-tls", map[string]string{"kubed.appscode.com/origin": fmt.Sprintf(`{"namespace":%q,"name":"kubed-tls","resourceVersion":"12345"}`, certs)},
		map[string]string{"kubed.appscode.com/origin.name": "kubed-tls", "kubed.appscode.com/origin.namespace": certs, "kubed.appscode.com/origin.cluster": "unicorn"})
	// Look-alikes of each source in a namespace they push into, made by
	// nobody.
	for _, name := range []string{"kr-tls", "reflector-tls"} {
		e.create(secret(plain, name, corev1.SecretTypeTLS, map[string]string{"tls.crt": "MINE", "tls.key": "MINE-KEY"}, nil))
	}
	before := e.resourceVersions(krNS, reflNS, kubedNS, plain)

	// The dry run beside the old tool: says what it would do, does nothing.
	dialects := []string{"--annotation-prefix", e.prefix, "--dialects=replicator,reflector,kubed", "--push-from-namespaces=" + certs, "--log-format=json"}
	p := e.startReplicator("dry-run", append(dialects, "--dry-run")...)
	for action, want := range map[string]float64{"adopt": 3, "create": 1} {
		e.eventually(wait, "dry-run "+action+" counted", func() error {
			if v, err := p.metric("replicator_dry_run_writes_total", map[string]string{"kind": "Secret", "mode": "push", "action": action}); err != nil || v != want {
				return fmt.Errorf("%v (%v)", v, err)
			}
			return nil
		})
	}
	e.eventually(wait, "dry-run mirror update counted", func() error {
		if v, err := p.metric("replicator_dry_run_writes_total", map[string]string{"kind": "Secret", "mode": "pull", "action": "update"}); err != nil || v != 1 {
			return fmt.Errorf("%v (%v)", v, err)
		}
		return nil
	})
	logs := p.logs.String()
	for _, want := range []string{
		`"action":"adopt","kind":"Secret","level":"info","msg":"dry run: would write","name":"kr-tls","namespace":"` + krNS + `"`,
		`"action":"adopt","kind":"Secret","level":"info","msg":"dry run: would write","name":"reflector-tls","namespace":"` + reflNS + `"`,
		`"action":"adopt","kind":"Secret","level":"info","msg":"dry run: would write","name":"kubed-tls","namespace":"` + kubedNS + `"`,
		`"action":"create","kind":"Secret","level":"info","msg":"dry run: would write","name":"reflector-tls","namespace":"` + fresh + `"`,
		`"msg":"dry run: would write","name":"mirror","namespace":"` + reflNS + `"`,
	} {
		assert.Contains(t, logs, want)
	}
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		v, err := p.metric("rest_client_requests_total", map[string]string{"method": method})
		require.NoError(t, err)
		assert.Zero(t, v, "%s requests sent by the dry run", method)
	}
	p.stop(t)
	assert.Equal(t, before, e.resourceVersions(krNS, reflNS, kubedNS, plain), "the dry run wrote nothing")
	_, err := e.get(fresh, "reflector-tls")
	assert.True(t, apierrors.IsNotFound(err), "nor created anything")

	r := e.start(func(o *replicate.Options) {
		o.Annotations = o.Annotations.WithDialects(replicate.NewDialects(replicate.DialectKubed, replicate.DialectReflector))
		o.Push = replicate.PushPolicy{From: mustPatterns(t, certs)}
	})
	copies := map[string]string{krNS: "kr-tls", reflNS: "reflector-tls", kubedNS: "kubed-tls"}
	for ns, name := range copies {
		s := e.waitData(ns, name, tlsV1)
		assert.Equal(t, certs+"/"+name, s.Annotations[e.a.ReplicatedFrom], "%s: marked as ours", ns)
		assert.Contains(t, e.waitEvent(certs, name, replicate.ReasonAdopted), ns)
	}
	e.waitData(reflNS, "mirror", tlsV1)
	e.waitData(fresh, "reflector-tls", tlsV1)
	for _, name := range []string{"kr-tls", "reflector-tls"} {
		assert.Contains(t, e.waitEvent(certs, name, replicate.ReasonTargetConflict), plain)
	}
	e.noWrites(r, 3*time.Second, "after the switch")

	// Renewed, repaired, removed with their sources.
	for _, name := range copies {
		e.modify(certs, name, func(s *corev1.Secret) {
			s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
		})
	}
	for ns, name := range copies {
		e.waitData(ns, name, tlsV2)
	}
	e.waitData(reflNS, "mirror", tlsV2)
	for ns, name := range copies {
		e.modify(ns, name, func(s *corev1.Secret) { s.Data["tls.crt"] = []byte("EDITED") })
		e.waitData(ns, name, tlsV2)
	}
	for _, name := range copies {
		e.delete(certs, name)
	}
	for ns, name := range copies {
		e.waitGone(ns, name)
	}
	e.waitData(reflNS, "mirror", tlsEmpty)
	e.caughtUp(r)
	for _, name := range []string{"kr-tls", "reflector-tls"} {
		assert.Equal(t, "MINE", string(e.mustGet(plain, name).Data["tls.crt"]), "the look-alike is never touched")
	}
}

// with returns a copy of base with the keys and values kv added.
func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
