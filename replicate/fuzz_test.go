package replicate

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The fuzz targets run their seed corpus as ordinary tests (go test); with
// go test -fuzz=FuzzX ./replicate/ they search for more.

func FuzzParsePatterns(f *testing.F) {
	for _, seed := range []struct{ list, name string }{
		{"team-.*", "team-a"}, {"a|b", "a-evil"}, {"^prod$", "prod"}, {"a(", "a"},
		{" a , b\t", "b"}, {"(?i)PROD", "prod"}, {"a$|^b", "xb"}, {`a\z|b`, "ab"},
		{"[a-z]+", "team-a"}, {"x{1001}", "x"}, {"(?s).*", "a\nb"}, {",,,", ""},
		{"t\u0435am-a", "team-a"}, // a Cyrillic e
	} {
		f.Add(seed.list, seed.name)
	}
	f.Fuzz(func(t *testing.T, list, name string) {
		p, _ := ParsePatterns(list)
		if !p.Match(name) {
			return
		}
		// Whatever matched, one accepted entry matches the whole name as an
		// anchored expression: no entry can match a part of a name.
		whole := false
		for _, entry := range strings.Split(list, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" || len(entry) > MaxPatternLength {
				continue
			}
			re, err := regexp.Compile("^(?:" + entry + ")$")
			if err != nil {
				continue
			}
			if loc := re.FindStringIndex(name); loc != nil && loc[0] == 0 && loc[1] == len(name) {
				whole = true
			}
		}
		if !whole {
			t.Fatalf("%q matched %q, but no entry matches the whole name", list, name)
		}
		// A plain entry (no metacharacters) matches exactly itself.
		if entry := strings.TrimSpace(list); entry != "" && !strings.Contains(entry, ",") && regexp.QuoteMeta(entry) == entry && entry != name {
			t.Fatalf("plain entry %q matched another name %q", entry, name)
		}
	})
}

func FuzzParseRef(f *testing.F) {
	for _, seed := range []string{
		"certs/wildcard", "wildcard", " certs/wildcard ", "a/b/c", "../etc", "certs/..", "hub:certs/wildcard",
		"HUB:certs/x", ":certs/x", "certs/", "/x", "certs/wild card", "сerts/wildcard", strings.Repeat("a", 300) + "/x",
		"certs/x:y", "a:b:c/d",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		for _, validName := range []NameValidator{validation.IsDNS1123Subdomain, validRBACName} {
			r, err := ParseRef(value, "default", validName)
			if err != nil {
				continue
			}
			// Every accepted reference names a valid namespace and object,
			// and prints back to something that parses to the same.
			assert.Empty(t, validation.IsDNS1123Label(r.Namespace), "namespace of %q", value)
			assert.Empty(t, validName(r.Name), "name of %q", value)
			if r.Cluster != "" {
				assert.Empty(t, validation.IsDNS1123Label(r.Cluster), "cluster of %q", value)
			}
			again, err := ParseRef(r.String(), "other", validName)
			require.NoError(t, err, "%q printed as %q", value, r.String())
			assert.Equal(t, r, again)
		}
	})
}

func FuzzPushSelector(f *testing.F) {
	for _, seed := range []string{"", "tls=yes", "env in (prod)", "!legacy", "a=b,c!=d", "x in (", " ", "tls", "a==b", "a notin ()"} {
		f.Add(seed, "tls", "yes")
	}
	f.Fuzz(func(t *testing.T, selector, key, value string) {
		source := &Object{Namespace: "src", Name: "s", Annotations: map[string]string{ann.ReplicateToMatching: selector}}
		namespaces := []Namespace{{Name: "src", Labels: map[string]string{key: value}}, {Name: "n", Labels: map[string]string{key: value}}, {Name: "bare"}}
		targets, problems := PushTargets(source, namespaces, PushOptions{Annotations: ann})
		assert.False(t, targets["src"], "never the source's own namespace")
		if strings.TrimSpace(selector) == "" {
			assert.Empty(t, targets, "an empty selector selects nothing")
			return
		}
		sel, err := labels.Parse(selector)
		if err != nil {
			assert.Empty(t, targets, "an invalid selector selects nothing")
			assert.NotEmpty(t, problems, "and is reported")
			return
		}
		assert.Equal(t, sel.Matches(labels.Set{key: value}), targets["n"])
		assert.Equal(t, sel.Matches(labels.Set{}), targets["bare"])
	})
}

func TestPatternListLimits(t *testing.T) {
	many := strings.Repeat("team-.*,", MaxPatterns+1)
	start := time.Now()
	p, errs := ParsePatterns(many)
	assert.Less(t, time.Since(start), time.Second, "refused without compiling")
	assert.Empty(t, p.res)
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), fmt.Sprintf("%d entries", MaxPatterns+1))

	atLimit := strings.Repeat("team-.*,", MaxPatterns)
	p, errs = ParsePatterns(atLimit)
	assert.Empty(t, errs)
	assert.True(t, p.Match("team-a"))

	long := strings.Repeat("a", MaxPatternLength+1)
	p, errs = ParsePatterns(long + ",b")
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "bytes long")
	assert.Less(t, len(errs[0].Error()), 200, "the message quotes a short prefix of the entry")
	assert.False(t, p.Match(long))
	assert.True(t, p.Match("b"))
}

func TestCachedPatternParser(t *testing.T) {
	parse := CachedPatternParser(2)
	a1, _ := parse("a|b")
	a2, _ := parse("a|b")
	require.NotEmpty(t, a1.res)
	assert.Same(t, a1.res[0], a2.res[0], "compiled once")
	_, errs := parse("a(")
	assert.Len(t, errs, 1, "errors are remembered too")
	big := strings.Repeat("abcdefghij,", maxCachedList/10)
	b1, _ := parse(big)
	b2, _ := parse(big)
	assert.NotSame(t, b1.res[0], b2.res[0], "long lists are not kept")
}
