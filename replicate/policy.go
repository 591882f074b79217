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
	if grantsRights {
		if p.RBACFrom.Match(namespace) {
			return true, ""
		}
		return false, fmt.Sprintf("push refused: Roles and RoleBindings grant rights, and namespace %s is not allowed to push them; an operator can add it to %s", namespace, SettingPushRBACFrom)
	}
	if p.From.Match(namespace) {
		return true, ""
	}
	return false, fmt.Sprintf("push refused: namespace %s is not allowed to push; an operator can add it to %s", namespace, SettingPushFrom)
}

// AllowsTarget reports whether a source in namespace source may write push
// replicas into namespace target: never into a protected namespace; into a
// system namespace only when the operator opened it and named the source's
// namespace plainly.
func (p PushPolicy) AllowsTarget(source, target string, grantsRights bool) bool {
	if slices.Contains(p.Protected, target) {
		return false
	}
	if !IsSystemNamespace(target) {
		return true
	}
	from := p.From
	if grantsRights {
		from = p.RBACFrom
	}
	return p.ToSystem.Match(target) && from.Names(source)
}

// refusePush is the outcome for a source the policy does not let push: no
// target at all, so that the replicas it made before the policy tightened
// are deleted like those of a source whose push annotations were removed.
// Its target list is never read: what a refused source's annotations say
// costs nothing. ok is false when the source may push.
func refusePush(p PushPolicy, source *Object, grantsRights bool, a Annotations) (*Event, bool) {
	if source == nil || !a.IsPushSource(source.Annotations) {
		return nil, false
	}
	if ok, why := p.AllowsSource(source.Namespace, grantsRights); !ok {
		return warning(ReasonPushDenied, "%s", why), true
	}
	return nil, false
}

// applyPushPolicy removes from the targets of a source that may push the
// namespaces the policy closes to it, and returns them (sorted) with the
// Events that explain the refusals.
func applyPushPolicy(p PushPolicy, source *Object, grantsRights bool, targets map[string]bool) ([]string, []Event) {
	var system, protected []string
	for ns := range targets {
		if p.AllowsTarget(source.Namespace, ns, grantsRights) {
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
