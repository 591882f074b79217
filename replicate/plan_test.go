package replicate

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPlanPull(t *testing.T) {
	tests := map[string]struct {
		target     Object
		source     *Object
		allowAll   bool
		wantData   Data // nil: no write
		wantKeys   string
		wantReason string
	}{
		"an empty TLS placeholder is filled from an allowed source": {
			target: tlsPlaceholder(nil), source: tlsSource("A", allowed("app")),
			wantData: data("tls.crt", "A", "tls.key", "key-A"), wantKeys: "tls.crt,tls.key", wantReason: ReasonReplicated,
		},
		"a filled target is refilled when the source renews": {
			target: filledPlaceholder(),
			source: tlsSource("B", allowed("app")), wantData: data("tls.crt", "B", "tls.key", "key-B"), wantKeys: "tls.crt,tls.key", wantReason: ReasonReplicated,
		},
		"a target that is already right is not written": {
			target: filledPlaceholder(),
			source: tlsSource("A", allowed("app")),
		},
		"a source whose metadata changed but not its data causes no write": {
			target: filledPlaceholder(),
			source: func() *Object {
				s := tlsSource("A", allowed("app"))
				s.ResourceVersion = "99"
				s.Labels = map[string]string{"x": "y"}
				return s
			}(),
		},
		"no allow annotation denies": {
			target: tlsPlaceholder(nil), source: tlsSource("A", map[string]string{ann.ReplicationAllowedNS: "app"}), wantReason: ReasonDenied,
		},
		"allowed false denies": {
			target: tlsPlaceholder(nil), source: tlsSource("A", map[string]string{ann.ReplicationAllowed: "false", ann.ReplicationAllowedNS: "app"}), wantReason: ReasonDenied,
		},
		"an allow value that is not a boolean denies": {
			target: tlsPlaceholder(nil), source: tlsSource("A", map[string]string{ann.ReplicationAllowed: "yes", ann.ReplicationAllowedNS: "app"}), wantReason: ReasonDenied,
		},
		"no namespace list denies": {
			target: tlsPlaceholder(nil), source: tlsSource("A", map[string]string{ann.ReplicationAllowed: "true"}), wantReason: ReasonDenied,
		},
		"a list that matches only a prefix of the namespace denies": {
			target: tlsPlaceholder(nil), source: tlsSource("A", allowed("ap")), wantReason: ReasonDenied,
		},
		"an alternation does not match a longer name": {
			target: func() Object { o := tlsPlaceholder(nil); o.Namespace = "app-evil"; return o }(),
			source: tlsSource("A", allowed("app|web")), wantReason: ReasonDenied,
		},
		"an invalid entry is skipped and a valid one still allows": {
			target: tlsPlaceholder(nil), source: tlsSource("A", allowed("[,app")),
			wantData: data("tls.crt", "A", "tls.key", "key-A"), wantKeys: "tls.crt,tls.key", wantReason: ReasonReplicated,
		},
		"allow-all lets any source through": {
			target: tlsPlaceholder(nil), source: tlsSource("A", nil), allowAll: true,
			wantData: data("tls.crt", "A", "tls.key", "key-A"), wantKeys: "tls.crt,tls.key", wantReason: ReasonReplicated,
		},
		"a missing source on an unfilled placeholder writes nothing": {
			target: tlsPlaceholder(nil), wantReason: ReasonSourceNotFound,
		},
		"a missing source empties a filled TLS target and keeps it valid": {
			target:   filledPlaceholder(),
			wantData: data("tls.crt", "", "tls.key", ""), wantKeys: "", wantReason: ReasonSourceNotFound,
		},
		"revoked permission removes the replicated keys": {
			target:   filledPlaceholder(),
			source:   tlsSource("A", allowed("other")),
			wantData: data("tls.crt", "", "tls.key", ""), wantKeys: "", wantReason: ReasonDenied,
		},
		"revocation keeps local keys": {
			target: Object{Namespace: "app", Name: "cfg", Type: "Opaque", Data: data("a", "1", "local", "mine"),
				Annotations: map[string]string{ann.ReplicateFrom: "certs/cfg", ann.ReplicatedKeys: "a"}},
			wantData: data("local", "mine"), wantKeys: "", wantReason: ReasonSourceNotFound,
		},
		"a docker config target keeps an empty JSON object": {
			target: Object{Namespace: "app", Name: "pull", Type: "kubernetes.io/dockerconfigjson", Data: data(".dockerconfigjson", `{"auths":{}}`),
				Annotations: map[string]string{ann.ReplicateFrom: "certs/pull", ann.ReplicatedKeys: ".dockerconfigjson"}},
			wantData: data(".dockerconfigjson", "{}"), wantKeys: "", wantReason: ReasonSourceNotFound,
		},
		"local keys are kept and a source key of the same name wins": {
			target: Object{Namespace: "app", Name: "cfg", Type: "Opaque", Data: data("local", "mine", "shared", "old"),
				Annotations: map[string]string{ann.ReplicateFrom: "certs/cfg"}},
			source:   &Object{Namespace: "certs", Name: "cfg", Type: "Opaque", Data: data("shared", "new", "extra", "x"), Annotations: allowed("app")},
			wantData: data("local", "mine", "shared", "new", "extra", "x"), wantKeys: "extra,shared", wantReason: ReasonReplicated,
		},
		"keys removed from the source are removed from the target": {
			target: Object{Namespace: "app", Name: "cfg", Type: "Opaque", Data: data("a", "1", "b", "2", "local", "l"),
				Annotations: map[string]string{ann.ReplicateFrom: "certs/cfg", ann.ReplicatedKeys: "a,b"}},
			source:   &Object{Namespace: "certs", Name: "cfg", Type: "Opaque", Data: data("a", "1"), Annotations: allowed("app")},
			wantData: data("a", "1", "local", "l"), wantKeys: "a", wantReason: ReasonReplicated,
		},
		"an Opaque target takes a TLS source": {
			target: Object{Namespace: "app", Name: "tls", Type: "Opaque", Annotations: map[string]string{ann.ReplicateFrom: "certs/wildcard"}},
			source: tlsSource("A", allowed("app")), wantData: data("tls.crt", "A", "tls.key", "key-A"), wantKeys: "tls.crt,tls.key", wantReason: ReasonReplicated,
		},
		"a TLS target refuses an Opaque source": {
			target: tlsPlaceholder(nil), source: &Object{Namespace: "certs", Name: "wildcard", Type: "Opaque", Data: data("a", "b"), Annotations: allowed("app")},
			wantReason: ReasonTypeMismatch,
		},
		"an immutable target that differs is not written": {
			target: func() Object { o := tlsPlaceholder(nil); o.Immutable = true; return o }(), source: tlsSource("A", allowed("app")),
			wantReason: ReasonTargetImmutable,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			d := PlanPull(PullInput{
				Target: tt.target, Source: tt.source, Ref: Ref{Namespace: "certs", Name: "wildcard"},
				Gate: Gate{Annotations: ann, AllowAll: tt.allowAll}, Rules: Secrets().Rules(), Now: now,
			})
			if tt.wantReason == "" {
				assert.Nil(t, d.Event)
			} else {
				require.NotNil(t, d.Event)
				assert.Equal(t, tt.wantReason, d.Event.Reason)
			}
			if tt.wantData == nil {
				assert.Nil(t, d.Write, "no write expected")
				return
			}
			require.NotNil(t, d.Write)
			assert.True(t, tt.wantData.Equal(d.Write.Data), "data: got %v", d.Write.Data)
			keys, ok := d.Write.Annotations[ann.ReplicatedKeys]
			assert.Equal(t, tt.wantKeys, keys)
			if tt.wantKeys == "" {
				assert.False(t, ok, "bookkeeping removed when nothing is replicated")
				assert.NotContains(t, d.Write.Annotations, ann.ReplicatedFromVersion)
			} else {
				assert.Equal(t, tt.source.ResourceVersion, d.Write.Annotations[ann.ReplicatedFromVersion])
				assert.Equal(t, "2026-11-24T12:00:00Z", d.Write.Annotations[ann.ReplicatedAt])
			}
			assert.Equal(t, tt.target.Annotations[ann.ReplicateFrom], d.Write.Annotations[ann.ReplicateFrom], "the reference is kept")
		})
	}
}

func TestPlanPullWritesOnceThenSettles(t *testing.T) {
	in := PullInput{Target: tlsPlaceholder(nil), Source: tlsSource("A", allowed("app")), Ref: Ref{Namespace: "certs", Name: "wildcard"},
		Gate: Gate{Annotations: ann}, Rules: Secrets().Rules(), Now: now}
	first := PlanPull(in)
	require.NotNil(t, first.Write)
	in.Target = *first.Write
	in.Now = now.Add(time.Hour)
	assert.Nil(t, PlanPull(in).Write, "the written target needs no second write")

	in.Source = nil
	cleared := PlanPull(in)
	require.NotNil(t, cleared.Write)
	in.Target = *cleared.Write
	assert.Nil(t, PlanPull(in).Write, "the cleared target needs no second write")
}

func TestPlanPush(t *testing.T) {
	namespaces := []Namespace{
		ns("certs", nil), ns("team-a", map[string]string{"tls": "yes"}), ns("team-b", nil), ns("other", map[string]string{"tls": "yes"}),
		{Name: "dying", Terminating: true, Labels: map[string]string{"tls": "yes"}}, ns("kube-system", nil),
	}
	foreign := &Object{Namespace: "team-b", Name: "wildcard", Type: "kubernetes.io/tls", Data: data("tls.crt", "mine")}
	tests := map[string]struct {
		source   *Object
		existing []*Object
		exclude  string
		// adoptUnproven: namespaces the operator vouches for (--adopt-unproven-copies-in).
		adoptUnproven string
		policy        *PushPolicy // nil: pushFromAnywhere
		rbac          bool        // the kind grants rights
		want          map[string]Action
		conflicts     []string
		refused       []string
		adopted       []string
		problems      int
	}{
		"names create replicas in matching namespaces only": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a,team-b"}),
			want:   map[string]Action{"team-a": Create, "team-b": Create},
		},
		"a regular expression selects whole names": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-.*"}),
			want:   map[string]Action{"team-a": Create, "team-b": Create},
		},
		"a label selector selects namespaces, never terminating ones": {
			source: pushSource(map[string]string{ann.ReplicateToMatching: "tls=yes"}),
			want:   map[string]Action{"team-a": Create, "other": Create},
		},
		"names and labels are united": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-b", ann.ReplicateToMatching: "tls=yes"}),
			want:   map[string]Action{"team-a": Create, "team-b": Create, "other": Create},
		},
		"the source's own namespace is never a target": {
			source: pushSource(map[string]string{ann.ReplicateTo: "certs|team-a"}),
			want:   map[string]Action{"team-a": Create},
		},
		"a system namespace receives nothing and the refusal is reported": {
			source:  pushSource(map[string]string{ann.ReplicateTo: ".*"}),
			want:    map[string]Action{"team-a": Create, "team-b": Create, "other": Create},
			refused: []string{"kube-system"}, problems: 1,
		},
		"a system namespace the operator names receives its replica": {
			source: pushSource(map[string]string{ann.ReplicateTo: ".*"}),
			policy: &PushPolicy{From: patterns("certs"), ToSystem: patterns("kube-system")},
			want:   map[string]Action{"team-a": Create, "team-b": Create, "other": Create, "kube-system": Create},
		},
		"a replica in a system namespace made before the policy is deleted": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "kube-system|team-a"}),
			existing: []*Object{ourReplica("kube-system"), ourReplica("team-a")},
			want:     map[string]Action{"kube-system": Delete},
			refused:  []string{"kube-system"}, problems: 1,
		},
		// A source that may not push has no targets: its lists are never
		// read, whatever they cost.
		"a source in a namespace the operator did not list writes nothing": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-a", ann.ReplicateToMatching: "tls=yes"}),
			policy:   &PushPolicy{From: patterns("cert-manager")},
			want:     map[string]Action{},
			problems: 1,
		},
		"an operator's list matches whole names": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			policy:   &PushPolicy{From: patterns("cert|certs-.*")},
			want:     map[string]Action{},
			problems: 1,
		},
		"a source whose namespace may no longer push loses its replicas": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			existing: []*Object{ourReplica("team-a")},
			policy:   &PushPolicy{},
			want:     map[string]Action{"team-a": Delete},
			problems: 1,
		},
		"a refused source is reported even when it selects no namespace": {
			source: pushSource(map[string]string{ann.ReplicateTo: "nowhere"}),
			policy: &PushPolicy{},
			want:   map[string]Action{}, problems: 1,
		},
		"a refused namespace holding a foreign object is no conflict": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{foreign},
			policy:   &PushPolicy{},
			want:     map[string]Action{},
			problems: 1,
		},
		"a refused source without push annotations only loses its replicas, silently": {
			source:   pushSource(nil),
			existing: []*Object{ourReplica("team-a")},
			policy:   &PushPolicy{},
			want:     map[string]Action{"team-a": Delete},
		},
		"Roles and RoleBindings push only from the namespaces listed for them": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a"}), rbac: true,
			policy: &PushPolicy{From: patterns(".*"), RBACFrom: patterns("certs")},
			want:   map[string]Action{"team-a": Create},
		},
		"the list for other kinds never lets Roles and RoleBindings push": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a"}), rbac: true,
			policy:   &PushPolicy{From: patterns(".*")},
			want:     map[string]Action{},
			problems: 1,
		},
		"the RBAC list never lets other kinds push": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			policy:   &PushPolicy{RBACFrom: patterns(".*")},
			want:     map[string]Action{},
			problems: 1,
		},
		"system namespaces stay closed to Roles and RoleBindings from a listed namespace": {
			source: pushSource(map[string]string{ann.ReplicateTo: "kube-system|team-a"}), rbac: true,
			policy:  &PushPolicy{RBACFrom: patterns("certs")},
			want:    map[string]Action{"team-a": Create},
			refused: []string{"kube-system"}, problems: 1,
		},
		"excluded namespaces are never targets": {
			source: pushSource(map[string]string{ann.ReplicateTo: ".*"}), exclude: "kube-.*,other",
			want: map[string]Action{"team-a": Create, "team-b": Create},
		},
		"an object the source does not own is a conflict, others proceed": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a,team-b"}), existing: []*Object{foreign},
			want: map[string]Action{"team-a": Create}, conflicts: []string{"team-b"},
		},
		"a copy kubernetes-replicator made is adopted in one write": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicatedFromVersion: "7", ann.ReplicatedKeys: "tls.crt"}, nil)},
			want:     map[string]Action{"team-b": Adopt}, adopted: []string{"team-b"},
		},
		"a copy kubernetes-replicator made of an older version of the source stays foreign": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicatedFromVersion: "3", ann.ReplicatedKeys: "tls.crt"}, nil)},
			want:     map[string]Action{}, conflicts: []string{"team-b"},
		},
		"kubernetes-replicator's bookkeeping without a version proves nothing": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicatedKeys: "tls.crt"}, nil)},
			want:     map[string]Action{}, conflicts: []string{"team-b"},
		},
		"in a namespace the operator vouches for, kubernetes-replicator's bookkeeping is enough": {
			source:        pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing:      []*Object{copyWith(map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicatedFromVersion: "3", ann.ReplicatedKeys: "tls.crt"}, nil)},
			adoptUnproven: "team-.*",
			want:          map[string]Action{"team-b": Adopt}, adopted: []string{"team-b"},
		},
		"a former pull target is never adopted, even of this very source at its version": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{
				ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicatedFromVersion: "7", ann.ReplicatedKeys: "tls.crt", ann.PulledFrom: "certs/wildcard",
			}, nil)},
			adoptUnproven: ".*",
			want:          map[string]Action{}, conflicts: []string{"team-b"},
		},
		"a copy whose owner wrote the source's marker on it is ours": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{ann.ReplicatedFrom: "certs/wildcard"}, nil)},
			want:     map[string]Action{"team-b": Update},
		},
		"a copy reflector made of this source is adopted": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{
				"reflector.v1.k8s.emberstack.com/reflects": "certs/wildcard", "reflector.v1.k8s.emberstack.com/auto-reflects": "True",
			}, nil)},
			want: map[string]Action{"team-b": Adopt}, adopted: []string{"team-b"},
		},
		"a copy kubed made of this source is adopted": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(nil, map[string]string{"kubed.appscode.com/origin.name": "wildcard", "kubed.appscode.com/origin.namespace": "certs"})},
			want:     map[string]Action{"team-b": Adopt}, adopted: []string{"team-b"},
		},
		"a copy of another type is adopted by recreating it": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{func() *Object {
				o := copyWith(map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicatedFromVersion: "7"}, nil)
				o.Type = "Opaque"
				return o
			}()},
			want: map[string]Action{"team-b": Recreate}, adopted: []string{"team-b"},
		},
		"a reflector copy of another source stays foreign": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{
				"reflector.v1.k8s.emberstack.com/reflects": "other/wildcard", "reflector.v1.k8s.emberstack.com/auto-reflects": "True",
			}, nil)},
			want: map[string]Action{}, conflicts: []string{"team-b"},
		},
		"a reflector mirror (not an auto copy) stays foreign": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{"reflector.v1.k8s.emberstack.com/reflects": "certs/wildcard"}, nil)},
			want:     map[string]Action{}, conflicts: []string{"team-b"},
		},
		"a kubed copy of another source stays foreign": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(nil, map[string]string{"kubed.appscode.com/origin.name": "wildcard", "kubed.appscode.com/origin.namespace": "other"})},
			want:     map[string]Action{}, conflicts: []string{"team-b"},
		},
		"a pull target with kubernetes-replicator's bookkeeping stays foreign": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicateFrom: "certs/wildcard"}, nil)},
			want:     map[string]Action{}, conflicts: []string{"team-b"},
		},
		"a replica of another source is never adopted": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-b"}),
			existing: []*Object{copyWith(map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", ann.ReplicatedFrom: "other/wildcard"}, nil)},
			want:     map[string]Action{}, conflicts: []string{"team-b"},
		},
		"a copy in a namespace the policy refuses is not adopted": {
			source: pushSource(map[string]string{ann.ReplicateTo: "kube-system"}),
			existing: []*Object{func() *Object {
				o := copyWith(map[string]string{ann.ReplicatedAt: "x"}, nil)
				o.Namespace = "kube-system"
				return o
			}()},
			want: map[string]Action{}, refused: []string{"kube-system"}, problems: 1,
		},
		"replicas that are right are not written": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			existing: []*Object{ourReplica("team-a")},
			want:     map[string]Action{},
		},
		"an edited replica is restored": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			existing: []*Object{func() *Object {
				r := ourReplica("team-a")
				r.Data = data("tls.crt", "hacked")
				return r
			}()},
			want: map[string]Action{"team-a": Update},
		},
		"relabelled replicas get the source's labels back": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			existing: []*Object{func() *Object {
				r := ourReplica("team-a")
				r.Labels = map[string]string{"added": "by-hand"}
				return r
			}()},
			want: map[string]Action{"team-a": Update},
		},
		"a replica of another type is recreated": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			existing: []*Object{func() *Object {
				r := ourReplica("team-a")
				r.Type = "Opaque"
				return r
			}()},
			want: map[string]Action{"team-a": Recreate},
		},
		"a namespace no longer selected loses its replica": {
			source:   pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			existing: []*Object{ourReplica("team-a"), ourReplica("other")},
			want:     map[string]Action{"other": Delete},
		},
		"a deleted source loses all its replicas but not in terminating namespaces": {
			existing: []*Object{ourReplica("team-a"), ourReplica("other"), ourReplica("dying")},
			want:     map[string]Action{"team-a": Delete, "other": Delete},
		},
		"an object of another name carrying the marker is no replica and is never deleted": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a"}),
			existing: []*Object{func() *Object {
				r := ourReplica("other")
				r.Name = "posing"
				return r
			}()},
			want: map[string]Action{"team-a": Create},
		},
		"removing the push annotations removes the replicas": {
			source:   pushSource(nil),
			existing: []*Object{ourReplica("team-a")},
			want:     map[string]Action{"team-a": Delete},
		},
		"an invalid pattern is reported and the valid ones apply": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-(,team-a"}),
			want:   map[string]Action{"team-a": Create}, problems: 1,
		},
		"an invalid selector is reported and selects nothing": {
			source: pushSource(map[string]string{ann.ReplicateTo: "team-a", ann.ReplicateToMatching: "tls in (yes"}),
			want:   map[string]Action{"team-a": Create}, problems: 1,
		},
		"an empty selector selects nothing rather than everything": {
			source: pushSource(map[string]string{ann.ReplicateToMatching: " "}),
			want:   map[string]Action{},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			exclude, _ := ParsePatterns(tt.exclude)
			unproven, _ := ParsePatterns(tt.adoptUnproven)
			byNS := map[string]*Object{}
			var owned []*Object
			for _, o := range tt.existing {
				byNS[o.Namespace] = o
				if o.Annotations[ann.ReplicatedFrom] == "certs/wildcard" {
					owned = append(owned, o)
				}
			}
			policy := pushFromAnywhere
			if tt.policy != nil {
				policy = *tt.policy
			}
			plan := PlanPush(PushInput{
				SourceRef: Ref{Namespace: "certs", Name: "wildcard"}, Source: tt.source, Namespaces: namespaces, Owned: owned,
				Existing: func(n string) *Object { return byNS[n] },
				Options:  PushOptions{Annotations: ann, Exclude: exclude, Now: now.Add(time.Hour), Policy: policy, GrantsRights: tt.rbac, AdoptUnproven: unproven},
			})
			got := map[string]Action{}
			for _, c := range plan.Changes {
				got[c.Object.Namespace] = c.Action
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.conflicts, plan.Conflicts)
			assert.Equal(t, tt.refused, plan.Refused)
			assert.Equal(t, tt.adopted, plan.Adopted)
			for _, c := range plan.Changes {
				if c.Action == Adopt {
					assert.Equal(t, "certs/wildcard", c.Object.Annotations[ann.ReplicatedFrom], "adopted: marked as ours")
					assert.True(t, pushSource(nil).Data.Equal(c.Object.Data), "adopted: the source's data")
				}
			}
			assert.Len(t, plan.Problems, tt.problems)
		})
	}
}

func TestReplicaContent(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Namespace", Name: "certs", UID: "u"}
	tests := map[string]struct {
		annotations map[string]string
		wantLabels  map[string]string
		wantOwners  int
	}{
		"a replica carries the source's labels by default": {
			annotations: map[string]string{ann.ReplicateTo: "x"}, wantLabels: map[string]string{"app": "web"},
		},
		"strip-labels leaves the source's labels off": {
			annotations: map[string]string{ann.ReplicateTo: "x", ann.StripLabels: "true"},
		},
		"strip-labels false keeps them": {
			annotations: map[string]string{ann.ReplicateTo: "x", ann.StripLabels: "false"}, wantLabels: map[string]string{"app": "web"},
		},
		"keep-owner-references copies them": {
			annotations: map[string]string{ann.ReplicateTo: "x", ann.KeepOwnerReferences: "true"}, wantLabels: map[string]string{"app": "web"}, wantOwners: 1,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			src := pushSource(tt.annotations)
			src.OwnerReferences = []metav1.OwnerReference{owner}
			r := replica(src, "x", "certs/wildcard", PushOptions{Annotations: ann, Now: now})
			assert.Equal(t, tt.wantLabels, r.Labels)
			assert.Len(t, r.OwnerReferences, tt.wantOwners)
			assert.Equal(t, "certs/wildcard", r.Annotations[ann.ReplicatedFrom])
			assert.Equal(t, "tls.crt,tls.key", r.Annotations[ann.ReplicatedKeys])
			assert.Equal(t, "7", r.Annotations[ann.ReplicatedFromVersion])
			assert.NotContains(t, r.Annotations, ann.ReplicateTo, "source annotations are not copied")
			assert.Equal(t, src.Type, r.Type)
			assert.True(t, src.Data.Equal(r.Data))
		})
	}
}

func TestUpdateReplicaKeepsTimestampsWhenDataIsUnchanged(t *testing.T) {
	current := ourReplica("team-a")
	current.Labels = nil
	desired := replica(pushSource(map[string]string{ann.ReplicateTo: "team-a"}), "team-a", "certs/wildcard", PushOptions{Annotations: ann, Now: now.Add(time.Hour)})
	ch, ok := updateReplica(current, desired, ann)
	require.True(t, ok)
	assert.Equal(t, current.Annotations[ann.ReplicatedAt], ch.Object.Annotations[ann.ReplicatedAt])
}

func TestGateAcrossClusters(t *testing.T) {
	remote := Ref{Cluster: "hub", Namespace: "certs", Name: "wildcard"}
	withClusters := func(namespaces, clusters string) map[string]string {
		a := allowed(namespaces)
		a[ann.ReplicationAllowedClusters] = clusters
		return a
	}
	tests := map[string]struct {
		annotations map[string]string
		ref         Ref
		cluster     string // this cluster's name
		allowAll    bool
		want        bool
		why         string
	}{
		"a remote source naming this cluster and namespace is allowed": {
			annotations: withClusters("app", "spoke-.*"), ref: remote, cluster: "spoke-1", want: true,
		},
		"a remote source without a cluster list is never served to another cluster": {
			annotations: allowed("app"), ref: remote, cluster: "spoke-1", why: "is not served to other clusters",
		},
		"a remote source whose cluster list does not match this cluster denies": {
			annotations: withClusters("app", "spoke-2"), ref: remote, cluster: "spoke-1", why: "does not allow cluster spoke-1",
		},
		"a cluster pattern must match the whole name": {
			annotations: withClusters("app", "spoke"), ref: remote, cluster: "spoke-1", why: "does not allow cluster spoke-1",
		},
		"a remote source must still allow the consuming namespace": {
			annotations: withClusters("web", "spoke-1"), ref: remote, cluster: "spoke-1", why: "does not allow namespace app",
		},
		"a remote source must still carry replication-allowed": {
			annotations: map[string]string{ann.ReplicationAllowedNS: "app", ann.ReplicationAllowedClusters: "spoke-1"}, ref: remote, cluster: "spoke-1", why: "does not carry",
		},
		"allow-all does not open another cluster's sources": {
			annotations: allowed("app"), ref: remote, cluster: "spoke-1", allowAll: true, why: "is not served to other clusters",
		},
		"a replicator without a cluster name is refused every remote source": {
			annotations: withClusters("app", ".*"), ref: remote, why: "no cluster name",
		},
		"a local source needs no cluster list": {
			annotations: allowed("app"), ref: Ref{Namespace: "certs", Name: "wildcard"}, cluster: "spoke-1", want: true,
		},
		"an invalid cluster entry is skipped and a valid one still allows": {
			annotations: withClusters("app", "[, spoke-1"), ref: remote, cluster: "spoke-1", want: true,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			g := Gate{Annotations: ann, AllowAll: tt.allowAll, Cluster: tt.cluster}
			ok, why := g.Allows(tlsSource("A", tt.annotations), tt.ref, Namespace{Name: "app"})
			assert.Equal(t, tt.want, ok, why)
			if !tt.want {
				assert.Contains(t, why, tt.why)
				assert.Contains(t, why, tt.ref.String(), "the reason names the source with its cluster")
			}
		})
	}
}

func TestPlanPullFromAnotherClusterFillsAndRevocationEmpties(t *testing.T) {
	source := tlsSource("A", with(allowed("app"), ann.ReplicationAllowedClusters, "spoke-1"))
	target := tlsPlaceholder(map[string]string{ann.ReplicateFrom: "hub:certs/wildcard"})
	in := PullInput{Target: target, Source: source, Ref: Ref{Cluster: "hub", Namespace: "certs", Name: "wildcard"},
		Gate: Gate{Annotations: ann, Cluster: "spoke-1"}, Rules: Secrets().Rules(), Now: now}
	filled := PlanPull(in)
	require.NotNil(t, filled.Write)
	assert.True(t, data("tls.crt", "A", "tls.key", "key-A").Equal(filled.Write.Data))
	assert.Contains(t, filled.Event.Message, "hub:certs/wildcard")

	in.Target = *filled.Write
	in.Source = tlsSource("A", allowed("app")) // the cluster opt-in removed in the hub
	revoked := PlanPull(in)
	require.NotNil(t, revoked.Write)
	assert.Equal(t, ReasonDenied, revoked.Event.Reason)
	assert.True(t, data("tls.crt", "", "tls.key", "").Equal(revoked.Write.Data), "revocation in the remote empties the placeholder")
}

func TestKubedDialect(t *testing.T) {
	kubed := ann.WithDialects(NewDialects(DialectKubed))
	namespaces := []Namespace{ns("certs", nil), ns("sandbox", map[string]string{"cert-manager-tls": "sandbox"}), ns("other", nil)}
	tests := map[string]struct {
		a        Annotations
		value    string
		existing []*Object
		policy   *PushPolicy
		want     map[string]Action
		problems int
	}{
		"an empty value pushes into every namespace":          {a: kubed, value: "", want: map[string]Action{"sandbox": Create, "other": Create}},
		"true pushes into every namespace":                    {a: kubed, value: "true", want: map[string]Action{"sandbox": Create, "other": Create}},
		"a selector pushes into the namespaces it matches":    {a: kubed, value: "cert-manager-tls=sandbox", want: map[string]Action{"sandbox": Create}},
		"an invalid selector selects nothing and is reported": {a: kubed, value: "cert-manager-tls in (", want: map[string]Action{}, problems: 1},
		"without the dialect the annotation means nothing":    {a: ann, value: "", want: map[string]Action{}},
		"the push policy holds for kubed's annotation too": {
			a: kubed, value: "", policy: &PushPolicy{From: patterns("cert-manager")}, want: map[string]Action{}, problems: 1,
		},
		"a namespace that stops matching loses its copy, unlike kubed": {
			a: kubed, value: "cert-manager-tls=sandbox",
			existing: []*Object{func() *Object { r := ourReplica("other"); return r }()},
			want:     map[string]Action{"sandbox": Create, "other": Delete},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			source := pushSource(map[string]string{KubedSyncAnnotation: tt.value})
			byNS := map[string]*Object{}
			for _, o := range tt.existing {
				byNS[o.Namespace] = o
			}
			plan := PlanPush(PushInput{
				SourceRef: Ref{Namespace: "certs", Name: "wildcard"}, Source: source, Namespaces: namespaces, Owned: tt.existing,
				Existing: func(n string) *Object { return byNS[n] },
				Options:  PushOptions{Annotations: tt.a, Now: now, Policy: policyOr(tt.policy)},
			})
			got := map[string]Action{}
			for _, c := range plan.Changes {
				got[c.Object.Namespace] = c.Action
				if c.Action == Create {
					assert.Equal(t, "wildcard", c.Object.Labels["kubed.appscode.com/origin.name"], "kubed's bookkeeping")
					assert.Equal(t, "certs", c.Object.Labels["kubed.appscode.com/origin.namespace"])
					assert.Contains(t, c.Object.Annotations["kubed.appscode.com/origin"], `"name":"wildcard"`)
				}
			}
			assert.Equal(t, tt.want, got)
			assert.Len(t, plan.Problems, tt.problems)
		})
	}
}

// lookedUp is every list and selector the checks read, in order.
func lookedUp(groups [][]Check) []Lookup {
	var out []Lookup
	for _, group := range groups {
		for _, c := range group {
			out = append(out, c.Checked...)
		}
	}
	return out
}

func TestGateChecksSayWhatTheyRead(t *testing.T) {
	// 100 entries of 10 bytes: cut after the 20th.
	long := strings.Repeat("team-0000,", 99) + "team-last"
	list := func(key, value string, entries int) Written { return Written{Key: key, Value: value, Entries: entries} }
	tests := map[string]struct {
		a           Annotations // zero: ann
		annotations map[string]string
		ref         Ref // zero: certs/wildcard
		cluster     string
		ns          Namespace
		want        []Lookup
	}{
		"the entry that matched, as written": {
			annotations: allowed("web, blog-.*"), ns: ns("blog-a", nil),
			want: []Lookup{{Written: list(ann.ReplicationAllowedNS, "web, blog-.*", 2), Name: "blog-a", Matched: true, Entry: "blog-.*"}},
		},
		"a plain name matches itself": {
			annotations: allowed("shop,blog-.*"), ns: ns("shop", nil),
			want: []Lookup{{Written: list(ann.ReplicationAllowedNS, "shop,blog-.*", 2), Name: "shop", Matched: true, Entry: "shop"}},
		},
		"no entry matches a name it is only part of": {
			annotations: allowed("blog"), ns: ns("blog-a", nil),
			want: []Lookup{{Written: list(ann.ReplicationAllowedNS, "blog", 1), Name: "blog-a"}},
		},
		"a long list is cut after 200 bytes at an entry's end, its entries counted": {
			annotations: allowed(long), ns: ns("team-last", nil),
			want: []Lookup{{Written: Written{Key: ann.ReplicationAllowedNS, Value: strings.Repeat("team-0000,", 20), Truncated: true, Bytes: len(long), Entries: 100},
				Name: "team-last", Matched: true, Entry: "team-last"}},
		},
		"without a list nothing is read": {
			annotations: map[string]string{ann.ReplicationAllowed: "true"}, ns: ns("shop", nil),
		},
		"a source in another cluster: the namespaces, then the clusters": {
			annotations: with(allowed("app"), ann.ReplicationAllowedClusters, "spoke-.*"), ref: Ref{Cluster: "hub", Namespace: "certs", Name: "wildcard"},
			cluster: "spoke-1", ns: ns("app", nil),
			want: []Lookup{
				{Written: list(ann.ReplicationAllowedNS, "app", 1), Name: "app", Matched: true, Entry: "app"},
				{Written: list(ann.ReplicationAllowedClusters, "spoke-.*", 1), Name: "spoke-1", Matched: true, Entry: "spoke-.*"},
			},
		},
		"reflector's list and selector, when neither takes the namespace": {
			a: dialects, annotations: map[string]string{rk.Allowed: "true", rk.AllowedNamespaces: "staging", rk.AllowedSelector: "env=dev"},
			ns: ns("dev", map[string]string{"env": "prod"}),
			want: []Lookup{
				{Written: list(rk.AllowedNamespaces, "staging", 1), Name: "dev"},
				{Written: Written{Key: rk.AllowedSelector, Value: "env=dev", Selector: true}, Name: "dev"},
			},
		},
		"reflector's selector, read after its list": {
			a: dialects, annotations: map[string]string{rk.Allowed: "true", rk.AllowedNamespaces: "staging", rk.AllowedSelector: "env=dev"},
			ns: ns("dev", map[string]string{"env": "dev"}),
			want: []Lookup{
				{Written: list(rk.AllowedNamespaces, "staging", 1), Name: "dev"},
				{Written: Written{Key: rk.AllowedSelector, Value: "env=dev", Selector: true}, Name: "dev", Matched: true},
			},
		},
		"reflector's empty conditions mean every namespace": {
			a: dialects, annotations: map[string]string{rk.Allowed: "true"}, ns: ns("dev", nil),
			want: []Lookup{{Written: Written{Key: rk.AllowedNamespaces + ", " + rk.AllowedSelector}, Name: "dev", Matched: true, Every: true}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := tt.a
			if a.ReplicateFrom == "" {
				a = ann
			}
			ref := tt.ref
			if ref.Name == "" {
				ref = Ref{Namespace: "certs", Name: "wildcard"}
			}
			g := Gate{Annotations: a, Cluster: tt.cluster}
			groups := g.Checks(tlsSource("A", tt.annotations), ref, tt.ns)
			assert.Equal(t, tt.want, lookedUp(groups))
			ok, _ := g.Allows(tlsSource("A", tt.annotations), ref, tt.ns)
			assert.Equal(t, ok, len(tt.want) > 0 && tt.want[len(tt.want)-1].Matched, "the last list read decided")
		})
	}
}

func TestExcludeCheck(t *testing.T) {
	for name, tt := range map[string]struct {
		exclude string
		want    Check
	}{
		"no exclusion: nothing read": {want: Check{What: "--exclude-namespaces", Passed: true, Detail: "namespace kube-system is not excluded"}},
		"an excluded namespace, by the entry that matched": {exclude: "kube-.*,legacy", want: Check{What: "--exclude-namespaces",
			Detail:  "namespace kube-system is excluded by --exclude-namespaces: the replicator writes nothing in it",
			Checked: []Lookup{{Written: Written{Key: "--exclude-namespaces", Value: "kube-.*,legacy", Entries: 2}, Name: "kube-system", Matched: true, Entry: "kube-.*"}}}},
		"a namespace no entry matches": {exclude: "kube", want: Check{What: "--exclude-namespaces", Passed: true, Detail: "namespace kube-system is not excluded",
			Checked: []Lookup{{Written: Written{Key: "--exclude-namespaces", Value: "kube", Entries: 1}, Name: "kube-system"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, excludeCheck(patterns(tt.exclude), "kube-system"))
		})
	}
}

// With Explain, a push plan says what selected each namespace (the entry
// or selector, as written) and what closed it; the decisions are those of
// the plan without it.
func TestPushPlanSaysWhatDecidedEachNamespace(t *testing.T) {
	namespaces := []Namespace{
		ns("certs", nil), ns("team-a", map[string]string{"tls": "yes"}), ns("team-b", nil), ns("other", map[string]string{"tls": "yes"}), ns("kube-system", nil),
	}
	toList := func(key, value string, entries int) Written { return Written{Key: key, Value: value, Entries: entries} }
	tests := map[string]struct {
		a           Annotations // zero: ann
		annotations map[string]string
		policy      *PushPolicy // nil: pushFromAnywhere
		exclude     string
		read        []Written
		why         map[string][]Lookup
		excluded    []string
		refused     []string
	}{
		"a list's entry, a selector, a system namespace closed, an excluded one": {
			annotations: map[string]string{ann.ReplicateTo: "team-b, kube-.*", ann.ReplicateToMatching: "tls=yes"}, exclude: "other",
			read: []Written{toList(ann.ReplicateTo, "team-b, kube-.*", 2), {Key: ann.ReplicateToMatching, Value: "tls=yes", Selector: true}},
			why: map[string][]Lookup{
				"team-b": {{Written: toList(ann.ReplicateTo, "team-b, kube-.*", 2), Name: "team-b", Matched: true, Entry: "team-b"}},
				"team-a": {
					{Written: toList(ann.ReplicateTo, "team-b, kube-.*", 2), Name: "team-a"},
					{Written: Written{Key: ann.ReplicateToMatching, Value: "tls=yes", Selector: true}, Name: "team-a", Matched: true},
				},
				"kube-system": {
					{Written: toList(ann.ReplicateTo, "team-b, kube-.*", 2), Name: "kube-system", Matched: true, Entry: "kube-.*"},
					{Written: Written{Key: "--push-to-system-namespaces"}, Name: "kube-system"},
				},
				"other": {
					{Written: toList(ann.ReplicateTo, "team-b, kube-.*", 2), Name: "other"},
					{Written: Written{Key: ann.ReplicateToMatching, Value: "tls=yes", Selector: true}, Name: "other", Matched: true},
					{Written: toList("--exclude-namespaces", "other", 1), Name: "other", Matched: true, Entry: "other"},
				},
			},
			excluded: []string{"other"}, refused: []string{"kube-system"},
		},
		"an opened system namespace, and the source's namespace named plainly": {
			annotations: map[string]string{ann.ReplicateTo: "kube-system"},
			policy:      &PushPolicy{From: patterns("certs,team-.*"), ToSystem: patterns("kube-system")},
			read:        []Written{toList(ann.ReplicateTo, "kube-system", 1)},
			why: map[string][]Lookup{"kube-system": {
				{Written: toList(ann.ReplicateTo, "kube-system", 1), Name: "kube-system", Matched: true, Entry: "kube-system"},
				{Written: toList("--push-to-system-namespaces", "kube-system", 1), Name: "kube-system", Matched: true, Entry: "kube-system"},
				{Written: toList("--push-from-namespaces", "certs,team-.*", 2), Name: "certs", Matched: true, Entry: "certs", PlainOnly: true},
			}},
		},
		"the replicator's own namespace": {
			annotations: map[string]string{ann.ReplicateTo: "team-b"},
			policy:      &PushPolicy{From: patterns(".*"), Protected: []string{"team-b"}},
			read:        []Written{toList(ann.ReplicateTo, "team-b", 1)},
			why: map[string][]Lookup{"team-b": {
				{Written: toList(ann.ReplicateTo, "team-b", 1), Name: "team-b", Matched: true, Entry: "team-b"},
				{Written: Written{Key: "--namespace", Value: "team-b"}, Name: "team-b", Matched: true, Entry: "team-b"},
			}},
			refused: []string{"team-b"},
		},
		"kubed's every namespace, reflector's auto push within its allowed list": {
			a: dialects, annotations: map[string]string{KubedSyncAnnotation: "", rk.Allowed: "true", rk.AllowedNamespaces: "team-.*", rk.AutoEnabled: "true"},
			read: []Written{{Key: KubedSyncAnnotation}, toList(rk.AllowedNamespaces, "team-.*", 1), {Key: rk.AutoNamespaces + ", " + rk.AutoSelector}},
			why: map[string][]Lookup{
				"team-a":      {{Written: Written{Key: KubedSyncAnnotation}, Name: "team-a", Matched: true, Every: true}},
				"team-b":      {{Written: Written{Key: KubedSyncAnnotation}, Name: "team-b", Matched: true, Every: true}},
				"other":       {{Written: Written{Key: KubedSyncAnnotation}, Name: "other", Matched: true, Every: true}},
				"kube-system": {{Written: Written{Key: KubedSyncAnnotation}, Name: "kube-system", Matched: true, Every: true}, {Written: Written{Key: "--push-to-system-namespaces"}, Name: "kube-system"}},
			},
			refused: []string{"kube-system"},
		},
		"reflector's auto push alone: the allowed entry, then the auto one": {
			a: dialects, annotations: map[string]string{rk.Allowed: "true", rk.AllowedNamespaces: "team-.*", rk.AutoEnabled: "true", rk.AutoNamespaces: "team-b"},
			read: []Written{toList(rk.AllowedNamespaces, "team-.*", 1), toList(rk.AutoNamespaces, "team-b", 1)},
			why: map[string][]Lookup{"team-b": {
				{Written: toList(rk.AllowedNamespaces, "team-.*", 1), Name: "team-b", Matched: true, Entry: "team-.*"},
				{Written: toList(rk.AutoNamespaces, "team-b", 1), Name: "team-b", Matched: true, Entry: "team-b"},
			}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := tt.a
			if a.ReplicateFrom == "" {
				a = ann
			}
			in := PushInput{
				SourceRef: Ref{Namespace: "certs", Name: "wildcard"}, Source: pushSource(tt.annotations), Namespaces: namespaces,
				Existing: func(string) *Object { return nil },
				Options:  PushOptions{Annotations: a, Exclude: patterns(tt.exclude), Now: now, Policy: policyOr(tt.policy), Explain: true},
			}
			plan := PlanPush(in)
			assert.Equal(t, tt.read, plan.Read)
			assert.Equal(t, tt.why, plan.Why)
			assert.Equal(t, tt.excluded, plan.Excluded)
			assert.Equal(t, tt.refused, plan.Refused)
			require.NotNil(t, plan.Policy)
			assert.True(t, plan.Policy.Passed)

			in.Options.Explain = false
			without := PlanPush(in)
			assert.Nil(t, without.Why)
			assert.Nil(t, without.Read)
			assert.Equal(t, plan.Targets, without.Targets, "explaining changes no decision")
			assert.Equal(t, plan.Refused, without.Refused)
			assert.Equal(t, plan.Excluded, without.Excluded)
			assert.Equal(t, len(plan.Changes), len(without.Changes))
		})
	}
}
