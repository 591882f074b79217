package replicate

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestPatterns(t *testing.T) {
	tests := map[string]struct {
		list    string
		match   []string
		noMatch []string
		invalid int
	}{
		"a plain name matches only itself": {
			list: "team-a", match: []string{"team-a"}, noMatch: []string{"team-a-evil", "xteam-a", "team", ""},
		},
		"an entry must match the whole name, not a prefix or suffix": {
			list: "team-.*", match: []string{"team-a", "team-"}, noMatch: []string{"my-team-a"},
		},
		"alternation is anchored as a whole": {
			list: "a|b", match: []string{"a", "b"}, noMatch: []string{"a-evil", "evil-b", "ab"},
		},
		"explicit anchors are harmless": {
			list: "^prod$", match: []string{"prod"}, noMatch: []string{"prod2"},
		},
		"whitespace around entries is trimmed": {
			list: "  a , b\t", match: []string{"a", "b"}, noMatch: []string{" a", "a "},
		},
		"empty entries and trailing commas are ignored": {
			list: ",a,,b,", match: []string{"a", "b"}, noMatch: []string{""},
		},
		"an empty list matches nothing": {
			list: "", noMatch: []string{"", "a", "default"},
		},
		"an invalid entry matches nothing and the others still apply": {
			list: "a(,b", match: []string{"b"}, noMatch: []string{"a(", "a"}, invalid: 1,
		},
		"a dot is a regular expression, not a literal": {
			list: "team.a", match: []string{"team.a", "team-a"}, noMatch: []string{"team--a"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, errs := ParsePatterns(tt.list)
			assert.Len(t, errs, tt.invalid)
			for _, n := range tt.match {
				assert.True(t, p.Match(n), "should match %q", n)
			}
			for _, n := range tt.noMatch {
				assert.False(t, p.Match(n), "should not match %q", n)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	tests := map[string]struct {
		value string
		want  Ref
		err   string
	}{
		"namespace and name":                       {value: "certs/wildcard", want: Ref{Namespace: "certs", Name: "wildcard"}},
		"a bare name means the target's namespace": {value: "wildcard", want: Ref{Namespace: "here", Name: "wildcard"}},
		"surrounding whitespace is ignored":        {value: " certs/wildcard\n", want: Ref{Namespace: "certs", Name: "wildcard"}},
		"a cluster prefix names another cluster":   {value: "hub:certs/wildcard", want: Ref{Cluster: "hub", Namespace: "certs", Name: "wildcard"}},
		"empty is malformed":                       {value: "", err: "empty"},
		"whitespace only is malformed":             {value: "  \t", err: "empty"},
		"two slashes are malformed":                {value: "a/b/c", err: "more than one"},
		"an empty namespace is malformed":          {value: "/name", err: "namespace"},
		"an empty name is malformed":               {value: "ns/", err: "name"},
		"inner whitespace is malformed":            {value: "ns/my name", err: "name"},
		"dot-dot is not a namespace":               {value: "../secret", err: "namespace"},
		"upper case is not a namespace":            {value: "Certs/wildcard", err: "namespace"},
		"a unicode look-alike is not a namespace":  {value: "cеrts/wildcard", err: "namespace"},
		"an overlong name is malformed":            {value: "ns/" + string(make([]byte, 300)), err: "name"},
		"an invalid cluster name is malformed":     {value: "Hub:certs/wildcard", err: "cluster"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseRef(tt.value, "here", validation.IsDNS1123Subdomain)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseRefLetsRoleNamesHaveColons(t *testing.T) {
	anyName := func(string) []string { return nil }
	got, err := ParseRef("rbac/system:reader", "here", anyName)
	assert.NoError(t, err)
	assert.Equal(t, Ref{Namespace: "rbac", Name: "system:reader"}, got)
}

func TestFindCycle(t *testing.T) {
	refs := map[Ref]Ref{
		{Namespace: "a", Name: "x"}: {Namespace: "b", Name: "x"},
		{Namespace: "b", Name: "x"}: {Namespace: "a", Name: "x"},
		{Namespace: "c", Name: "x"}: {Namespace: "d", Name: "x"},
	}
	next := func(r Ref) (Ref, bool) { n, ok := refs[r]; return n, ok }
	assert.True(t, FindCycle(Ref{Namespace: "a", Name: "x"}, Ref{Namespace: "b", Name: "x"}, next, 8), "a two-step cycle back to the target")
	assert.False(t, FindCycle(Ref{Namespace: "e", Name: "x"}, Ref{Namespace: "c", Name: "x"}, next, 8), "a chain that ends")
	assert.True(t, FindCycle(Ref{Namespace: "e", Name: "x"}, Ref{Namespace: "a", Name: "x"}, next, 8), "a cycle further down the chain")
}
