package replicate

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/utils/lru"
)

// Limits on pattern lists. A namespace name has at most 63 characters, so real
// lists are short; these bound the time and memory an annotation can cost.
const (
	// MaxPatterns is the most entries a list may have; a longer list is
	// refused as a whole and matches nothing.
	MaxPatterns = 1000
	// MaxPatternLength is the longest entry, in bytes; a longer entry is
	// refused and matches nothing.
	MaxPatternLength = 1024
)

// Patterns is a parsed pattern list: comma-separated RE2 expressions, each of
// which must match a whole name.
type Patterns struct {
	res []*regexp.Regexp
	// entries are the entries as written, one per compiled expression.
	entries []string
}

// PatternError reports one entry of a pattern list that does not compile.
type PatternError struct {
	Entry string
	Err   error
}

func (e *PatternError) Error() string {
	entry := e.Entry
	if len(entry) > 64 {
		entry = entry[:64] + "..."
	}
	return fmt.Sprintf("pattern %q: %v", entry, e.Err)
}

// ParsePatterns parses a comma-separated pattern list. Whitespace around
// entries is trimmed and empty entries are ignored. Each entry is anchored as
// ^(?:entry)$ so that it matches whole names only ("a|b" does not match
// "a-evil"). Entries that do not compile match nothing and are returned as
// errors; the others still apply.
func ParsePatterns(list string) (Patterns, []error) {
	var p Patterns
	var errs []error
	entries := strings.Split(list, ",")
	n := 0
	for _, entry := range entries {
		if strings.TrimSpace(entry) != "" {
			n++
		}
	}
	if n > MaxPatterns {
		return p, []error{fmt.Errorf("the list has %d entries, more than the %d accepted: it matches nothing", n, MaxPatterns)}
	}
	for _, entry := range entries {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if len(entry) > MaxPatternLength {
			errs = append(errs, &PatternError{Entry: entry, Err: fmt.Errorf("%d bytes long, more than the %d accepted", len(entry), MaxPatternLength)})
			continue
		}
		re, err := regexp.Compile("^(?:" + entry + ")$")
		if err != nil {
			errs = append(errs, &PatternError{Entry: entry, Err: fmt.Errorf("does not compile: %w", err)})
			continue
		}
		p.res = append(p.res, re)
		p.entries = append(p.entries, entry)
	}
	return p, errs
}

// Match reports whether any entry matches the whole of name.
func (p Patterns) Match(name string) bool {
	_, ok := p.MatchEntry(name)
	return ok
}

// MatchEntry returns the first entry, as written, that matches the whole of
// name.
func (p Patterns) MatchEntry(name string) (string, bool) {
	for i, re := range p.res {
		if re.MatchString(name) {
			return p.entries[i], true
		}
	}
	return "", false
}

// PatternParser parses pattern lists; see ParsePatterns.
type PatternParser func(list string) (Patterns, []error)

// maxCachedList is the longest list CachedPatternParser keeps, in bytes, so
// that the cache stays small whatever annotations say.
const maxCachedList = 4096

// CachedPatternParser returns a ParsePatterns that remembers the last size
// lists it parsed (of at most maxCachedList bytes): a source's list is read
// once per target it is checked against, and compiling it each time would
// cost a fan-out dearly.
func CachedPatternParser(size int) PatternParser {
	type parsed struct {
		p    Patterns
		errs []error
	}
	cache := lru.New(size)
	return func(list string) (Patterns, []error) {
		if v, ok := cache.Get(list); ok {
			r := v.(parsed)
			return r.p, r.errs
		}
		p, errs := ParsePatterns(list)
		if len(list) <= maxCachedList {
			cache.Add(list, parsed{p, errs})
		}
		return p, errs
	}
}

// parse is p, or ParsePatterns when p is nil.
func (p PatternParser) parse(list string) (Patterns, []error) {
	if p == nil {
		return ParsePatterns(list)
	}
	return p(list)
}
