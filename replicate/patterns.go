package replicate

import (
	"fmt"
	"regexp"
	"strings"
)

// Patterns is a parsed pattern list: comma-separated RE2 expressions, each of
// which must match a whole name.
type Patterns struct {
	res []*regexp.Regexp
}

// PatternError reports one entry of a pattern list that does not compile.
type PatternError struct {
	Entry string
	Err   error
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("pattern %q does not compile: %v", e.Entry, e.Err)
}

// ParsePatterns parses a comma-separated pattern list. Whitespace around
// entries is trimmed and empty entries are ignored. Each entry is anchored as
// ^(?:entry)$ so that it matches whole names only ("a|b" does not match
// "a-evil"). Entries that do not compile match nothing and are returned as
// errors; the others still apply.
func ParsePatterns(list string) (Patterns, []error) {
	var p Patterns
	var errs []error
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		re, err := regexp.Compile("^(?:" + entry + ")$")
		if err != nil {
			errs = append(errs, &PatternError{Entry: entry, Err: err})
			continue
		}
		p.res = append(p.res, re)
	}
	return p, errs
}

// Match reports whether any entry matches the whole of name.
func (p Patterns) Match(name string) bool {
	for _, re := range p.res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// Empty reports whether the list has no usable entry.
func (p Patterns) Empty() bool { return len(p.res) == 0 }
