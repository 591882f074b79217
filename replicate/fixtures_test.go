package replicate

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The fixtures the unit tests share: annotations, namespaces, sources and
// placeholders, as the planner sees them (Object, Namespace) and as the API
// server holds them (corev1.Secret, corev1.Namespace).

var (
	ann = NewAnnotations(DefaultPrefix)
	now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

	// dialects are the annotations with every dialect read, as
	// --dialects=replicator,reflector,kubed sets them.
	dialects = ann.WithDialects(NewDialects(DialectReflector, DialectKubed))

	rk = NewReflectorKeys()

	// pushFromAnywhere is the binary's default policy, opened to the RBAC
	// kinds too: every namespace may push, no system namespace receives.
	pushFromAnywhere = PushPolicy{From: patterns(".*"), RBACFrom: patterns(".*")}
)

// Annotation maps.

// allowed returns source annotations that let namespaces pull.
func allowed(namespaces string) map[string]string {
	return map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: namespaces}
}

// replicateFrom returns a placeholder's annotations: it pulls from ref.
func replicateFrom(ref string) map[string]string {
	return map[string]string{ann.ReplicateFrom: ref}
}

// filledBookkeeping is what a pull wrote on a target it filled from
// version 41 of its source.
func filledBookkeeping() map[string]string {
	return map[string]string{ann.ReplicatedKeys: "tls.crt,tls.key", ann.ReplicatedFromVersion: "41", ann.ReplicatedAt: "2026-01-01T00:00:00Z"}
}

// reflectorRecipe is cert-manager's FAQ recipe for reflector, as a
// Certificate's secretTemplate puts it on the Secret.
func reflectorRecipe() map[string]string {
	return map[string]string{
		rk.Allowed: "true", rk.AllowedNamespaces: "dev,staging,prod",
		rk.AutoEnabled: "true", rk.AutoNamespaces: "dev,staging,prod",
	}
}

// with is a copy of base with the keys and values kv; a value "<none>"
// removes its key.
func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "<none>" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

// orDialects is a, or the annotations with every dialect read when a is
// the zero value.
func orDialects(a Annotations) Annotations {
	if a.ReplicateFrom == "" {
		return dialects
	}
	return a
}

// Settings.

// patterns parses a pattern list that is known to be valid.
func patterns(list string) Patterns {
	p, errs := ParsePatterns(list)
	if len(errs) > 0 {
		panic(errs[0])
	}
	return p
}

// policyOr is p, or pushFromAnywhere when p is nil.
func policyOr(p *PushPolicy) PushPolicy {
	if p == nil {
		return pushFromAnywhere
	}
	return *p
}

// The planner's view.

func data(kv ...string) Data {
	d := Data{}
	for i := 0; i < len(kv); i += 2 {
		d[kv[i]] = Value{Bytes: []byte(kv[i+1])}
	}
	return d
}

func ns(name string, labels map[string]string) Namespace {
	return Namespace{Name: name, Labels: labels}
}

// tlsSource is the pull source certs/wildcard at version 42, its
// certificate crt.
func tlsSource(crt string, annotations map[string]string) *Object {
	return &Object{Namespace: "certs", Name: "wildcard", ResourceVersion: "42", Type: "kubernetes.io/tls",
		Data: data("tls.crt", crt, "tls.key", "key-"+crt), Annotations: annotations}
}

// pushSource is the push source certs/wildcard at version 7, labelled
// app=web.
func pushSource(annotations map[string]string) *Object {
	return &Object{Namespace: "certs", Name: "wildcard", ResourceVersion: "7", Type: "kubernetes.io/tls",
		Data: data("tls.crt", "A", "tls.key", "key-A"), Labels: map[string]string{"app": "web"}, Annotations: annotations}
}

// certManagerSource is pushSource as cert-manager's Secret
// cert-manager/wildcard, of type typ ("": kubernetes.io/tls).
func certManagerSource(annotations map[string]string, typ string) *Object {
	s := pushSource(annotations)
	s.Namespace = "cert-manager"
	if typ != "" {
		s.Type = typ
	}
	return s
}

// tlsPlaceholder is the empty placeholder app/tls of certs/wildcard, with
// extra annotations (which may name another source).
func tlsPlaceholder(extra map[string]string) Object {
	a := replicateFrom("certs/wildcard")
	for k, v := range extra {
		a[k] = v
	}
	return Object{Namespace: "app", Name: "tls", Type: "kubernetes.io/tls", Data: data("tls.crt", "", "tls.key", ""), Annotations: a}
}

// tlsPlaceholderIn is the empty placeholder tls of from in namespace.
func tlsPlaceholderIn(namespace, from string) Object {
	o := tlsPlaceholder(replicateFrom(from))
	o.Namespace = namespace
	return o
}

// filledPlaceholder is tlsPlaceholder as a pull filled it from version 41
// of tlsSource("A").
func filledPlaceholder() Object {
	o := tlsPlaceholder(filledBookkeeping())
	o.Data = data("tls.crt", "A", "tls.key", "key-A")
	return o
}

// copyWith is an object named like pushSource in team-b, as another tool
// left it.
func copyWith(annotations, labels map[string]string) *Object {
	return &Object{Namespace: "team-b", Name: "wildcard", Type: "kubernetes.io/tls", UID: "u", ResourceVersion: "9",
		Data: data("tls.crt", "old"), Annotations: annotations, Labels: labels}
}

// ourReplica is the replica pushSource pushed into namespace.
func ourReplica(namespace string) *Object {
	r := replica(pushSource(map[string]string{ann.ReplicateTo: namespace}), namespace, "certs/wildcard", PushOptions{Annotations: ann, Now: now})
	r.UID, r.ResourceVersion = "uid-"+namespace, "5"
	return &r
}

// ourReflectorReplica is a copy this replicator pushed in reflector's
// dialect from cert-manager/wildcard into namespace.
func ourReflectorReplica(namespace string) *Object {
	r := replica(certManagerSource(reflectorRecipe(), ""), namespace, "cert-manager/wildcard", PushOptions{Annotations: dialects, Now: now})
	r.UID, r.ResourceVersion = "uid-"+namespace, "5"
	return &r
}

// As the API server holds them.

func namespaceObj(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func secret(namespace, name string, typ corev1.SecretType, d map[string]string, annotations map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations, ResourceVersion: "1"}, Type: typ, Data: map[string][]byte{}}
	for k, v := range d {
		s.Data[k] = []byte(v)
	}
	return s
}

// hubSource is the source certs/wildcard of the cluster hub, its
// certificate crt, allowing namespace app of the clusters listed (none:
// no cluster opt-in).
func hubSource(crt string, clusters string) *corev1.Secret {
	a := allowed("app")
	if clusters != "" {
		a[ann.ReplicationAllowedClusters] = clusters
	}
	return secret("certs", "wildcard", corev1.SecretTypeTLS, map[string]string{"tls.crt": crt, "tls.key": "key-" + crt}, a)
}

// placeholder is the empty TLS placeholder app/tls of from.
func placeholder(from string) *corev1.Secret {
	return secret("app", "tls", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""}, replicateFrom(from))
}
