package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubereplicator/replicator/replicate"
)

func TestPullFillsTLSPlaceholderAndFollowsRenewals(t *testing.T) {
	e := newEnv(t)
	e.start()
	certs, app := e.ns("certs", nil), e.ns("app", nil)
	// What cert-manager writes from Certificate.spec.secretTemplate.
	e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, e.allow(app)))

	created := time.Now()
	e.create(e.tlsPlaceholder(app, "wildcard", certs+"/wildcard"))
	got := e.waitData(app, "wildcard", tlsV1)
	t.Logf("placeholder filled %s after creation", time.Since(created).Round(time.Millisecond))
	assert.Equal(t, corev1.SecretTypeTLS, got.Type)
	assert.Equal(t, "tls.crt,tls.key", got.Annotations[e.a.ReplicatedKeys])
	assert.NotEmpty(t, got.Annotations[e.a.ReplicatedFromVersion])
	_, err := time.Parse(time.RFC3339, got.Annotations[e.a.ReplicatedAt])
	assert.NoError(t, err)
	e.waitEvent(app, "wildcard", replicate.ReasonReplicated)

	// A renewal rewrites the source; every consumer follows.
	e.modify(certs, "wildcard", func(s *corev1.Secret) {
		s.Data = map[string][]byte{"tls.crt": []byte(tlsV2["tls.crt"]), "tls.key": []byte(tlsV2["tls.key"])}
	})
	renewed := e.waitData(app, "wildcard", tlsV2)
	assert.Equal(t, e.mustGet(certs, "wildcard").ResourceVersion, renewed.Annotations[e.a.ReplicatedFromVersion])
	e.explainAgrees(nil, "secret/"+app+"/wildcard", "secret/"+certs+"/wildcard")
}

func TestPullBareNameMeansOwnNamespaceAndStillNeedsPermission(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	app := e.ns("app", nil)
	e.create(secret(app, "closed", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, nil))
	e.create(secret(app, "open", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, e.allow(app)))
	e.create(secret(app, "from-closed", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: "closed"}))
	e.create(secret(app, "from-open", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: "open"}))
	e.waitData(app, "from-open", map[string]string{"k": "v"})
	e.waitEvent(app, "from-closed", replicate.ReasonDenied)
	e.caughtUp(r)
	assert.Empty(t, e.mustGet(app, "from-closed").Data)
	e.explainAgrees(nil, "secret/"+app+"/from-closed", "secret/"+app+"/from-open", "secret/"+app+"/open")
}

func TestPullDeniedUnlessTheSourceAllowsTheNamespace(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	certs := e.ns("certs", nil)
	app, appEvil, evilApp := e.ns("app", nil), e.ns("app-evil", nil), e.ns("evil-app", nil)
	cases := map[string]struct {
		annotations map[string]string
		target      string
	}{
		"no-allow":       {annotations: map[string]string{e.a.ReplicationAllowedNS: app}, target: app},
		"allow-false":    {annotations: map[string]string{e.a.ReplicationAllowed: "false", e.a.ReplicationAllowedNS: app}, target: app},
		"allow-garbage":  {annotations: map[string]string{e.a.ReplicationAllowed: "yes please", e.a.ReplicationAllowedNS: app}, target: app},
		"no-list":        {annotations: map[string]string{e.a.ReplicationAllowed: "true"}, target: app},
		"empty-list":     {annotations: e.allow(" , "), target: app},
		"prefix-only":    {annotations: e.allow(app), target: appEvil},
		"suffix-only":    {annotations: e.allow(app), target: evilApp},
		"alternation":    {annotations: e.allow(app + "|other"), target: appEvil},
		"invalid-entry":  {annotations: e.allow(app + "("), target: app},
		"other-ns-only":  {annotations: e.allow("other"), target: app},
		"dot-is-not-any": {annotations: e.allow(".*-evil"), target: app},
	}
	for name, c := range cases {
		e.create(secret(certs, name, corev1.SecretTypeTLS, tlsV1, c.annotations))
		e.create(e.tlsPlaceholder(c.target, name, certs+"/"+name))
	}
	// A source that allows app, next to the denied ones, is replicated.
	e.create(secret(certs, "good", corev1.SecretTypeTLS, tlsV1, e.allow(app+",other")))
	e.create(e.tlsPlaceholder(app, "good", certs+"/good"))
	e.waitData(app, "good", tlsV1)
	// Every placeholder above reconciled, and done.
	e.caughtUp(r)

	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e.waitEvent(c.target, name, replicate.ReasonDenied)
			assert.Equal(t, tlsEmpty, stringData(e.mustGet(c.target, name)), "a denied placeholder stays empty")
		})
	}
	e.waitEvent(certs, "invalid-entry", replicate.ReasonInvalidAnnotation) // on the source: an invalid entry is reported
	var objects []string
	for name, c := range cases {
		objects = append(objects, "secret/"+c.target+"/"+name)
	}
	e.explainAgrees(nil, append(objects, "secret/"+app+"/good", "secret/"+certs+"/invalid-entry")...)
}

// A placeholder in an excluded namespace is left alone, and says so.
func TestPullIntoExcludedNamespaceLeavesTargetAlone(t *testing.T) {
	e := newEnv(t)
	excluded := e.ns("excluded", nil)
	r := e.start(func(o *replicate.Options) { o.Exclude, _ = replicate.ParsePatterns(excluded) })
	certs, app := e.ns("certs", nil), e.ns("app", nil)
	e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, e.allow(".*")))
	left := e.create(e.tlsPlaceholder(excluded, "wildcard", certs+"/wildcard"))
	e.create(e.tlsPlaceholder(app, "wildcard", certs+"/wildcard"))
	e.waitData(app, "wildcard", tlsV1)
	assert.Contains(t, e.waitEvent(excluded, "wildcard", replicate.ReasonNamespaceExcluded), "--exclude-namespaces", "not a silent refusal")
	e.caughtUp(r)
	e.unchanged(left, "a placeholder in an excluded namespace is left alone")
	e.explainAgrees([]string{"--exclude-namespaces=" + excluded}, "secret/"+excluded+"/wildcard", "secret/"+app+"/wildcard")
}

func TestPullRevocationAndDeletionEmptyTheTargetButKeepItValid(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	certs, app := e.ns("certs", nil), e.ns("app", nil)
	e.create(secret(certs, "wildcard", corev1.SecretTypeTLS, tlsV1, e.allow(app)))
	e.create(e.tlsPlaceholder(app, "wildcard", certs+"/wildcard"))
	e.waitData(app, "wildcard", tlsV1)

	// Revoke: the namespace is no longer in the list.
	e.modify(certs, "wildcard", func(s *corev1.Secret) { s.Annotations[e.a.ReplicationAllowedNS] = "someone-else" })
	revoked := e.waitData(app, "wildcard", tlsEmpty)
	assert.Equal(t, corev1.SecretTypeTLS, revoked.Type, "still a valid TLS Secret")
	assert.NotContains(t, revoked.Annotations, e.a.ReplicatedKeys)
	e.waitEvent(app, "wildcard", replicate.ReasonDenied)

	// Allowed again: filled again.
	e.modify(certs, "wildcard", func(s *corev1.Secret) { s.Annotations[e.a.ReplicationAllowedNS] = app })
	e.waitData(app, "wildcard", tlsV1)

	// Revoke by switching replication off.
	e.modify(certs, "wildcard", func(s *corev1.Secret) { s.Annotations[e.a.ReplicationAllowed] = "false" })
	e.waitData(app, "wildcard", tlsEmpty)
	e.modify(certs, "wildcard", func(s *corev1.Secret) { s.Annotations[e.a.ReplicationAllowed] = "true" })
	e.waitData(app, "wildcard", tlsV1)

	// Source deleted.
	e.delete(certs, "wildcard")
	gone := e.waitData(app, "wildcard", tlsEmpty)
	assert.Equal(t, corev1.SecretTypeTLS, gone.Type)
	e.waitEvent(app, "wildcard", replicate.ReasonSourceNotFound)
	// The echo of the emptying write answered: no second write.
	e.caughtUp(r)
	e.unchanged(gone, "emptied once")
	e.explainAgrees(nil, "secret/"+app+"/wildcard")
}

func TestPullRevocationKeepsRequiredDockerConfig(t *testing.T) {
	e := newEnv(t)
	e.start()
	reg, app := e.ns("registry", nil), e.ns("app", nil)
	cfg := map[string]string{".dockerconfigjson": `{"auths":{"r.example":{"auth":"c2VjcmV0"}}}`}
	e.create(secret(reg, "pull", corev1.SecretTypeDockerConfigJson, cfg, e.allow(app)))
	e.create(secret(app, "pull", corev1.SecretTypeDockerConfigJson, map[string]string{".dockerconfigjson": "{}"},
		map[string]string{e.a.ReplicateFrom: reg + "/pull"}))
	e.waitData(app, "pull", cfg)
	e.delete(reg, "pull")
	e.waitData(app, "pull", map[string]string{".dockerconfigjson": "{}"})
}

func TestPullKeepsLocalKeysAndDropsKeysTheSourceDropped(t *testing.T) {
	e := newEnv(t)
	e.start()
	src, app := e.ns("src", nil), e.ns("app", nil)
	e.create(secret(src, "config", corev1.SecretTypeOpaque, map[string]string{"a": "1", "b": "2", "shared": "source-value"}, e.allow(app)))
	e.create(secret(app, "config", corev1.SecretTypeOpaque, map[string]string{"local": "mine", "shared": "local"},
		map[string]string{e.a.ReplicateFrom: src + "/config"}))
	got := e.waitData(app, "config", map[string]string{"a": "1", "b": "2", "shared": "source-value", "local": "mine"})
	assert.Equal(t, "a,b,shared", got.Annotations[e.a.ReplicatedKeys])

	e.modify(src, "config", func(s *corev1.Secret) { delete(s.Data, "b") })
	e.waitData(app, "config", map[string]string{"a": "1", "shared": "source-value", "local": "mine"})

	e.delete(src, "config")
	e.waitData(app, "config", map[string]string{"local": "mine"})
	e.explainAgrees(nil, "secret/"+app+"/config")
}

func TestPullSwitchingAndRemovingTheReference(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, app := e.ns("src", nil), e.ns("app", nil)
	e.create(secret(src, "one", corev1.SecretTypeOpaque, map[string]string{"from": "one", "only-one": "x"}, e.allow(app)))
	e.create(secret(src, "two", corev1.SecretTypeOpaque, map[string]string{"from": "two"}, e.allow(app)))
	e.create(secret(app, "target", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/one"}))
	e.waitData(app, "target", map[string]string{"from": "one", "only-one": "x"})

	e.modify(app, "target", func(s *corev1.Secret) { s.Annotations[e.a.ReplicateFrom] = src + "/two" })
	e.waitData(app, "target", map[string]string{"from": "two"})
	e.caughtUp(r)
	switched := e.mustGet(app, "target")
	// The old source no longer reaches the target.
	e.modify(src, "one", func(s *corev1.Secret) { s.Data["from"] = []byte("one-changed") })
	e.caughtUp(r)
	e.unchanged(switched, "the old source changed")

	// Annotation removed: left alone from then on.
	e.modify(app, "target", func(s *corev1.Secret) { delete(s.Annotations, e.a.ReplicateFrom) })
	e.caughtUp(r)
	released := e.mustGet(app, "target")
	e.modify(src, "two", func(s *corev1.Secret) { s.Data["from"] = []byte("two-changed") })
	e.caughtUp(r)
	e.unchanged(released, "its former source changed")
	assert.Equal(t, "two", string(e.mustGet(app, "target").Data["from"]))
}

func TestPullRefusesSelfReferenceAndCycles(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	a, b := e.ns("a", nil), e.ns("b", nil)
	open := func(from string) map[string]string { return with(e.allow(".*"), e.a.ReplicateFrom, from) }
	self := e.create(secret(a, "self", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, open(a+"/self")))
	loopA := e.create(secret(a, "loop", corev1.SecretTypeOpaque, map[string]string{"k": "a"}, open(b+"/loop")))
	loopB := e.create(secret(b, "loop", corev1.SecretTypeOpaque, map[string]string{"k": "b"}, open(a+"/loop")))
	e.waitEvent(a, "self", replicate.ReasonCycle)
	e.waitEvent(a, "loop", replicate.ReasonCycle)
	e.waitEvent(b, "loop", replicate.ReasonCycle)
	e.caughtUp(r)
	for _, s := range []*corev1.Secret{self, loopA, loopB} {
		e.unchanged(s, "a cycle writes nothing")
	}
	e.explainAgrees(nil, "secret/"+a+"/self", "secret/"+a+"/loop", "secret/"+b+"/loop")
}

func TestPullChainThroughAFilledTarget(t *testing.T) {
	e := newEnv(t)
	e.start()
	hub, mid, leaf := e.ns("hub", nil), e.ns("mid", nil), e.ns("leaf", nil)
	e.create(secret(hub, "root", corev1.SecretTypeOpaque, map[string]string{"k": "v1"}, e.allow(mid)))
	e.create(secret(mid, "relay", corev1.SecretTypeOpaque, nil, with(e.allow(leaf), e.a.ReplicateFrom, hub+"/root")))
	e.create(secret(leaf, "copy", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: mid + "/relay"}))
	e.waitData(leaf, "copy", map[string]string{"k": "v1"})
	e.modify(hub, "root", func(s *corev1.Secret) { s.Data["k"] = []byte("v2") })
	e.waitData(leaf, "copy", map[string]string{"k": "v2"})
	e.explainAgrees(nil, "secret/"+leaf+"/copy", "secret/"+mid+"/relay", "secret/"+hub+"/root")
}

func TestPullTypeMismatchWritesNothing(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, app := e.ns("src", nil), e.ns("app", nil)
	e.create(secret(src, "opaque", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, e.allow(app)))
	mismatched := e.create(e.tlsPlaceholder(app, "tls", src+"/opaque"))
	// An Opaque target takes any source, a TLS one included.
	e.create(secret(src, "cert", corev1.SecretTypeTLS, tlsV1, e.allow(app)))
	e.create(secret(app, "any", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/cert"}))
	e.waitData(app, "any", tlsV1)
	e.waitEvent(app, "tls", replicate.ReasonTypeMismatch)
	e.caughtUp(r)
	e.unchanged(mismatched, "a type mismatch writes nothing")
	e.explainAgrees(nil, "secret/"+app+"/tls", "secret/"+app+"/any")
}

func TestPullIntoImmutableTargetIsRefused(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src, app := e.ns("src", nil), e.ns("app", nil)
	e.create(secret(src, "s", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, e.allow(app)))
	target := secret(app, "frozen", corev1.SecretTypeOpaque, map[string]string{"old": "x"}, map[string]string{e.a.ReplicateFrom: src + "/s"})
	yes := true
	target.Immutable = &yes
	frozen := e.create(target)
	e.waitEvent(app, "frozen", replicate.ReasonTargetImmutable)
	e.caughtUp(r)
	e.unchanged(frozen, "an immutable target is not written")
	e.explainAgrees(nil, "secret/"+app+"/frozen")
}

func TestPullDataNeverAppearsInEvents(t *testing.T) {
	e := newEnv(t)
	e.start()
	src, app := e.ns("src", nil), e.ns("app", nil)
	e.create(secret(src, "s", corev1.SecretTypeOpaque, map[string]string{"k": "TOPSECRET-VALUE"}, e.allow(app)))
	e.create(secret(app, "t", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/s"}))
	e.waitData(app, "t", map[string]string{"k": "TOPSECRET-VALUE"})
	msg := e.waitEvent(app, "t", replicate.ReasonReplicated)
	require.NotContains(t, msg, "TOPSECRET")
}
