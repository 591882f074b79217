package replicate

import (
	"container/list"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
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
	many := strings.Repeat("team-a,", MaxPatterns+1)
	start := time.Now()
	p, errs := ParsePatterns(many)
	assert.Less(t, time.Since(start), time.Second, "refused without compiling")
	assert.True(t, p.Empty())
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), fmt.Sprintf("%d entries", MaxPatterns+1))
	assert.Contains(t, errs[0].Error(), "MaxPatterns")

	names := make([]string, MaxPatterns)
	for i := range names {
		names[i] = fmt.Sprintf("team-%d", i)
	}
	p, errs = ParsePatterns(strings.Join(names, ","))
	assert.Empty(t, errs, "a thousand plain names are accepted")
	assert.True(t, p.Match("team-999"))
	assert.Nil(t, p.exprs, "and compared, not compiled")

	long := strings.Repeat("a", MaxPatternLength+1)
	p, errs = ParsePatterns(long + ",b")
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "bytes long")
	assert.Less(t, len(errs[0].Error()), 200, "the message quotes a short prefix of the entry")
	assert.False(t, p.Match(long))
	assert.True(t, p.Match("b"))
}

// Entries are separated by commas, so a repetition written {n,m} splits
// into two entries; the cases use {n}.
func TestPatternCostLimits(t *testing.T) {
	tests := map[string]struct {
		list     string
		match    string
		matches  bool
		refused  string // in the error; empty: no error
		wholeBad bool   // the list is refused as a whole
	}{
		"a plain name costs nothing and matches itself only": {
			list: "team-a", match: "team-a", matches: true,
		},
		"an ordinary expression is accepted": {
			list: "team-[a-z0-9]+, ops-[0-9]{3}", match: "team-x1", matches: true,
		},
		"a few bytes that compile to thousands of instructions are refused": {
			list: "(?i)[[:alpha:]]{1000},b", match: "b", matches: true, refused: "MaxPatternCost",
		},
		"nested repetitions are costed before they are compiled": {
			list: "((a{10}){10}){10},b", match: "aaaa", refused: "MaxPatternCost",
		},
		"cheap entries that add up past the list's budget refuse the whole list": {
			list: strings.Repeat("[a-z]{60}x,", 40), match: "ax", refused: "MaxListCost", wholeBad: true,
		},
		"a list longer than MaxListBytes is refused whole": {
			list: strings.Repeat(strings.Repeat("a", 39)+",", MaxListBytes/40+1), match: strings.Repeat("a", 39), refused: "MaxListBytes", wholeBad: true,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			p, errs := ParsePatterns(tt.list)
			assert.Less(t, time.Since(start), 100*time.Millisecond)
			assert.Equal(t, tt.matches, p.Match(tt.match))
			if tt.refused == "" {
				assert.Empty(t, errs)
				return
			}
			require.NotEmpty(t, errs)
			assert.Contains(t, errs[0].Error(), tt.refused)
			var whole *ListError
			assert.Equal(t, tt.wholeBad, errors.As(errs[0], &whole))
			if tt.wholeBad {
				assert.True(t, p.Empty())
			}
		})
	}
}

// FuzzPatternCost checks that what ParsePatterns accepts costs what it says:
// the compiled program of every accepted expression is no larger than its
// cost, so the limits bound memory and matching time whatever is written.
func FuzzPatternCost(f *testing.F) {
	for _, seed := range []string{
		"team-.*", "[a-z]{63}", "(?i)[[:alpha:]]{1000}", "((a{10}){10}){10}", "(a|b|c){2,5}x*", "x{0}", "a{3,}",
		"(?:[a-z0-9]{63}[a-z]){15}", "a{2,}b{0,3}", `\pL{1,100}`, "(((a?)?)?){100}", "[^a]{200}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		if strings.Contains(entry, ",") || len(entry) > MaxPatternLength {
			return
		}
		start := time.Now()
		cost, err := PatternCost(entry)
		if err != nil || plainName(strings.TrimSpace(entry)) {
			return
		}
		re, err := syntax.Parse("^(?:"+strings.TrimSpace(entry)+")$", syntax.Perl)
		require.NoError(t, err)
		if cost > MaxPatternCost {
			assert.Less(t, time.Since(start), 50*time.Millisecond, "costed without compiling")
			return
		}
		prog, err := syntax.Compile(re.Simplify())
		require.NoError(t, err)
		assert.LessOrEqual(t, len(prog.Inst), cost, "%q compiles to more than its cost", entry)
		// Matching the longest name a label can be stays quick.
		p, _ := ParsePatterns(entry)
		start = time.Now()
		p.Match(strings.Repeat("a", 63))
		assert.Less(t, time.Since(start), 50*time.Millisecond)
	})
}

func TestCachedPatternParser(t *testing.T) {
	parse := CachedPatternParser(1 << 20)
	a1, _ := parse("a|b")
	a2, _ := parse("a|b")
	require.NotNil(t, a1.exprs)
	assert.Same(t, a1.exprs, a2.exprs, "parsed once")
	assert.True(t, a1.Match("a"))
	assert.Same(t, a1.compiled()[0], a2.compiled()[0], "compiled once")
	_, errs := parse("a(")
	assert.Len(t, errs, 1, "errors are remembered too")

	// The cache holds what fits in its budget, however many lists that is:
	// the costliest lists push older ones out, never grow it.
	costly := func(i int) string { return fmt.Sprintf("[a-z]{%d}x%d", 100+i%40, i) }
	for i := range 200 {
		p, errs := parse(costly(i))
		require.Empty(t, errs)
		require.False(t, p.Empty())
	}
	c1, _ := parse(costly(199))
	c2, _ := parse(costly(199))
	assert.Same(t, c1.exprs, c2.exprs, "the list read last is kept")
	again, _ := parse("a|b")
	assert.NotSame(t, a1.exprs, again.exprs, "older lists were pushed out")
}

func TestPatternCacheStaysWithinItsBudget(t *testing.T) {
	c := &patternCache{budget: 1 << 20, byList: map[string]*list.Element{}, lru: list.New()}
	for i := range 1000 {
		_, errs := c.parse(fmt.Sprintf("[a-z]{130}x%d", i))
		require.Empty(t, errs)
		require.LessOrEqual(t, c.used, c.budget)
	}
	assert.Less(t, c.lru.Len(), 100)
}

// Reading a list to report on it, or to refuse it, compiles nothing: only
// matching a name does.
func TestPatternsCompileWhenMatched(t *testing.T) {
	p, errs := ParsePatterns("team-[a-z]+,ops")
	require.Empty(t, errs)
	assert.Nil(t, p.exprs.res, "not compiled yet")
	assert.True(t, p.Match("ops"), "a plain name needs no expression")
	assert.Nil(t, p.exprs.res)
	assert.True(t, p.Match("team-a"))
	assert.Len(t, p.exprs.res, 1)
}

func TestCostlyAnnotationsMatchNothingAndSaySo(t *testing.T) {
	costly := strings.Repeat("(?i)[[:alpha:]]{130}x,", 10) + "team-a"
	tests := map[string]struct {
		annotations map[string]string
		say         string
	}{
		"a pull consent past MaxListCost allows nobody": {
			annotations: map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: costly}, say: "MaxListCost",
		},
		"a pull consent past MaxListBytes allows nobody": {
			annotations: map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: strings.Repeat("team-a-with-a-longer-name-than-most,", MaxListBytes/36+1)}, say: "MaxListBytes",
		},
	}
	tests["reflector's consent past MaxListCost allows nobody, and says so"] = struct {
		annotations map[string]string
		say         string
	}{annotations: map[string]string{rk.Allowed: "true", rk.AllowedNamespaces: costly}, say: "MaxListCost"}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			source := &Object{Namespace: "certs", Name: "s", Annotations: tt.annotations}
			ok, why := Gate{Annotations: dialects}.Allows(source, Ref{Namespace: "certs", Name: "s"}, Namespace{Name: "team-a"})
			assert.False(t, ok)
			assert.Contains(t, why, tt.say)
		})
	}

	source := &Object{Namespace: "certs", Name: "s", Annotations: map[string]string{
		ann.ReplicateTo: costly, ann.ReplicateToMatching: "team in (" + strings.Repeat("a,", MaxSelectorBytes/2) + "b)",
	}}
	targets, problems := PushTargets(source, []Namespace{{Name: "team-a", Labels: map[string]string{"team": "b"}}}, PushOptions{Annotations: ann})
	assert.Empty(t, targets, "push targets past their limits match nothing")
	var said []string
	for _, p := range problems {
		said = append(said, p.Message)
	}
	assert.Contains(t, strings.Join(said, "\n"), "MaxListCost")
	assert.Contains(t, strings.Join(said, "\n"), "MaxSelectorBytes")

	// A thousand refused entries are one Warning, not a thousand.
	source.Annotations = map[string]string{ann.ReplicateTo: strings.Repeat("[a-z]{450},", 999) + "team-a"}
	targets, problems = PushTargets(source, []Namespace{{Name: "team-a"}}, PushOptions{Annotations: ann})
	assert.True(t, targets["team-a"], "the entries within the limits apply")
	require.Len(t, problems, 1)
	assert.Contains(t, problems[0].Message, "MaxPatternCost")
	assert.Contains(t, problems[0].Message, "and 998 more refused entries")
}
