package replicate

import (
	"fmt"
	"slices"
	"strings"
)

// Pull asks two parties: the source (its allow annotations) and the target
// namespace (someone who can write there created the placeholder). Push only
// asks the source, and the replicator then writes with its own cluster-wide
// rights into namespaces whose owners were never asked. So the operator
// decides which namespaces may push at all; this file is that decision.

// The settings an operator changes to allow more push, named in the Events
// that refuse a push.
const (
	SettingPushFrom     = "--push-from-namespaces (chart value pushFromNamespaces)"
	SettingPushRBACFrom = "--push-rbac-from-namespaces (chart value pushRBACFromNamespaces)"
	SettingPushToSystem = "--push-to-system-namespaces (chart value pushToSystemNamespaces)"
)

// ReasonPushDenied is the Event reason of a push the operator's policy
// refuses.
const ReasonPushDenied = "PushDenied"

// IsSystemNamespace reports whether name is one of the namespaces Kubernetes
// itself keeps (kube-system, kube-public, kube-node-lease). Objects there are
// read by the cluster's own components (bootstrap tokens, cluster-info,
// controller roles), so they never receive push replicas unless the operator
// names them.
func IsSystemNamespace(name string) bool {
	switch name {
	case "kube-system", "kube-public", "kube-node-lease":
		return true
	}
	return false
}

// PushPolicy is the operator's authorisation of push. Its zero value allows
// no push at all.
type PushPolicy struct {
	// From are the namespaces whose Secrets, ConfigMaps and ServiceAccounts
	// may push.
	From Patterns
	// RBACFrom are the namespaces whose Roles and RoleBindings may push.
	// Their replicas grant rights, so From never applies to them.
	RBACFrom Patterns
	// ToSystem are the system namespaces (IsSystemNamespace) that may
	// receive push replicas anyway, from the source namespaces that From
	// (RBACFrom for kinds that grant rights) names by a plain name: a
	// pattern that lets every namespace push never opens them.
	ToSystem Patterns
	// Protected are namespaces that never receive push replicas, whatever
	// the rest says: the replicator's own, which holds the credentials of
	// its source clusters.
	Protected []string
}

// AllowsSource reports whether a source in namespace may push; grantsRights
// says whether its kind grants rights (Roles, RoleBindings). If not, the
// message says which setting would allow it.
func (p PushPolicy) AllowsSource(namespace string, grantsRights bool) (bool, string) {
	c := p.SourceCheck(namespace, grantsRights)
	if c.Passed {
		return true, ""
	}
	return false, c.Detail
}

// The flags of the push policy, as explain names the lists it read.
const (
	flagPushFrom     = "--push-from-namespaces"
	flagPushRBACFrom = "--push-rbac-from-namespaces"
	flagPushToSystem = "--push-to-system-namespaces"
	flagNamespace    = "--namespace"
)

// SourceCheck is AllowsSource as a check: the list it read and the entry
// that matched; when it fails, its Detail is the refusal, naming the
// setting that would allow the push.
func (p PushPolicy) SourceCheck(namespace string, grantsRights bool) Check {
	list, flag := p.From, flagPushFrom
	if grantsRights {
		list, flag = p.RBACFrom, flagPushRBACFrom
	}
	l := list.lookup(flag, namespace)
	c := Check{What: "push policy", Passed: l.Matched, Detail: "namespace " + namespace + " may push", Checked: []Lookup{l}}
	switch {
	case l.Matched:
	case grantsRights:
		c.Detail = fmt.Sprintf("push refused: Roles and RoleBindings grant rights, and namespace %s is not allowed to push them; an operator can add it to %s", namespace, SettingPushRBACFrom)
	default:
		c.Detail = fmt.Sprintf("push refused: namespace %s is not allowed to push; an operator can add it to %s", namespace, SettingPushFrom)
	}
	return c
}

// AllowsTarget reports whether a source in namespace source may write push
// replicas into namespace target: never into a protected namespace; into a
// system namespace only when the operator opened it and named the source's
// namespace plainly.
func (p PushPolicy) AllowsTarget(source, target string, grantsRights bool) bool {
	return p.allowsTarget(source, target, grantsRights, nil)
}

// allowsTarget is AllowsTarget. When why is not nil, it appends to it the
// lists that decided, if any: the protected namespaces, or for a system
// namespace --push-to-system-namespaces and the source's namespace named
// plainly.
func (p PushPolicy) allowsTarget(source, target string, grantsRights bool, why *[]Lookup) bool {
	note := func(l Lookup) {
		if why != nil {
			*why = append(*why, l)
		}
	}
	if slices.Contains(p.Protected, target) {
		if why != nil {
			note(Lookup{Written: written(flagNamespace, strings.Join(p.Protected, ",")), Name: target, Matched: true, Entry: target})
		}
		return false
	}
	if !IsSystemNamespace(target) {
		return true
	}
	from, flag := p.From, flagPushFrom
	if grantsRights {
		from, flag = p.RBACFrom, flagPushRBACFrom
	}
	opened := p.ToSystem.lookup(flagPushToSystem, target)
	note(opened)
	if !opened.Matched {
		return false
	}
	named := Lookup{Written: from.written(flag), Name: source, Matched: from.Names(source), PlainOnly: true}
	if named.Matched {
		named.Entry = source
	}
	note(named)
	return named.Matched
}

// refusePush is the outcome for a source the policy does not let push
// (policy is its check, nil without a source): no target at all, so that
// the replicas it made before the policy tightened are deleted like those
// of a source whose push annotations were removed. Its target list is
// never read: what a refused source's annotations say costs nothing. ok is
// false when the source may push.
func refusePush(policy *Check, source *Object, a Annotations) (*Event, bool) {
	if source == nil || policy == nil || !a.IsPushSource(source.Annotations) {
		return nil, false
	}
	if !policy.Passed {
		return warning(ReasonPushDenied, "%s", policy.Detail), true
	}
	return nil, false
}

// applyPushPolicy removes from the targets of a source that may push the
// namespaces the policy closes to it, and returns them (sorted) with the
// Events that explain the refusals. When why is not nil, it adds to each
// namespace's entry what the policy read of it.
func applyPushPolicy(p PushPolicy, source *Object, grantsRights bool, targets map[string]bool, why map[string][]Lookup) ([]string, []Event) {
	var system, protected []string
	for ns := range targets {
		var looked *[]Lookup
		if why != nil {
			l := why[ns]
			looked = &l
		}
		allowed := p.allowsTarget(source.Namespace, ns, grantsRights, looked)
		if why != nil {
			why[ns] = *looked
		}
		if allowed {
			continue
		}
		delete(targets, ns)
		if slices.Contains(p.Protected, ns) {
			protected = append(protected, ns)
		} else {
			system = append(system, ns)
		}
	}
	var events []Event
	if len(protected) > 0 {
		slices.Sort(protected)
		events = append(events, *warning(ReasonPushDenied, "push refused into namespaces %s: the replicator's own namespace never receives push replicas",
			strings.Join(protected, ", ")))
	}
	if len(system) > 0 {
		slices.Sort(system)
		setting := SettingPushFrom
		if grantsRights {
			setting = SettingPushRBACFrom
		}
		events = append(events, *warning(ReasonPushDenied, "push refused into system namespaces %s; an operator can name them in %s, and must name namespace %s by its plain name (not a pattern) in %s",
			strings.Join(system, ", "), SettingPushToSystem, source.Namespace, setting))
	}
	return append(system, protected...), events
}
