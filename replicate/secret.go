package replicate

import (
	"context"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Secrets replicates Secrets: every key of data, and the type. Reflector and
// kubed copy them too, and they are the kind placeholders may pull from
// other clusters.
func Secrets() Kind {
	return &typedKind[*corev1.Secret]{
		name: "Secret", plural: "Secrets", flag: "replicate-secrets",
		dialects: NewDialects(DialectReflector, DialectKubed),
		informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.InformerFor(&corev1.Secret{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
				return coreinformers.NewSecretInformer(c, metav1.NamespaceAll, resync, cache.Indexers{})
			})
		},
		client: func(c kubernetes.Interface, namespace string) writer[*corev1.Secret] {
			return c.CoreV1().Secrets(namespace)
		},
		view: func(s *corev1.Secret, o *Object) {
			o.Type = string(s.Type)
			if o.Type == "" {
				// What the API server stores for no type.
				o.Type = string(corev1.SecretTypeOpaque)
			}
			o.Immutable = s.Immutable != nil && *s.Immutable
			o.Data = make(Data, len(s.Data))
			for k, v := range s.Data {
				if name, ok := strings.CutPrefix(k, digestMark); ok {
					o.Data[name] = Value{Bytes: v, Digest: true}
					continue
				}
				o.Data[k] = Value{Bytes: v}
			}
		},
		build: func(current *corev1.Secret, desired *Object) *corev1.Secret {
			s := &corev1.Secret{}
			if current != nil {
				s = current.DeepCopy()
			}
			s.Type = corev1.SecretType(desired.Type)
			s.StringData = nil
			s.Data = make(map[string][]byte, len(desired.Data))
			for k, v := range desired.Data {
				s.Data[k] = v.Bytes
			}
			return s
		},
		rules: Rules{
			Accepts: func(target, source string) bool {
				return target == string(corev1.SecretTypeOpaque) || target == source
			},
			Required: secretRequired,
		},
		validName: validation.IsDNS1123Subdomain,
		remote:    secretsIn,
		content:   secretContent(),
	}
}

// secretsIn lists and watches the Secrets of one namespace (in another
// cluster).
func secretsIn(c kubernetes.Interface, namespace string) *cache.ListWatch {
	secrets := c.CoreV1().Secrets(namespace)
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return secrets.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return secrets.Watch(ctx, opts)
		},
	}
}

// secretContent is how the cache holds a Secret's data.
func secretContent() *cachedContent[*corev1.Secret] {
	return &cachedContent[*corev1.Secret]{
		// The same few types on every Secret.
		intern: func(s *corev1.Secret) { s.Type = corev1.SecretType(intern(string(s.Type))) },
		drop:   func(s *corev1.Secret) { s.Data, s.StringData = nil, nil },
		digest: func(s *corev1.Secret, keys []string) { s.Data = digested(s.Data, keys, digest) },
		share:  func(m *sharedMaps, s *corev1.Secret) { s.Data = shareMap(m, m.bytes, s.Data, asIs) },
	}
}

// secretRequired lists the keys the API server's validation requires for a
// Secret type, with the values that keep such a Secret valid when the
// replicated content is removed.
func secretRequired(typ string) Data {
	empty := Value{Bytes: []byte{}}
	emptyJSON := Value{Bytes: []byte("{}")}
	switch corev1.SecretType(typ) {
	case corev1.SecretTypeTLS:
		return Data{corev1.TLSCertKey: empty, corev1.TLSPrivateKeyKey: empty}
	case corev1.SecretTypeDockerConfigJson:
		return Data{corev1.DockerConfigJsonKey: emptyJSON}
	case corev1.SecretTypeDockercfg:
		return Data{corev1.DockerConfigKey: emptyJSON}
	case corev1.SecretTypeSSHAuth:
		return Data{corev1.SSHAuthPrivateKey: empty}
	case corev1.SecretTypeBasicAuth:
		return Data{corev1.BasicAuthUsernameKey: empty}
	}
	return nil
}
