package replicate

import (
	"container/list"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/labels"
)

// Limits on pattern lists. Whoever can write one namespace can write any
// annotation there, so what a list costs the replicator is bounded, not only
// its length: an entry of a few bytes such as "[a-z]{1,1000}" compiles to
// thousands of instructions, and matching costs time in proportion. A
// namespace name has at most 63 characters, so real lists are short and
// cheap.
const (
	// MaxPatterns is the most entries a list may have; a longer list is
	// refused as a whole and matches nothing.
	MaxPatterns = 1000
	// MaxPatternLength is the longest entry, in bytes; a longer entry is
	// refused and matches nothing.
	MaxPatternLength = 1024
	// MaxListBytes is the longest list, in bytes; a longer list is refused
	// as a whole and matches nothing.
	MaxListBytes = 16 * 1024
	// MaxPatternCost is the most an entry that is a regular expression may
	// cost: about one unit per instruction it compiles to (see
	// PatternCost); a costlier entry is refused and matches nothing.
	// "team-[a-z0-9]+" costs 18, "[a-z0-9-]{63}" about 140.
	MaxPatternCost = 300
	// MaxListCost is the most the regular expressions of one list may cost
	// together; a costlier list is refused as a whole and matches nothing.
	// Plain names cost nothing: they are compared, not compiled.
	MaxListCost = 1000
	// MaxSelectorBytes is the longest label selector an annotation may hold
	// (replicate-to-matching, kubed's sync, reflector's selectors); a
	// longer one is refused and selects nothing.
	MaxSelectorBytes = 4096
	// MaxMetadataBytes bounds what the cache keeps of an object the
	// replicator acts on: the labels and annotations it reads (of a source)
	// or writes back (of a pull target or push replica). An object past it
	// is refused: cached by name only, never read or written, with a
	// Warning Event.
	MaxMetadataBytes = 32 * 1024
)

// patternCacheBytes is what each controller's cache of parsed pattern lists
// may hold (CachedPatternParser): a few hundred ordinary lists, or a handful
// of the costliest.
const patternCacheBytes = 4 << 20

// entryOverhead is what PatternCost adds for every compiled expression
// besides its instructions: a compiled expression of a few instructions
// holds about 1.5 KB.
const entryOverhead = 10

// Patterns is a parsed pattern list: comma-separated RE2 expressions, each of
// which must match a whole name. Entries without metacharacters are plain
// names, compared rather than compiled. Expressions are compiled the first
// time the list is matched against a name: reading a list only to report
// what is wrong with it, or to learn that it is refused, compiles nothing.
type Patterns struct {
	// text is the list as written, count how many entries it has.
	text  string
	count int
	names map[string]bool
	// entries are the expressions as written.
	entries []string
	exprs   *compiledExprs
	// cost is the list's cost (MaxListCost), size what holding it takes,
	// roughly, in bytes, once compiled.
	cost, size int
}

// compiledExprs are a list's expressions, compiled once.
type compiledExprs struct {
	once sync.Once
	res  []*regexp.Regexp
}

// compiled returns the list's expressions compiled, one per entry (nil for
// an entry that does not compile after all).
func (p Patterns) compiled() []*regexp.Regexp {
	if p.exprs == nil {
		return nil
	}
	p.exprs.once.Do(func() {
		p.exprs.res = make([]*regexp.Regexp, len(p.entries))
		for i, e := range p.entries {
			p.exprs.res[i], _ = regexp.Compile(anchored(e))
		}
	})
	return p.exprs.res
}

// anchored is entry as it is compiled: matching whole names only.
func anchored(entry string) string { return "^(?:" + entry + ")$" }

// PatternError reports one entry of a pattern list that does not compile or
// is past a limit.
type PatternError struct {
	Entry string
	Err   error
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("pattern %q: %v", shorten(e.Entry), e.Err)
}

// ListError reports a pattern list refused as a whole: it matches nothing.
type ListError struct {
	// Limit names the limit and its value, e.g. "MaxListCost 4000".
	Limit string
	Err   error
}

func (e *ListError) Error() string { return e.Err.Error() }

// shorten keeps error messages short whatever an annotation holds.
func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// ParsePatterns parses a comma-separated pattern list. Whitespace around
// entries is trimmed and empty entries are ignored. Each entry is anchored as
// ^(?:entry)$ so that it matches whole names only ("a|b" does not match
// "a-evil"). Entries that do not compile or are past a limit match nothing
// and are returned as errors; the others still apply. A list past a limit
// of its own (MaxListBytes, MaxPatterns, MaxListCost) is refused whole: it
// matches nothing, and the one error is a *ListError. No expression is
// compiled before its cost is known.
func ParsePatterns(list string) (Patterns, []error) {
	n := 0
	for entry := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(entry) != "" {
			n++
		}
	}
	p := Patterns{text: list, count: n}
	if n > MaxPatterns {
		return p, []error{&ListError{Limit: fmt.Sprintf("MaxPatterns %d", MaxPatterns),
			Err: fmt.Errorf("the list has %d entries, more than the %d accepted (MaxPatterns): it matches nothing", n, MaxPatterns)}}
	}
	if len(list) > MaxListBytes {
		return p, []error{&ListError{Limit: fmt.Sprintf("MaxListBytes %d", MaxListBytes),
			Err: fmt.Errorf("the list is %d bytes long, more than the %d accepted (MaxListBytes): it matches nothing", len(list), MaxListBytes)}}
	}
	var errs []error
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if len(entry) > MaxPatternLength {
			errs = append(errs, &PatternError{Entry: entry, Err: fmt.Errorf("%d bytes long, more than the %d accepted (MaxPatternLength)", len(entry), MaxPatternLength)})
			continue
		}
		if plainName(entry) {
			if p.names == nil {
				p.names = map[string]bool{}
			}
			p.names[entry] = true
			p.size += len(entry) + 16
			continue
		}
		cost, err := PatternCost(entry)
		switch {
		case err != nil:
			errs = append(errs, &PatternError{Entry: entry, Err: fmt.Errorf("does not compile: %w", err)})
			continue
		case cost > MaxPatternCost:
			errs = append(errs, &PatternError{Entry: entry, Err: fmt.Errorf("costs %d to compile and match, more than the %d accepted (MaxPatternCost)", cost, MaxPatternCost)})
			continue
		}
		p.cost += cost
		p.entries = append(p.entries, entry)
		p.size += len(entry)
	}
	if p.cost > MaxListCost {
		return Patterns{text: list, count: n}, []error{&ListError{Limit: fmt.Sprintf("MaxListCost %d", MaxListCost),
			Err: fmt.Errorf("the list's expressions cost %d to compile and match, more than the %d accepted (MaxListCost; plain names cost nothing): it matches nothing", p.cost, MaxListCost)}}
	}
	if len(p.entries) > 0 {
		p.exprs = &compiledExprs{}
	}
	// About 150 bytes an instruction once compiled, the overhead included.
	p.size += p.cost * 150
	return p, errs
}

// PatternCost returns what an entry of a pattern list costs, as MaxPatternCost
// and MaxListCost count it: nothing for a plain name, else the instructions
// it compiles to plus a little for the expression itself. It is computed
// from the parsed expression, without compiling it.
func PatternCost(entry string) (int, error) {
	entry = strings.TrimSpace(entry)
	if plainName(entry) {
		return 0, nil
	}
	re, err := syntax.Parse(anchored(entry), syntax.Perl)
	if err != nil {
		return 0, err
	}
	return progSize(re) + entryOverhead, nil
}

// plainName reports whether entry has no metacharacter: it then matches
// exactly itself, and is compared rather than compiled.
func plainName(entry string) bool {
	return utf8.ValidString(entry) && regexp.QuoteMeta(entry) == entry
}

// costCap keeps progSize's sums far from overflowing: anything past it is
// refused anyway.
const costCap = 1 << 30

// progSize is how many instructions re compiles to (an upper bound, close to
// what regexp/syntax makes of it once simplified: a repetition x{n,m} is m
// copies of x).
func progSize(re *syntax.Regexp) int {
	add := func(a, b int) int { return min(a+b, costCap) }
	mul := func(a, b int) int {
		if a == 0 || b == 0 {
			return 0
		}
		if a > costCap/b {
			return costCap
		}
		return a * b
	}
	switch re.Op {
	case syntax.OpLiteral:
		return max(len(re.Rune), 1)
	case syntax.OpCapture:
		return add(progSize(re.Sub[0]), 2)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return add(progSize(re.Sub[0]), 1)
	case syntax.OpRepeat:
		sub := progSize(re.Sub[0])
		n := re.Max
		if n < 0 {
			n = re.Min + 1
		}
		return add(mul(add(sub, 1), n), 1)
	case syntax.OpConcat, syntax.OpAlternate:
		n := len(re.Sub)
		for _, s := range re.Sub {
			n = add(n, progSize(s))
		}
		return n
	default:
		// A character class, an empty-width assertion, any character:
		// one instruction.
		return 1
	}
}

// Match reports whether any entry matches the whole of name.
func (p Patterns) Match(name string) bool {
	_, ok := p.MatchEntry(name)
	return ok
}

// MatchEntry returns the first entry, as written, that matches the whole of
// name: a plain name first, then the expressions in their order.
func (p Patterns) MatchEntry(name string) (string, bool) {
	if p.names[name] {
		return name, true
	}
	for i, re := range p.compiled() {
		if re != nil && re.MatchString(name) {
			return p.entries[i], true
		}
	}
	return "", false
}

// String returns the list as written.
func (p Patterns) String() string { return p.text }

// lookup is what the list, as the value of key (an annotation or a flag),
// makes of name: the entry that matched, if any.
func (p Patterns) lookup(key, name string) Lookup {
	entry, ok := p.MatchEntry(name)
	return Lookup{Written: p.written(key), Name: name, Matched: ok, Entry: entry}
}

// written is the list as the value of key, as explain shows it.
func (p Patterns) written(key string) Written {
	w := written(key, p.text)
	w.Entries = p.count
	return w
}

// shownBytes is how much of a list or selector explain shows: real ones
// are shorter; a longer one is cut.
const shownBytes = 200

// written is value, held by key, as explain shows it: whole when it is
// short, else cut after at most shownBytes, at the end of an entry when
// one ends in the second half of them.
func written(key, value string) Written {
	w := Written{Key: key, Value: value}
	if len(value) <= shownBytes {
		return w
	}
	cut := shownBytes
	for cut > 0 && !utf8.RuneStart(value[cut]) {
		cut--
	}
	if i := strings.LastIndexByte(value[:cut], ','); i >= shownBytes/2 {
		cut = i + 1
	}
	w.Value, w.Truncated, w.Bytes = value[:cut], true, len(value)
	return w
}

// Names reports whether the list holds name as a plain entry: named, not
// matched by an expression.
func (p Patterns) Names(name string) bool { return p.names[name] }

// Empty reports whether the list has no entry that can match.
func (p Patterns) Empty() bool { return len(p.names) == 0 && len(p.entries) == 0 }

// PatternParser parses pattern lists; see ParsePatterns.
type PatternParser func(list string) (Patterns, []error)

// CachedPatternParser returns a ParsePatterns that remembers the lists it
// parsed lately, up to budget bytes of what holding them takes (their text
// and an estimate of their compiled expressions): a source's list is read
// once per target it is checked against, and compiling it each time would
// cost a fan-out dearly. The cache is bounded by what it holds, not by how
// many lists: a tenant's costliest lists push out others, never grow it.
func CachedPatternParser(budget int) PatternParser {
	c := &patternCache{budget: budget, byList: map[string]*list.Element{}, lru: list.New()}
	return c.parse
}

type patternCache struct {
	mu     sync.Mutex
	budget int
	used   int
	byList map[string]*list.Element
	lru    *list.List // of *cachedList, most recent first
}

type cachedList struct {
	list string
	p    Patterns
	errs []error
	size int
}

func (c *patternCache) parse(l string) (Patterns, []error) {
	c.mu.Lock()
	if e, ok := c.byList[l]; ok {
		c.lru.MoveToFront(e)
		r := e.Value.(*cachedList)
		c.mu.Unlock()
		return r.p, r.errs
	}
	c.mu.Unlock()
	p, errs := ParsePatterns(l)
	size := p.size + 2*len(l) + 128
	if size > c.budget/4 {
		// One list never takes more than a quarter of the cache.
		return p, errs
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byList[l]; ok {
		return p, errs
	}
	c.byList[l] = c.lru.PushFront(&cachedList{list: l, p: p, errs: errs, size: size})
	c.used += size
	for c.used > c.budget {
		e := c.lru.Back()
		r := e.Value.(*cachedList)
		c.lru.Remove(e)
		delete(c.byList, r.list)
		c.used -= r.size
	}
	return p, errs
}

// parse is p, or ParsePatterns when p is nil.
func (p PatternParser) parse(list string) (Patterns, []error) {
	if p == nil {
		return ParsePatterns(list)
	}
	return p(list)
}

// ParseSelector parses a label selector an annotation holds, within
// MaxSelectorBytes: its parse and its matching against every namespace then
// cost little whatever it says.
func ParseSelector(s string) (labels.Selector, error) {
	if err := selectorLength(s); err != nil {
		return nil, err
	}
	return labels.Parse(s)
}

// selectorLength refuses a selector longer than MaxSelectorBytes.
func selectorLength(s string) error {
	if len(s) > MaxSelectorBytes {
		return fmt.Errorf("%d bytes long, more than the %d accepted (MaxSelectorBytes)", len(s), MaxSelectorBytes)
	}
	return nil
}

// listProblems is the one Warning that reports what is wrong with the
// pattern list of annotation key: its first problem and how many more there
// are. A list can hold a thousand bad entries; an Event and a log line for
// each would cost more than the list.
func listProblems(key string, errs []error) []Event {
	if len(errs) == 0 {
		return nil
	}
	e := warning(ReasonInvalidAnnotation, "%s: %v", key, errs[0])
	if len(errs) > 1 {
		e.Message += fmt.Sprintf(" (and %d more refused entries)", len(errs)-1)
	}
	return []Event{*e}
}
