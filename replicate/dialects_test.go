package replicate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDialectsOnlyForSecretsAndConfigMaps(t *testing.T) {
	want := map[string]bool{"Secret": true, "ConfigMap": true, "Role": false, "RoleBinding": false, "ServiceAccount": false}
	for _, kind := range Kinds() {
		a := dialects.forKind(kind)
		assert.Equal(t, want[kind.Name()], a.Dialects.Reads(DialectReflector), kind.Name())
		assert.Equal(t, want[kind.Name()], a.Dialects.Reads(DialectKubed), kind.Name())
	}
	assert.False(t, ann.forKind(Secrets()).Dialects.Reads(DialectReflector))
	for _, kind := range Kinds() {
		h := newHarness(t, harnessOptions{kind: kind, annotations: dialects})
		assert.Equal(t, dialects.forKind(kind), h.ctrl.opts.Annotations, "%s: each controller reads the dialects its kind speaks", kind.Name())
	}
}

func TestReflectorPush(t *testing.T) {
	namespaces := []Namespace{
		ns("cert-manager", nil), ns("dev", map[string]string{"env": "dev"}), ns("staging", nil), ns("prod", map[string]string{"tier": "prod"}),
		ns("dev-evil", map[string]string{"env": "dev"}), ns("other", nil), ns("kube-system", nil),
	}
	foreign := &Object{Namespace: "staging", Name: "wildcard", Type: "kubernetes.io/tls", Data: data("tls.crt", "mine")}
	reflectorCopy := &Object{Namespace: "prod", Name: "wildcard", Type: "kubernetes.io/tls", UID: "u", ResourceVersion: "3", Data: data("tls.crt", "old"),
		Annotations: map[string]string{rk.Reflects: "cert-manager/wildcard", rk.AutoReflects: "True", rk.ReflectedVersion: "1", rk.ReflectedAt: "2026-01-01T00:00:00.0000000+00:00"}}
	tests := map[string]struct {
		a           Annotations
		annotations map[string]string
		existing    []*Object
		typ         string
		policy      *PushPolicy
		want        map[string]Action
		conflicts   []string
		problems    int
	}{
		"the push policy holds for reflector's annotations too": {
			annotations: reflectorRecipe(), policy: &PushPolicy{From: patterns("certs")},
			existing: []*Object{ourReflectorReplica("prod")},
			want:     map[string]Action{"prod": Delete}, problems: 1,
		},
		"the FAQ recipe pushes into dev, staging and prod": {
			annotations: reflectorRecipe(),
			want:        map[string]Action{"dev": Create, "staging": Create, "prod": Create},
		},
		"patterns match whole names only (dev does not select dev-evil)": {
			annotations: with(reflectorRecipe(), rk.AutoNamespaces, "dev"),
			want:        map[string]Action{"dev": Create},
		},
		"auto push needs reflection-allowed": {
			annotations: with(reflectorRecipe(), rk.Allowed, "false"),
			want:        map[string]Action{},
		},
		"auto push needs reflection-auto-enabled": {
			annotations: with(reflectorRecipe(), rk.AutoEnabled, "<none>"),
			want:        map[string]Action{},
		},
		"booleans are read as reflector reads them (any case, blanks around)": {
			annotations: with(reflectorRecipe(), rk.Allowed, " True ", rk.AutoEnabled, "TRUE"),
			want:        map[string]Action{"dev": Create, "staging": Create, "prod": Create},
		},
		"auto push goes only where both the allowed and the auto conditions hold": {
			annotations: with(reflectorRecipe(), rk.AllowedNamespaces, "dev,prod", rk.AutoNamespaces, "staging,prod,other"),
			want:        map[string]Action{"prod": Create},
		},
		"empty lists mean every namespace, as reflector documents (never the system ones)": {
			annotations: with(reflectorRecipe(), rk.AllowedNamespaces, "", rk.AutoNamespaces, "<none>"),
			want:        map[string]Action{"dev": Create, "staging": Create, "prod": Create, "dev-evil": Create, "other": Create},
			problems:    1, // kube-system refused, and said so
		},
		"a list of only commas selects no namespace": {
			annotations: with(reflectorRecipe(), rk.AutoNamespaces, ",,"),
			want:        map[string]Action{},
		},
		"a selector is ORed with the list": {
			annotations: with(reflectorRecipe(), rk.AllowedNamespaces, "<none>", rk.AllowedSelector, "env=dev", rk.AutoNamespaces, "<none>", rk.AutoSelector, "env=dev"),
			want:        map[string]Action{"dev": Create, "dev-evil": Create},
		},
		"a selector alone narrows the auto set": {
			annotations: with(reflectorRecipe(), rk.AutoNamespaces, "<none>", rk.AutoSelector, "tier=prod"),
			want:        map[string]Action{"prod": Create},
		},
		"an invalid selector selects nothing and is reported": {
			annotations: with(reflectorRecipe(), rk.AutoNamespaces, "<none>", rk.AutoSelector, "tier in ("),
			want:        map[string]Action{}, problems: 1,
		},
		"an invalid pattern matches nothing, the others apply, and it is reported": {
			annotations: with(reflectorRecipe(), rk.AutoNamespaces, "dev,(", rk.AllowedNamespaces, "dev,staging"),
			want:        map[string]Action{"dev": Create}, problems: 1,
		},
		"a Helm release Secret is never a source": {
			annotations: reflectorRecipe(), typ: "helm.sh/release.v1",
			want: map[string]Action{},
		},
		"without the dialect reflector's annotations mean nothing": {
			a: ann, annotations: reflectorRecipe(), want: map[string]Action{},
		},
		"an object of the source's name that no replicator made is never overwritten": {
			annotations: reflectorRecipe(), existing: []*Object{foreign},
			want: map[string]Action{"dev": Create, "prod": Create}, conflicts: []string{"staging"},
		},
		"a copy reflector's auto push made is adopted": {
			annotations: reflectorRecipe(), existing: []*Object{reflectorCopy},
			want: map[string]Action{"dev": Create, "staging": Create, "prod": Adopt},
		},
		"a namespace no longer allowed loses our copy": {
			annotations: with(reflectorRecipe(), rk.AllowedNamespaces, "dev,staging"),
			existing:    []*Object{ourReflectorReplica("prod")},
			want:        map[string]Action{"dev": Create, "staging": Create, "prod": Delete},
		},
		"reflection-allowed removed deletes our copies": {
			annotations: with(reflectorRecipe(), rk.Allowed, "<none>"),
			existing:    []*Object{ourReflectorReplica("prod")},
			want:        map[string]Action{"prod": Delete},
		},
		"two dialects on one source push into the union of their namespaces": {
			annotations: with(reflectorRecipe(), rk.AutoNamespaces, "dev", ann.ReplicateTo, "staging", KubedSyncAnnotation, "tier=prod"),
			want:        map[string]Action{"dev": Create, "staging": Create, "prod": Create},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := orDialects(tt.a)
			source := certManagerSource(tt.annotations, tt.typ)
			byNS := map[string]*Object{}
			var owned []*Object
			for _, o := range tt.existing {
				byNS[o.Namespace] = o
				if o.Annotations[a.ReplicatedFrom] != "" {
					owned = append(owned, o)
				}
			}
			plan := PlanPush(PushInput{
				SourceRef: Ref{Namespace: "cert-manager", Name: "wildcard"}, Source: source, Namespaces: namespaces, Owned: owned,
				Existing: func(n string) *Object { return byNS[n] },
				Options:  PushOptions{Annotations: a, Now: now, Policy: policyOr(tt.policy)},
			})
			got := map[string]Action{}
			for _, c := range plan.Changes {
				got[c.Object.Namespace] = c.Action
				if c.Action == Create && a.Dialects.Reads(DialectReflector) && a.reflectorPushSource(source.Annotations) {
					assert.Equal(t, "cert-manager/wildcard", c.Object.Annotations[rk.Reflects], "reflector's bookkeeping")
					assert.Equal(t, "True", c.Object.Annotations[rk.AutoReflects])
					assert.Equal(t, "7", c.Object.Annotations[rk.ReflectedVersion])
					assert.NotEmpty(t, c.Object.Annotations[rk.ReflectedAt])
					assert.Equal(t, "cert-manager/wildcard", c.Object.Annotations[ann.ReplicatedFrom], "our marker")
				}
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.conflicts, plan.Conflicts)
			assert.Len(t, plan.Problems, tt.problems)
		})
	}
}

func TestReflectorCopiesCarryTypeAndDataOnlyAndSettle(t *testing.T) {
	source := certManagerSource(reflectorRecipe(), "")
	opts := PushOptions{Annotations: dialects, Now: now}
	r := replica(source, "dev", "cert-manager/wildcard", opts)
	assert.Empty(t, r.Labels, "a source pushed only in reflector's dialect gives its copies no labels, as reflector")

	both := *source
	both.Annotations = with(reflectorRecipe(), ann.ReplicateTo, "dev")
	assert.Equal(t, map[string]string{"app": "web"}, replica(&both, "dev", "cert-manager/wildcard", opts).Labels, "with our annotation too, ours rule")

	// The source's annotations change, not its data: the copy stays as it
	// is (no moving reflected-version, no write).
	r.UID, r.ResourceVersion = "u", "5"
	source.ResourceVersion = "8"
	later := opts
	later.Now = now.Add(time.Hour)
	_, changed := updateReplica(&r, replica(source, "dev", "cert-manager/wildcard", later), dialects)
	assert.False(t, changed, "stamps move only with data")

	source.Data = data("tls.crt", "B", "tls.key", "key-B")
	c, changed := updateReplica(&r, replica(source, "dev", "cert-manager/wildcard", later), dialects)
	require.True(t, changed)
	assert.Equal(t, "8", c.Object.Annotations[rk.ReflectedVersion], "a renewal moves reflector's version too")
	assert.Equal(t, "8", c.Object.Annotations[ann.ReplicatedFromVersion])
}

func TestPullReference(t *testing.T) {
	tests := map[string]struct {
		a           Annotations
		annotations map[string]string
		value, key  string
	}{
		"replicate-from":                        {a: dialects, annotations: map[string]string{ann.ReplicateFrom: "certs/a"}, value: "certs/a", key: ann.ReplicateFrom},
		"a reflector mirror":                    {a: dialects, annotations: map[string]string{rk.Reflects: "certs/a"}, value: "certs/a", key: rk.Reflects},
		"replicate-from wins over reflects":     {a: dialects, annotations: map[string]string{rk.Reflects: "certs/a", ann.ReplicateFrom: "certs/b"}, value: "certs/b", key: ann.ReplicateFrom},
		"a copy of reflector's auto push":       {a: dialects, annotations: map[string]string{rk.Reflects: "certs/a", rk.AutoReflects: "True"}},
		"reflects without the dialect":          {a: ann, annotations: map[string]string{rk.Reflects: "certs/a"}},
		"auto-reflects False is still a mirror": {a: dialects, annotations: map[string]string{rk.Reflects: "certs/a", rk.AutoReflects: "False"}, value: "certs/a", key: rk.Reflects},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			value, key, ok := tt.a.pullReference(tt.annotations)
			assert.Equal(t, tt.key != "", ok)
			assert.Equal(t, tt.value, value)
			assert.Equal(t, tt.key, key)
		})
	}
}

func TestReflectorPull(t *testing.T) {
	mirror := func(extra ...string) Object {
		a := with(map[string]string{rk.Reflects: "cert-manager/wildcard"}, extra...)
		return Object{Namespace: "dev", Name: "any-name", Type: "kubernetes.io/tls", Data: data("tls.crt", "", "tls.key", ""), Annotations: a}
	}
	dev := ns("dev", map[string]string{"env": "dev"})
	tests := map[string]struct {
		a           Annotations
		target      Object
		annotations map[string]string
		ns          Namespace
		typ         string
		filled      bool
		reason      string
	}{
		"a mirror in a listed namespace is filled": {
			target: mirror(), annotations: reflectorRecipe(), ns: dev, filled: true, reason: ReasonReplicated,
		},
		"a mirror in an unlisted namespace is refused": {
			target: mirror(), annotations: with(reflectorRecipe(), rk.AllowedNamespaces, "staging"), ns: dev, reason: ReasonDenied,
		},
		"an empty allowed list lets every namespace have it": {
			target: mirror(), annotations: with(reflectorRecipe(), rk.AllowedNamespaces, " "), ns: dev, filled: true, reason: ReasonReplicated,
		},
		"the allowed selector lets a labelled namespace have it": {
			target: mirror(), annotations: with(reflectorRecipe(), rk.AllowedNamespaces, "staging", rk.AllowedSelector, "env=dev"), ns: dev, filled: true, reason: ReasonReplicated,
		},
		"without reflection-allowed nothing is shared": {
			target: mirror(), annotations: with(reflectorRecipe(), rk.Allowed, "<none>"), ns: dev, reason: ReasonDenied,
		},
		"a Helm release Secret is never shared": {
			target: mirror(), annotations: reflectorRecipe(), ns: dev, typ: "helm.sh/release.v1", reason: ReasonDenied,
		},
		"a replicate-from placeholder may take a source allowed in reflector's dialect": {
			target: tlsPlaceholderIn("dev", "cert-manager/wildcard"), annotations: reflectorRecipe(), ns: dev, filled: true, reason: ReasonReplicated,
		},
		"without the dialect reflector's consent counts for nothing": {
			a: ann, target: tlsPlaceholderIn("dev", "cert-manager/wildcard"), annotations: reflectorRecipe(), ns: dev, reason: ReasonDenied,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := orDialects(tt.a)
			source := certManagerSource(tt.annotations, tt.typ)
			d := PlanPull(PullInput{Target: tt.target, Source: source, Ref: Ref{Namespace: "cert-manager", Name: "wildcard"}, Namespace: tt.ns,
				Gate: Gate{Annotations: a}, Rules: Secrets().Rules(), Now: now})
			require.NotNil(t, d.Event)
			assert.Equal(t, tt.reason, d.Event.Reason, d.Event.Message)
			if !tt.filled {
				assert.True(t, d.Write == nil || d.Write.Data.Equal(tt.target.Data), "nothing shared")
				return
			}
			require.NotNil(t, d.Write)
			assert.True(t, data("tls.crt", "A", "tls.key", "key-A").Equal(d.Write.Data))
			_, key, _ := a.pullReference(tt.target.Annotations)
			if key == rk.Reflects {
				assert.Equal(t, "7", d.Write.Annotations[rk.ReflectedVersion], "reflector reads its mirror as up to date after a rollback")
				assert.NotEmpty(t, d.Write.Annotations[rk.ReflectedAt])
			} else {
				assert.NotContains(t, d.Write.Annotations, rk.ReflectedVersion)
			}
		})
	}
}

func TestReflectorMirrorIsEmptiedWhenRevokedAndSettles(t *testing.T) {
	source := certManagerSource(reflectorRecipe(), "")
	in := PullInput{
		Target: Object{Namespace: "dev", Name: "tls", Type: "kubernetes.io/tls", Data: data("tls.crt", "", "tls.key", ""),
			Annotations: map[string]string{rk.Reflects: "cert-manager/wildcard"}},
		Source: source, Ref: Ref{Namespace: "cert-manager", Name: "wildcard"}, Namespace: Namespace{Name: "dev"},
		Gate: Gate{Annotations: dialects}, Rules: Secrets().Rules(), Now: now,
	}
	filled := PlanPull(in)
	require.NotNil(t, filled.Write)
	in.Target = *filled.Write
	assert.Nil(t, PlanPull(in).Write, "a filled mirror needs no write")

	in.Source = &Object{Namespace: "cert-manager", Name: "wildcard", ResourceVersion: "8", Type: "kubernetes.io/tls",
		Data: source.Data, Annotations: with(reflectorRecipe(), rk.AllowedNamespaces, "prod")}
	revoked := PlanPull(in)
	require.NotNil(t, revoked.Write)
	assert.Equal(t, ReasonDenied, revoked.Event.Reason)
	assert.True(t, data("tls.crt", "", "tls.key", "").Equal(revoked.Write.Data), "unlike reflector, revoking the namespace revokes the data")
	assert.NotContains(t, revoked.Write.Annotations, rk.ReflectedVersion, "so that reflector would fill it again after a rollback")
}

func TestParseDialects(t *testing.T) {
	tests := map[string]struct {
		list string
		want []Dialect
		err  string
	}{
		"the replicator's own only, by default":           {list: "replicator"},
		"nothing at all is the replicator's own only too": {list: ""},
		"blanks around names are allowed":                 {list: "replicator, kubed", want: []Dialect{DialectKubed}},
		"every dialect, listed in a fixed order":          {list: "kubed,reflector,replicator", want: []Dialect{DialectReflector, DialectKubed}},
		"an unknown name is refused, as written":          {list: "replicator,kubectl", err: `"kubectl" is none of replicator, reflector, kubed`},
		"names are separated by commas only":              {list: "reflector;kubed", err: `"reflector;kubed" is none of replicator, reflector, kubed`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseDialects(tt.list)
			if tt.err != "" {
				assert.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got.List())
			assert.Equal(t, NewDialects(tt.want...), got)
			assert.Equal(t, got.Empty(), len(tt.want) == 0)
			again, err := ParseDialects(got.String())
			require.NoError(t, err)
			assert.Equal(t, got, again, "String writes what ParseDialects reads")
		})
	}
	all := NewDialects(DialectReflector, DialectKubed)
	assert.Equal(t, NewDialects(DialectKubed), all.Only(NewDialects(DialectKubed)), "Only is the dialects in both")
	assert.True(t, all.Only(Dialects{}).Empty())
}
