package replicate

import (
	"fmt"
	"maps"
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
	// receive push replicas anyway.
	ToSystem Patterns
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

// AllowsTarget reports whether push replicas may be written into namespace.
func (p PushPolicy) AllowsTarget(namespace string) bool {
	return !IsSystemNamespace(namespace) || p.ToSystem.Match(namespace)
}

// applyPushPolicy removes from targets what the policy refuses, and returns
// the refused namespaces (sorted) and the Events that explain the refusals.
// A source that may not push loses every target, so that the replicas it
// made before the policy tightened are deleted like those of a source whose
// push annotations were removed.
func applyPushPolicy(p PushPolicy, source *Object, grantsRights bool, targets map[string]bool, a Annotations) ([]string, []Event) {
	if source == nil || !a.IsPushSource(source.Annotations) {
		return nil, nil
	}
	if ok, why := p.AllowsSource(source.Namespace, grantsRights); !ok {
		refused := slices.Sorted(maps.Keys(targets))
		clear(targets)
		return refused, []Event{*warning(ReasonPushDenied, "%s", why)}
	}
	var system []string
	for ns := range targets {
		if !p.AllowsTarget(ns) {
			system = append(system, ns)
			delete(targets, ns)
		}
	}
	if len(system) == 0 {
		return nil, nil
	}
	slices.Sort(system)
	return system, []Event{*warning(ReasonPushDenied, "push refused into system namespaces %s; an operator can name them in %s",
		strings.Join(system, ", "), SettingPushToSystem)}
}
