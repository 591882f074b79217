package replicate

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Ref names an object: its namespace and name, and for cross-cluster pulls the
// name of the cluster it lives in (empty for this cluster).
type Ref struct {
	Cluster   string
	Namespace string
	Name      string
}

func (r Ref) String() string {
	if r.Cluster != "" {
		return r.Cluster + ":" + r.Namespace + "/" + r.Name
	}
	return r.Namespace + "/" + r.Name
}

// NameValidator returns the reasons a name is invalid for a kind, like the
// functions of k8s.io/apimachinery/pkg/util/validation.
type NameValidator func(name string) []string

// ParseRef parses a replicate-from value: "<name>" (in defaultNamespace),
// "<namespace>/<name>" or "<cluster>:<namespace>/<name>". Surrounding
// whitespace is ignored; anything else that is not a valid namespace, name (by
// validName) or cluster name is an error.
func ParseRef(value, defaultNamespace string, validName NameValidator) (Ref, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return Ref{}, fmt.Errorf("reference is empty")
	}
	var r Ref
	// A colon before the first slash separates a cluster name; names of some
	// kinds (Roles) may contain colons themselves.
	if colon, slash := strings.Index(v, ":"), strings.Index(v, "/"); colon >= 0 && slash > colon {
		cluster, rest := v[:colon], v[colon+1:]
		if errs := validation.IsDNS1123Label(cluster); len(errs) > 0 {
			return Ref{}, fmt.Errorf("cluster name %q is invalid: %s", cluster, strings.Join(errs, "; "))
		}
		r.Cluster, v = cluster, rest
	}
	parts := strings.Split(v, "/")
	switch len(parts) {
	case 1:
		r.Namespace, r.Name = defaultNamespace, parts[0]
	case 2:
		r.Namespace, r.Name = parts[0], parts[1]
	default:
		return Ref{}, fmt.Errorf("reference %q has more than one '/'", value)
	}
	if errs := validation.IsDNS1123Label(r.Namespace); len(errs) > 0 {
		return Ref{}, fmt.Errorf("namespace %q is invalid: %s", r.Namespace, strings.Join(errs, "; "))
	}
	if errs := validName(r.Name); len(errs) > 0 {
		return Ref{}, fmt.Errorf("name %q is invalid: %s", r.Name, strings.Join(errs, "; "))
	}
	return r, nil
}
