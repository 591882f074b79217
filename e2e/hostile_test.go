package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubereplicator/replicator/replicate"
)

// The tests here attack the replicator as SPEC "Hostile input" and
// "Switching from another replicator (adoption)" say a tenant may: costly
// pattern lists and huge annotations, another tenant's object taken over by
// adoption, and push into the namespaces that never receive it. The
// replicator runs as the chart runs it.

// --- the pattern-cost attack -----------------------------------------------

// costlyEntries are legal RE2 entries that each compile to a thousand
// instructions or more (over MaxPatternCost). Entries are separated by
// commas, so none holds one: "x{1,1000}" in a list is two harmless
// fragments.
var costlyEntries = []string{"[a-z0-9]{1000}", "(?i)[[:alpha:]]{1000}", "(?:[a-z0-9]{63}[a-z]){15}"}

// costlyList returns a pattern list of about 4 KB, different for each i,
// whose entries are legal RE2 with big repetition counts: some past
// MaxPatternCost each, others just under it, so that the list as a whole is
// far past MaxListCost. Its first entry is cheap and matches match: were
// the list honoured, it would match.
func costlyList(i int, match string) string {
	entries := []string{match}
	for n := 0; len(strings.Join(entries, ",")) < 4000; n++ {
		if n%2 == 0 {
			entries = append(entries, costlyEntries[(n/2)%len(costlyEntries)])
		} else {
			// Just under MaxPatternCost each, a few of them past
			// MaxListCost.
			entries = append(entries, fmt.Sprintf("[a-z0-9]{%d}", 130+(7*i+n)%13))
		}
	}
	return strings.Join(entries, ",")
}

// TestCostlyPatternListsAreRefusedCheaply attacks the replicator the chart
// runs with its default values as a namespace admin: pattern lists of legal
// but costly expressions in replication-allowed-namespaces (with a
// placeholder pulling each) and in replicate-to, and one object carrying
// annotations just under the API server's 256 KiB. Each list is refused with
// a Warning Event naming the limit, nothing is filled or pushed, the
// replicator's peak memory stays small, and a legitimate pull elsewhere is
// served within a second meanwhile.
func TestCostlyPatternListsAreRefusedCheaply(t *testing.T) {
	e := newEnv(t)
	const K = 20
	release := fmt.Sprintf("e%d", e.id)
	// The binary as released: the race detector's shadow memory would
	// double what is measured.
	bin := filepath.Join(t.TempDir(), "replicator")
	build := exec.Command("go", "build", "-o", bin, "..")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building the replicator without -race: %s", out)
	ns, cfg := e.install(release)
	p := e.chartReplicatorRunning(bin, ns, release, e.kubeconfig(cfg))
	tenantA, victim, src, consumer := e.ns("tenant-a", nil), e.ns("victim", nil), e.ns("src", nil), e.ns("consumer", nil)
	alice := e.namespaceAdmin(tenantA)
	t.Logf("peak RSS after start: %.1f MiB", p.Memory("VmHWM"))

	// A legitimate pull elsewhere, filled before the attack.
	cm := func(client kubernetes.Interface, namespace, name string, annotations, data map[string]string) {
		t.Helper()
		_, err := client.CoreV1().ConfigMaps(namespace).Create(e.ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}, Data: data,
		}, metav1.CreateOptions{})
		require.NoError(t, err, "%s/%s", namespace, name)
	}
	cm(admin, src, "legit", e.allow(consumer), map[string]string{"k": "v0"})
	cm(admin, consumer, "legit", map[string]string{e.a.ReplicateFrom: src + "/legit"}, nil)
	e.objects(configMapKind).wait(consumer, "legit", map[string]any{"data": map[string]any{"k": "v0"}})

	// The attack: every list different (no cache helps), each with an
	// entry that would match were the list honoured.
	var pullSources, placeholders, pushSources []string
	for i := range K {
		source, placeholder, push := fmt.Sprintf("costly-pull-%d", i), fmt.Sprintf("costly-placeholder-%d", i), fmt.Sprintf("costly-push-%d", i)
		cm(alice, tenantA, source, map[string]string{e.a.ReplicationAllowed: "true", e.a.ReplicationAllowedNS: costlyList(i, "[a-z0-9-]+")}, map[string]string{"k": "attack"})
		cm(alice, tenantA, placeholder, map[string]string{e.a.ReplicateFrom: tenantA + "/" + source}, nil)
		cm(alice, tenantA, push, map[string]string{e.a.ReplicateTo: costlyList(K+i, regexpOnly(victim))}, map[string]string{"k": "attack"})
		pullSources, placeholders, pushSources = append(pullSources, source), append(placeholders, placeholder), append(pushSources, push)
	}
	// Annotations just under the API server's limit (256 KiB in all): a
	// 200 KiB list of plain names and padding.
	var names []string
	for i := 0; len(strings.Join(names, ",")) < 200*1024; i++ {
		names = append(names, fmt.Sprintf("%s-%05d", victim, i))
	}
	bigList := strings.Join(append(names, victim), ",")
	const padKey = "example.com/padding"
	padding := strings.Repeat("p", 256*1024-len(bigList)-len(e.a.ReplicateTo)-len(padKey)-256)
	cm(alice, tenantA, "huge", map[string]string{e.a.ReplicateTo: bigList, padKey: padding}, map[string]string{"k": "attack"})

	// The legitimate pull is served within a second while the attack is
	// being processed (up to three measurements).
	var took []time.Duration
	for attempt := 1; attempt <= 3; attempt++ {
		d := e.configMapUpdateSeen(src, consumer, "legit", fmt.Sprintf("v%d", attempt))
		took = append(took, d)
		if d < time.Second {
			break
		}
	}
	t.Logf("legitimate pull served in %v", took)
	assert.Less(t, slices.Min(took), time.Second, "a legitimate pull is served within 1 s while the attack is processed: %v", took)

	// Each costly list is refused, naming the limit; nothing is filled or
	// pushed.
	limits := []string{"MaxListCost", "MaxPatternCost"}
	e.waitWarnings("ConfigMap", tenantA, replicate.ReasonInvalidAnnotation, pullSources, limits...)
	e.waitWarnings("ConfigMap", tenantA, replicate.ReasonDenied, placeholders)
	// The chart lets no namespace push: the push policy, applied before the
	// lists are compiled, refuses them.
	e.waitWarnings("ConfigMap", tenantA, replicate.ReasonPushDenied, pushSources, replicate.SettingPushFrom)
	e.waitWarnings("ConfigMap", tenantA, "", []string{"huge"}, "MaxListBytes", "MaxMetadataBytes")
	// Those reconciles done, writes included.
	e.caughtUp(p, configMapKind)
	for _, name := range placeholders {
		got, err := admin.CoreV1().ConfigMaps(tenantA).Get(e.ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Empty(t, got.Data, "%s filled", name)
	}
	list, err := admin.CoreV1().ConfigMaps(victim).List(e.ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, c := range list.Items {
		if c.Name != "kube-root-ca.crt" {
			t.Errorf("pushed into %s: %s", victim, c.Name)
		}
	}

	// Memory: the peak of the whole run.
	peak := p.Memory("VmHWM")
	t.Logf("peak RSS after the attack: %.1f MiB", peak)
	assert.Greater(t, peak, 0.0, "VmHWM read")
	assert.Less(t, peak, 100.0, "the replicator's peak RSS, MiB")
	// And the legitimate pull still follows its source.
	e.configMapUpdateSeen(src, consumer, "legit", "after")
}

// regexpOnly returns an expression that matches exactly name (not a plain
// name, so that it is compiled).
func regexpOnly(name string) string {
	return name[:len(name)-1] + "[" + name[len(name)-1:] + "]"
}

// configMapUpdateSeen sets key k of the ConfigMap source/name to value and
// returns how long it took from the update request until the ConfigMap
// target/name was seen holding it (watched, not polled).
func (e *env) configMapUpdateSeen(source, target, name, value string) time.Duration {
	e.t.Helper()
	current, err := admin.CoreV1().ConfigMaps(target).Get(e.ctx, name, metav1.GetOptions{})
	require.NoError(e.t, err)
	w, err := admin.CoreV1().ConfigMaps(target).Watch(e.ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: current.ResourceVersion,
	})
	require.NoError(e.t, err)
	defer w.Stop()
	var start time.Time
	e.eventually(wait, "update ConfigMap "+source+"/"+name, func() error {
		c, err := admin.CoreV1().ConfigMaps(source).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c.Data["k"] = value
		start = time.Now()
		_, err = admin.CoreV1().ConfigMaps(source).Update(e.ctx, c, metav1.UpdateOptions{})
		return err
	})
	timeout := time.After(wait)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			require.True(e.t, ok, "watch of %s/%s ended", target, name)
			if c, isCM := ev.Object.(*corev1.ConfigMap); isCM && ev.Type == watch.Modified && c.Data["k"] == value {
				return time.Since(start)
			}
		case <-timeout:
			e.t.Fatalf("%s/%s did not receive the update within %s", target, name, wait)
		}
	}
}

// waitWarnings waits until each named object of kind in namespace has a
// Warning Event with reason ("" any) whose message contains one of want
// (none: any message). Objects without one within wait are reported as
// failures, with the Events they have, without stopping the test.
func (e *env) waitWarnings(kind, namespace, reason string, names []string, want ...string) {
	e.t.Helper()
	for _, n := range names {
		if _, err := e.awaitEvent(admin, eventsOn{Kind: kind, Namespace: namespace, Name: n, Reason: reason, Type: corev1.EventTypeWarning}, 0, want...); err != nil {
			e.t.Error(err)
		}
	}
}

// --- adoption as a takeover --------------------------------------------------

// TestAdoptionCannotTakeOverAnotherTenantsObject lets tenant-a push (the
// operator's choice) and has alice, its admin, try to take over objects of
// bob in tenant-b by pushing a source of the same name: bob's former
// placeholders (pulled from a third namespace, and from alice's own source,
// that source pushing already or not) whose replicate-from he removed, and
// an object on which bob wrote kubernetes-replicator's bookkeeping himself.
// None is adopted: each stays exactly as bob left it, alice gets
// TargetConflict naming tenant-b, and alice's push removed leaves bob's
// object in place.
func TestAdoptionCannotTakeOverAnotherTenantsObject(t *testing.T) {
	e := newEnv(t)
	tenantA, tenantB, certs, free := e.ns("tenant-a", nil), e.ns("tenant-b", nil), e.ns("certs", nil), e.ns("free", nil)
	_, _, p := e.installAndRun(fmt.Sprintf("e%d", e.id), "pushFromNamespaces="+tenantA)
	alice, bob := e.namespaceAdmin(tenantA), e.namespaceAdmin(tenantB)
	// Every push of alice's also goes to free, where it lands: the sign
	// that her source was reconciled.
	pushTo := pushedTo(e.a, tenantB+","+free)
	aliceData := func(name string) map[string]string { return map[string]string{"password": "alice-" + name} }
	bookkeeping := []string{e.a.ReplicatedKeys, e.a.ReplicatedFromVersion, e.a.ReplicatedAt}

	// formerPlaceholder fills bob's placeholder from source, then bob
	// removes replicate-from; it returns the object as bob left it.
	formerPlaceholder := func(name, source string, want map[string]string) *corev1.Secret {
		t.Helper()
		e.createIn(bob, secret(tenantB, name, corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: source}))
		filled := e.waitData(tenantB, name, want)
		for _, k := range bookkeeping {
			assert.Contains(t, filled.Annotations, k, "%s: the pull's bookkeeping", name)
		}
		return e.modifyIn(bob, tenantB, name, func(s *corev1.Secret) { delete(s.Annotations, e.a.ReplicateFrom) })
	}
	// notTakenOver checks, once alice's source has been reconciled (the
	// replica in free, and a TargetConflict recorded after conflicts
	// earlier ones) and that reconcile is done, that bob's object is as he
	// left it, then that removing alice's push leaves it in place.
	notTakenOver := func(e *env, name string, bobs *corev1.Secret, conflictsBefore int) {
		t := e.t
		t.Helper()
		e.waitData(free, name, aliceData(name))
		if msg, ok := e.conflictNotAdoption(tenantA, name, conflictsBefore); ok {
			assert.Contains(t, msg, tenantB)
		}
		e.caughtUp(p)
		now := e.mustGet(tenantB, name)
		assert.Equal(t, bobs.ResourceVersion, now.ResourceVersion, "%s: bob's object was written", name)
		assert.Equal(t, stringData(bobs), stringData(now), "%s: bob's data", name)
		assert.Equal(t, bobs.Annotations, now.Annotations, "%s: bob's annotations", name)

		e.modifyIn(alice, tenantA, name, func(s *corev1.Secret) { delete(s.Annotations, e.a.ReplicateTo) })
		e.waitGone(free, name)
		if now, err := e.get(tenantB, name); assert.NoError(t, err, "%s: bob's object is still there once alice stops pushing", name) {
			assert.Equal(t, stringData(bobs), stringData(now), "%s: bob's data", name)
		}
	}

	// a. bob's former placeholder of a source in a third namespace.
	e.create(secret(certs, "db-creds-a", corev1.SecretTypeOpaque, map[string]string{"password": "certs-db-creds-a"}, e.allow(tenantB)))
	bobA := formerPlaceholder("db-creds-a", certs+"/db-creds-a", map[string]string{"password": "certs-db-creds-a"})
	e.createIn(alice, secret(tenantA, "db-creds-a", corev1.SecretTypeOpaque, aliceData("db-creds-a"), pushTo))

	// b. bob's former placeholder of alice's own source; alice then adds
	// replicate-to.
	e.createIn(alice, secret(tenantA, "db-creds-b", corev1.SecretTypeOpaque, aliceData("db-creds-b"), e.allow(tenantB)))
	bobB := formerPlaceholder("db-creds-b", tenantA+"/db-creds-b", aliceData("db-creds-b"))
	e.modifyIn(alice, tenantA, "db-creds-b", func(s *corev1.Secret) { s.Annotations[e.a.ReplicateTo] = pushTo[e.a.ReplicateTo] })

	// b2. The same, alice's source pushing from the start: bob's
	// replicated-from-version is the source's current resourceVersion
	// when he removes replicate-from.
	e.createIn(bob, secret(tenantB, "db-creds-b2", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: tenantA + "/db-creds-b2"}))
	aliceB2 := e.createIn(alice, secret(tenantA, "db-creds-b2", corev1.SecretTypeOpaque, aliceData("db-creds-b2"), with(e.allow(tenantB), e.a.ReplicateTo, pushTo[e.a.ReplicateTo])))
	filled := e.waitData(tenantB, "db-creds-b2", aliceData("db-creds-b2"))
	e.waitEvent(tenantA, "db-creds-b2", replicate.ReasonTargetConflict) // a placeholder is no replica
	t.Logf("b2: bob's replicated-from-version %q, alice's source at %q", filled.Annotations[e.a.ReplicatedFromVersion], aliceB2.ResourceVersion)
	conflictsB2 := eventCount(e.eventsFor(admin, eventsOn{Namespace: tenantA, Name: "db-creds-b2", Reason: replicate.ReasonTargetConflict}))
	bobB2 := e.modifyIn(bob, tenantB, "db-creds-b2", func(s *corev1.Secret) { delete(s.Annotations, e.a.ReplicateFrom) })

	// c. kubernetes-replicator's bookkeeping, written by bob with a
	// made-up version.
	bobC := e.createIn(bob, secret(tenantB, "db-creds-c", corev1.SecretTypeOpaque, map[string]string{"password": "bob-db-creds-c"}, map[string]string{
		e.a.ReplicatedAt: time.Now().UTC().Format(time.RFC3339), e.a.ReplicatedFromVersion: "1", e.a.ReplicatedKeys: "password",
	}))
	e.createIn(alice, secret(tenantA, "db-creds-c", corev1.SecretTypeOpaque, aliceData("db-creds-c"), pushTo))

	for _, c := range []struct {
		name   string
		bobs   *corev1.Secret
		before int
	}{{"db-creds-a", bobA, 0}, {"db-creds-b", bobB, 0}, {"db-creds-b2", bobB2, conflictsB2}, {"db-creds-c", bobC, 0}} {
		t.Run(c.name, func(t *testing.T) { notTakenOver(e.in(t), c.name, c.bobs, c.before) })
	}
}

// conflictNotAdoption waits until the source namespace/name has more than
// before TargetConflict Events, or an Adopted Event. It returns the
// conflict's message and true; an adoption it reports as a failure (without
// stopping the test) and returns false.
func (e *env) conflictNotAdoption(namespace, name string, before int) (string, bool) {
	e.t.Helper()
	var conflict corev1.Event
	e.eventually(wait, "TargetConflict (or Adopted) on "+namespace+"/"+name, func() error {
		if adopted := e.eventsFor(admin, eventsOn{Namespace: namespace, Name: name, Reason: replicate.ReasonAdopted}); len(adopted) > 0 {
			conflict = adopted[0]
			return nil
		}
		conflicts := e.eventsFor(admin, eventsOn{Namespace: namespace, Name: name, Reason: replicate.ReasonTargetConflict})
		if n := eventCount(conflicts); n <= before {
			return fmt.Errorf("%d TargetConflict Events, want more than %d", n, before)
		}
		conflict = slices.MaxFunc(conflicts, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
		return nil
	})
	if conflict.Reason == replicate.ReasonAdopted {
		e.t.Errorf("%s/%s: adopted, want TargetConflict: %s", namespace, name, conflict.Message)
		return "", false
	}
	return conflict.Message, true
}

// in returns the env for a subtest t: the same world, failures reported
// (and FailNow called) on t.
func (e *env) in(t *testing.T) *env {
	return &env{t: t, ctx: e.ctx, id: e.id, prefix: e.prefix, a: e.a}
}

// --- legitimate adoption -----------------------------------------------------

// TestKubernetesReplicatorCopiesAreAdoptedOnlyWithProof leaves copies as
// kubernetes-replicator v2 leaves them (its bookkeeping, the source's
// resourceVersion at the time of copying) while no replicator runs, then
// starts the chart's replicator: the copy of a source that has not changed
// since is adopted and follows the source; the copy of a source changed
// since is not (TargetConflict, untouched) until the target namespace's
// owner marks it as ours, or the operator consents for its namespace
// (adoptUnprovenCopiesIn); a namespace the operator did not name stays
// foreign.
func TestKubernetesReplicatorCopiesAreAdoptedOnlyWithProof(t *testing.T) {
	e := newEnv(t)
	certs, fresh, stale, unlisted, consent := e.ns("certs", nil), e.ns("fresh", nil), e.ns("stale", nil), e.ns("unlisted", nil), e.ns("consent", nil)
	release := fmt.Sprintf("e%d", e.id)
	ns, cfg := e.install(release, "pushFromNamespaces="+certs)
	sa := e.kubeconfig(cfg)

	// What kubernetes-replicator leaves: sources that push, and copies
	// with its bookkeeping.
	copyOf := func(source *corev1.Secret, namespace string) *corev1.Secret {
		t.Helper()
		keys := make([]string, 0, len(source.Data))
		for k := range source.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return e.create(secret(namespace, source.Name, source.Type, stringData(source), map[string]string{
			e.a.ReplicatedAt: time.Now().UTC().Format(time.RFC3339), e.a.ReplicatedFromVersion: source.ResourceVersion, e.a.ReplicatedKeys: strings.Join(keys, ","),
		}))
	}
	renew := func(name string) {
		e.modify(certs, name, func(s *corev1.Secret) {
			s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
		})
	}
	// Unchanged since it was copied.
	copyOf(e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, pushedTo(e.a, fresh))), fresh)
	// Changed since: renewed after the copies were made.
	staleSource := e.create(secret(certs, "stale", corev1.SecretTypeTLS, tlsV1, pushedTo(e.a, stale+","+unlisted)))
	staleCopy, unlistedCopy := copyOf(staleSource, stale), copyOf(staleSource, unlisted)
	renew("stale")
	consentCopy := copyOf(e.create(secret(certs, "consented", corev1.SecretTypeTLS, tlsV1, pushedTo(e.a, consent))), consent)
	renew("consented")

	p := e.chartReplicator(ns, release, sa)

	// The proven copy: adopted, then follows its source.
	s := e.waitData(fresh, "wildcard", tlsV1)
	e.eventually(wait, "the proven copy marked as ours", func() error {
		if s = e.mustGet(fresh, "wildcard"); s.Annotations[e.a.ReplicatedFrom] != certs+"/wildcard" {
			return fmt.Errorf("marker %q (TargetConflict Events: %d)", s.Annotations[e.a.ReplicatedFrom], eventCount(e.eventsFor(admin, eventsOn{Namespace: certs, Name: "wildcard", Reason: replicate.ReasonTargetConflict})))
		}
		return nil
	})
	assert.Contains(t, e.waitEvent(certs, "wildcard", replicate.ReasonAdopted), fresh)
	renew("wildcard")
	e.waitData(fresh, "wildcard", tlsV2)

	// The unproven copies: foreign, untouched.
	if msg, ok := e.conflictNotAdoption(certs, "stale", 0); ok {
		assert.Contains(t, msg, stale)
		assert.Contains(t, msg, unlisted)
	}
	if msg, ok := e.conflictNotAdoption(certs, "consented", 0); ok {
		assert.Contains(t, msg, consent)
	}
	e.caughtUp(p)
	for _, c := range []*corev1.Secret{staleCopy, unlistedCopy, consentCopy} {
		e.unchanged(c, "a copy of a source changed since is not adopted")
	}

	// The target namespace's owner consents: our marker on the copy.
	owner := e.namespaceAdmin(consent)
	e.modifyIn(owner, consent, "consented", func(s *corev1.Secret) { s.Annotations[e.a.ReplicatedFrom] = certs + "/consented" })
	e.waitData(consent, "consented", tlsV2)
	e.modify(consent, "consented", func(s *corev1.Secret) { s.Data["tls.crt"] = []byte("EDITED") })
	e.waitData(consent, "consented", tlsV2)

	// The operator consents for one namespace.
	p.stop(t)
	out, err := helm(t, "upgrade", release, chartDir, "--namespace", ns, "--kubeconfig", e.adminKubeconfig(), "--reuse-values", "--set", "adoptUnprovenCopiesIn="+stale)
	require.NoError(t, err, out)
	assert.Contains(t, e.deploymentArgs(ns, release), "--adopt-unproven-copies-in="+stale)
	p = e.chartReplicator(ns, release, sa)
	e.waitData(stale, "stale", tlsV2)
	assert.Equal(t, certs+"/stale", e.mustGet(stale, "stale").Annotations[e.a.ReplicatedFrom])
	assert.Contains(t, e.waitEvent(certs, "stale", replicate.ReasonAdopted), stale)
	e.caughtUp(p)
	e.unchanged(unlistedCopy, "a namespace the operator did not name stays foreign")
}

// --- protected namespaces -----------------------------------------------------

// TestOpenedSystemNamespaceReceivesFromNamedNamespacesOnly opens kube-public
// to push while every namespace may push (pushFromNamespaces ".*"): a
// tenant's source is still refused there, because a system namespace opened
// to push receives only from namespaces named by plain name. Then the
// operator names one namespace, and its source reaches kube-public.
func TestOpenedSystemNamespaceReceivesFromNamedNamespacesOnly(t *testing.T) {
	e := newEnv(t)
	tenantA, shared, free := e.ns("tenant-a", nil), e.ns("shared", nil), e.ns("free", nil)
	release := fmt.Sprintf("e%d", e.id)
	ns, sa, p := e.installAndRun(release, "pushFromNamespaces=.*", "pushToSystemNamespaces=kube-public")
	alice := e.namespaceAdmin(tenantA)
	// Unique in the shared system namespace.
	fromTenant, fromShared := fmt.Sprintf("e%d-tenant", e.id), fmt.Sprintf("e%d-shared", e.id)
	for _, name := range []string{fromTenant, fromShared} {
		t.Cleanup(func() { _ = admin.CoreV1().Secrets("kube-public").Delete(e.ctx, name, metav1.DeleteOptions{}) })
	}

	e.createIn(alice, secret(tenantA, fromTenant, corev1.SecretTypeOpaque, map[string]string{"k": "tenant-public"}, pushedTo(e.a, "kube-public,"+free)))
	e.waitData(free, fromTenant, map[string]string{"k": "tenant-public"}) // every namespace may push
	e.waitWarnings("Secret", tenantA, replicate.ReasonPushDenied, []string{fromTenant})
	e.caughtUp(p)
	_, err := e.get("kube-public", fromTenant)
	assert.True(t, apierrors.IsNotFound(err), "a source in a namespace matched by a pattern only reached kube-public (%v)", err)

	p.stop(t)
	out, err := helm(t, "upgrade", release, chartDir, "--namespace", ns, "--kubeconfig", e.adminKubeconfig(), "--reuse-values", "--set", "pushFromNamespaces="+shared)
	require.NoError(t, err, out)
	e.chartReplicator(ns, release, sa)
	e.create(secret(shared, fromShared, corev1.SecretTypeOpaque, map[string]string{"k": "shared-public"}, pushedTo(e.a, "kube-public")))
	e.waitData("kube-public", fromShared, map[string]string{"k": "shared-public"})
	e.waitGone("kube-public", fromTenant) // if it ever got there
}

// TestReplicatorsOwnNamespaceNeverReceivesPush lets every namespace push and
// pushes into the namespace the replicator runs in (the release's, which
// the chart passes as POD_NAMESPACE), by name and by a pattern: nothing lands
// there, while the same pattern's other namespaces receive.
func TestReplicatorsOwnNamespaceNeverReceivesPush(t *testing.T) {
	e := newEnv(t)
	tenantA, free := e.ns("tenant-a", nil), e.ns("free", nil)
	release := fmt.Sprintf("e%d", e.id)
	ns, _, p := e.installAndRun(release, "pushFromNamespaces=.*")
	alice := e.namespaceAdmin(tenantA)

	e.createIn(alice, secret(tenantA, "by-name", corev1.SecretTypeOpaque, map[string]string{"k": "into-the-replicator"}, pushedTo(e.a, ns)))
	e.createIn(alice, secret(tenantA, "by-pattern", corev1.SecretTypeOpaque, map[string]string{"k": "into-the-replicator"}, pushedTo(e.a, fmt.Sprintf("e%d-.*", e.id))))
	e.waitData(free, "by-pattern", map[string]string{"k": "into-the-replicator"})
	e.waitWarnings("Secret", tenantA, replicate.ReasonPushDenied, []string{"by-name"})
	e.caughtUp(p)
	for _, name := range []string{"by-name", "by-pattern"} {
		_, err := e.get(ns, name)
		assert.True(t, apierrors.IsNotFound(err), "%s reached the replicator's own namespace %s (%v)", name, ns, err)
	}
}
