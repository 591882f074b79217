package replicate

import (
	"encoding/json"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	rbacinformers "k8s.io/client-go/informers/rbac/v1"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// The kinds besides Secret. Each maps the fields it replicates onto keys of
// Data, so that the planner's key bookkeeping, gate and ownership rules apply
// to all of them unchanged.

// sameType accepts a pull target whose type equals the source's: always for
// kinds without a type, the same roleRef for RoleBindings.
func sameType(target, source string) bool { return target == source }

// noRequired is for kinds whose objects stay valid with no content.
func noRequired(string) Data { return nil }

// ConfigMaps replicates ConfigMaps: every key of data and of binaryData.
// Reflector and kubed copy them too.
func ConfigMaps() Kind {
	return &typedKind[*corev1.ConfigMap]{
		name: "ConfigMap", plural: "ConfigMaps", shortName: "cm", flag: "replicate-configmaps",
		dialects: NewDialects(DialectReflector, DialectKubed),
		informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.InformerFor(&corev1.ConfigMap{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
				return coreinformers.NewConfigMapInformer(c, metav1.NamespaceAll, resync, cache.Indexers{})
			})
		},
		client: func(c kubernetes.Interface, namespace string) writer[*corev1.ConfigMap] {
			return c.CoreV1().ConfigMaps(namespace)
		},
		view: func(cm *corev1.ConfigMap, o *Object) {
			o.Immutable = cm.Immutable != nil && *cm.Immutable
			o.Data = make(Data, len(cm.Data)+len(cm.BinaryData))
			for k, v := range cm.Data {
				name, digest := strings.CutPrefix(k, digestMark)
				o.Data[name] = Value{Bytes: []byte(v), Digest: digest}
			}
			for k, v := range cm.BinaryData {
				name, digest := strings.CutPrefix(k, digestMark)
				o.Data[name] = Value{Bytes: v, Binary: true, Digest: digest}
			}
		},
		build: func(current *corev1.ConfigMap, desired *Object) *corev1.ConfigMap {
			cm := &corev1.ConfigMap{}
			if current != nil {
				cm = current.DeepCopy()
			}
			cm.Data, cm.BinaryData = nil, nil
			for k, v := range desired.Data {
				if v.Binary {
					if cm.BinaryData == nil {
						cm.BinaryData = map[string][]byte{}
					}
					cm.BinaryData[k] = v.Bytes
					continue
				}
				if cm.Data == nil {
					cm.Data = map[string]string{}
				}
				cm.Data[k] = string(v.Bytes)
			}
			return cm
		},
		rules:     Rules{Accepts: sameType, Required: noRequired},
		validName: validation.IsDNS1123Subdomain,
		content: &cachedContent[*corev1.ConfigMap]{
			drop: func(cm *corev1.ConfigMap) { cm.Data, cm.BinaryData = nil, nil },
			digest: func(cm *corev1.ConfigMap, keys []string) {
				cm.Data = digested(cm.Data, keys, func(v string) string { return string(digest([]byte(v))) })
				cm.BinaryData = digested(cm.BinaryData, keys, digest)
			},
			share: func(s *sharedMaps, cm *corev1.ConfigMap) {
				cm.Data = shareMap(s, s.strings, cm.Data, internedCopy)
				cm.BinaryData = shareMap(s, s.bytes, cm.BinaryData, asIs)
			},
		},
	}
}

// Keys under which the RBAC kinds and ServiceAccounts carry their content.
const (
	KeyRules            = "rules"
	KeySubjects         = "subjects"
	KeyImagePullSecrets = "imagePullSecrets"
)

// jsonValue encodes a list field as one Data value. Empty and nil lists are
// the same to the API server, so both encode as "[]".
func jsonValue[T any](list []T) Value {
	if len(list) == 0 {
		return Value{Bytes: []byte("[]")}
	}
	b, err := json.Marshal(list)
	if err != nil {
		// Typed API structs always marshal.
		panic(err)
	}
	return Value{Bytes: b}
}

// jsonList decodes what jsonValue encoded; a missing key is an empty list.
func jsonList[T any](d Data, key string) []T {
	v, ok := d[key]
	if !ok {
		return nil
	}
	var list []T
	if err := json.Unmarshal(v.Bytes, &list); err != nil {
		// Values only come from jsonValue of the same type.
		panic(err)
	}
	return list
}

// validRBACName is the API server's rule for Role and RoleBinding names.
func validRBACName(name string) []string {
	if name == "" {
		return []string{"name must not be empty"}
	}
	return path.IsValidPathSegmentName(name)
}

// Roles replicates Roles: their rules.
func Roles() Kind {
	return &typedKind[*rbacv1.Role]{
		name: "Role", plural: "Roles", flag: "replicate-roles",
		informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.InformerFor(&rbacv1.Role{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
				return rbacinformers.NewRoleInformer(c, metav1.NamespaceAll, resync, cache.Indexers{})
			})
		},
		client: func(c kubernetes.Interface, namespace string) writer[*rbacv1.Role] {
			return c.RbacV1().Roles(namespace)
		},
		view: func(r *rbacv1.Role, o *Object) {
			o.Data = Data{KeyRules: jsonValue(r.Rules)}
		},
		build: func(current *rbacv1.Role, desired *Object) *rbacv1.Role {
			r := &rbacv1.Role{}
			if current != nil {
				r = current.DeepCopy()
			}
			r.Rules = jsonList[rbacv1.PolicyRule](desired.Data, KeyRules)
			return r
		},
		rules:     Rules{Accepts: sameType, Required: noRequired, GrantsRights: true},
		validName: validRBACName,
	}
}

// roleRefType is a RoleBinding's roleRef as the planner's Type: "Kind/name".
// The API group can only be rbac.authorization.k8s.io.
func roleRefType(r rbacv1.RoleRef) string { return r.Kind + "/" + r.Name }

func parseRoleRefType(t string) rbacv1.RoleRef {
	kind, name, _ := strings.Cut(t, "/")
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: name}
}

// RoleBindings replicates RoleBindings: subjects, and roleRef as the type
// (the API server never changes a roleRef in place, so a push replica whose
// roleRef must change is recreated and a pull target must already name the
// source's role).
func RoleBindings() Kind {
	return &typedKind[*rbacv1.RoleBinding]{
		name: "RoleBinding", plural: "RoleBindings", flag: "replicate-role-bindings",
		informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.InformerFor(&rbacv1.RoleBinding{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
				return rbacinformers.NewRoleBindingInformer(c, metav1.NamespaceAll, resync, cache.Indexers{})
			})
		},
		client: func(c kubernetes.Interface, namespace string) writer[*rbacv1.RoleBinding] {
			return c.RbacV1().RoleBindings(namespace)
		},
		view: func(rb *rbacv1.RoleBinding, o *Object) {
			o.Type = roleRefType(rb.RoleRef)
			o.Data = Data{KeySubjects: jsonValue(rb.Subjects)}
		},
		build: func(current *rbacv1.RoleBinding, desired *Object) *rbacv1.RoleBinding {
			rb := &rbacv1.RoleBinding{}
			if current != nil {
				rb = current.DeepCopy()
			}
			rb.RoleRef = parseRoleRefType(desired.Type)
			rb.Subjects = jsonList[rbacv1.Subject](desired.Data, KeySubjects)
			return rb
		},
		rules:     Rules{Accepts: sameType, Required: noRequired, GrantsRights: true},
		validName: validRBACName,
	}
}

// ServiceAccounts replicates ServiceAccounts: their imagePullSecrets (what
// kubernetes-replicator copies). Tokens and the secrets list stay with each
// namespace.
func ServiceAccounts() Kind {
	return &typedKind[*corev1.ServiceAccount]{
		name: "ServiceAccount", plural: "ServiceAccounts", shortName: "sa", flag: "replicate-service-accounts",
		informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.InformerFor(&corev1.ServiceAccount{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
				return coreinformers.NewServiceAccountInformer(c, metav1.NamespaceAll, resync, cache.Indexers{})
			})
		},
		client: func(c kubernetes.Interface, namespace string) writer[*corev1.ServiceAccount] {
			return c.CoreV1().ServiceAccounts(namespace)
		},
		view: func(sa *corev1.ServiceAccount, o *Object) {
			o.Data = Data{KeyImagePullSecrets: jsonValue(sa.ImagePullSecrets)}
		},
		build: func(current *corev1.ServiceAccount, desired *Object) *corev1.ServiceAccount {
			sa := &corev1.ServiceAccount{}
			if current != nil {
				sa = current.DeepCopy()
			}
			sa.ImagePullSecrets = jsonList[corev1.LocalObjectReference](desired.Data, KeyImagePullSecrets)
			return sa
		},
		rules:     Rules{Accepts: sameType, Required: noRequired},
		validName: validation.IsDNS1123Subdomain,
	}
}
