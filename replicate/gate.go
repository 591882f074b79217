package replicate

import (
	"fmt"
	"strconv"
	"strings"
)

// This file is the pull permission gate: whether a source consents to be
// pulled into a namespace, in each dialect read, and the operator's
// exclusion of namespaces; each as checks that say what they read.

// Gate is the configuration of the pull permission check.
type Gate struct {
	Annotations Annotations
	// AllowAll switches the check off for sources in this cluster: every
	// source may be pulled anywhere. It never opens another cluster's
	// sources.
	AllowAll bool
	// Cluster is this cluster's name, matched against the
	// replication-allowed-clusters list of sources in other clusters. Empty:
	// no other cluster's source is ever allowed.
	Cluster string
	// Parse parses pattern lists; nil means ParsePatterns.
	Parse PatternParser
}

// Allows reports whether the source named by ref may be replicated into
// namespace ns, and if not, why. Invalid entries of the source's lists match
// nothing. A source in another cluster (ref.Cluster set) must in addition
// name this cluster in its replication-allowed-clusters list. In this
// cluster, a source may also allow ns in reflector's dialect, when it is
// read: the consents of the dialects are a union.
func (g Gate) Allows(source *Object, ref Ref, ns Namespace) (bool, string) {
	allowed, checks := g.decide(source, ref, ns)
	if allowed {
		return true, ""
	}
	return false, checks[len(checks)-1].Detail
}

// decide is Allows with the checks that decided: those of the way of
// consenting that allowed, or when none did, those of the one whose
// refusal is given, in the dialect the source speaks (reflector's when it
// carries only reflector's annotations, ours otherwise); the last of them
// failed and says why.
func (g Gate) decide(source *Object, ref Ref, ns Namespace) (bool, []Check) {
	groups := g.Checks(source, ref, ns)
ways:
	for _, group := range groups {
		for _, c := range group {
			if !c.Passed {
				continue ways
			}
		}
		return true, group
	}
	why := groups[0]
	if len(groups) > 1 {
		if _, ours := source.Annotations[g.Annotations.ReplicationAllowed]; !ours && g.Annotations.reflectorSource(source.Annotations) {
			why = groups[1]
		}
	}
	return false, why
}

// Checks returns the conditions Allows evaluates, one group per way the
// source may consent; the source is allowed when every check of one group
// passes. A group stops at its first failing check.
func (g Gate) Checks(source *Object, ref Ref, ns Namespace) [][]Check {
	remote := ref.Cluster != ""
	if g.AllowAll && !remote {
		return [][]Check{{{What: "--allow-all", Passed: true, Detail: "the permission check is switched off"}}}
	}
	groups := [][]Check{g.ourChecks(source, ref, ns.Name)}
	if !remote && g.Annotations.Dialects.Reads(DialectReflector) {
		groups = append(groups, g.reflectorChecks(source, ref, ns))
	}
	return groups
}

// ourChecks are the gate in this replicator's own annotations.
func (g Gate) ourChecks(source *Object, ref Ref, namespace string) []Check {
	a := g.Annotations
	var checks []Check
	check := func(what string, ok bool, pass, fail string) bool {
		c := Check{What: what, Passed: ok, Detail: pass}
		if !ok {
			c.Detail = fail
		}
		checks = append(checks, c)
		return ok
	}
	allowed, err := strconv.ParseBool(source.Annotations[a.ReplicationAllowed])
	if !check(a.ReplicationAllowed, err == nil && allowed, `"true"`, fmt.Sprintf("source %s does not carry %s: \"true\"", ref, a.ReplicationAllowed)) {
		return checks
	}
	// listCheck checks that the pattern list at key is there and has an
	// entry matching name (a namespace or cluster: what).
	listCheck := func(key, what, name, missing, mismatch string) bool {
		list, ok := source.Annotations[key]
		if !ok {
			return check(key, false, "", missing)
		}
		patterns, errs := g.Parse.parse(list)
		l := patterns.lookup(key, name)
		if !l.Matched && len(errs) > 0 {
			// Say which limit or error kept an entry from matching.
			mismatch += "; " + listProblems(key, errs)[0].Message
		}
		ok = check(key, l.Matched, "allows "+what+" "+name, mismatch)
		checks[len(checks)-1].Checked = []Lookup{l}
		return ok
	}
	if !listCheck(a.ReplicationAllowedNS, "namespace", namespace, fmt.Sprintf("source %s has no %s", ref, a.ReplicationAllowedNS),
		fmt.Sprintf("source %s does not allow namespace %s", ref, namespace)) || ref.Cluster == "" {
		return checks
	}
	clusters := a.ReplicationAllowedClusters
	if _, ok := source.Annotations[clusters]; ok && !check("--cluster-name", g.Cluster != "", g.Cluster,
		fmt.Sprintf("this replicator has no cluster name (--cluster-name) to match against %s of source %s", clusters, ref)) {
		return checks
	}
	listCheck(clusters, "cluster", g.Cluster, fmt.Sprintf("source %s has no %s: it is not served to other clusters", ref, clusters),
		fmt.Sprintf("source %s does not allow cluster %s", ref, g.Cluster))
	return checks
}

// reflectorChecks are the gate in reflector's dialect.
func (g Gate) reflectorChecks(source *Object, ref Ref, ns Namespace) []Check {
	r := g.Annotations.Reflector
	if reflectorIgnored(source) {
		return []Check{{What: "type", Detail: fmt.Sprintf("source %s is of type %s, which reflector's annotations never share", ref, source.Type)}}
	}
	if !reflectorBool(source.Annotations[r.Allowed]) {
		return []Check{{What: r.Allowed, Detail: fmt.Sprintf("source %s does not carry %s: \"true\"", ref, r.Allowed)}}
	}
	checks := []Check{{What: r.Allowed, Passed: true, Detail: `"true"`}}
	set, problems := g.Annotations.reflectorAllowed(source, g.Parse)
	what := r.AllowedNamespaces + ", " + r.AllowedSelector
	var looked []Lookup
	if set.match(ns, &looked) {
		return append(checks, Check{What: what, Passed: true, Detail: "allows namespace " + ns.Name, Checked: looked})
	}
	detail := fmt.Sprintf("source %s does not allow namespace %s (%s, %s)", ref, ns.Name, r.AllowedNamespaces, r.AllowedSelector)
	if len(problems) > 0 {
		// Say which limit or error kept the list or selector from matching.
		detail += "; " + problems[0].Message
	}
	return append(checks, Check{What: what, Detail: detail, Checked: looked})
}

// Problems are the Warnings the pull permission annotations of source
// call for: a replication-allowed that is not a boolean, invalid entries of
// its lists, in every dialect read. Whatever they are, the gate still
// decides: an invalid entry matches nothing.
func (g Gate) Problems(source *Object) []Event {
	a := g.Annotations
	var problems []Event
	if v, ok := source.Annotations[a.ReplicationAllowed]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			problems = append(problems, *warning(ReasonInvalidAnnotation, "%s: %q is not a boolean", a.ReplicationAllowed, v))
		}
	}
	for _, key := range []string{a.ReplicationAllowedNS, a.ReplicationAllowedClusters} {
		if v, ok := source.Annotations[key]; ok {
			_, errs := g.Parse.parse(v)
			problems = append(problems, listProblems(key, errs)...)
		}
	}
	if !a.Dialects.Reads(DialectReflector) {
		return problems
	}
	_, reflector := a.reflectorAllowed(source, g.Parse)
	return append(problems, reflector...)
}

// excludeCheck is the operator's exclusion (--exclude-namespaces) of a
// namespace: nothing is written in it, and a pull target there is told so
// (its Detail is the Event's message).
func excludeCheck(exclude Patterns, namespace string) Check {
	c := Check{What: "--exclude-namespaces", Passed: true, Detail: "namespace " + namespace + " is not excluded"}
	if strings.TrimSpace(exclude.text) == "" {
		return c
	}
	l := exclude.lookup("--exclude-namespaces", namespace)
	if l.Matched {
		c.Passed = false
		c.Detail = fmt.Sprintf("namespace %s is excluded by --exclude-namespaces: the replicator writes nothing in it", namespace)
	}
	c.Checked = []Lookup{l}
	return c
}
