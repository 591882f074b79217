package replicate

import (
	"context"
	"errors"
	"maps"
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Kinds is the registry of the kinds the replicator replicates, in the order
// they are listed to users (flags, help, explain). Each entry carries all
// that its kind differs in: how to watch, view and write an object, how the
// cache holds it, the other tools' dialects read on it, whether it can come
// from another cluster, and its names. Nothing outside the registry names a
// kind; adding one is adding an entry here.
func Kinds() []Kind {
	return []Kind{Secrets(), ConfigMaps(), Roles(), RoleBindings(), ServiceAccounts()}
}

// Kind adapts one resource type to the replicator: how to watch it, how to see
// its content, and how to write it. Everything else is shared by all kinds.
type Kind interface {
	// Name is the Kubernetes kind, e.g. "Secret".
	Name() string
	// Plural is how the kind's objects are named to users, e.g. "Secrets";
	// in lower case, it names them in readiness checks and explain.
	Plural() string
	// ShortName is kubectl's short name for the kind ("cm"), if it has
	// one; explain accepts it.
	ShortName() string
	// Flag is the name of the flag that switches the kind on or off, e.g.
	// "replicate-secrets".
	Flag() string
	// Dialects are the other tools' dialects that can be read on the kind
	// (those tools replicate it too); the others never are.
	Dialects() Dialects
	// FromOtherClusters reports whether placeholders may pull the kind
	// from another cluster (--source-cluster).
	FromOtherClusters() bool
	Informer(f informers.SharedInformerFactory) cache.SharedIndexInformer
	// View returns the planner's view of a cached object, or nil if obj is
	// not of this kind. It shares memory with obj: never modify either.
	View(obj any) *Object
	Rules() Rules
	ValidName(name string) []string
	// Create, Update and Delete write desired (built over current, which
	// is nil for Create) through the API. Update sends desired's
	// resourceVersion: the version the change was planned from. Create and
	// Update return the version the API server answered with.
	Create(ctx context.Context, c kubernetes.Interface, desired *Object) (string, error)
	Update(ctx context.Context, c kubernetes.Interface, current any, desired *Object) (string, error)
	Delete(ctx context.Context, c kubernetes.Interface, namespace, name string, opts metav1.DeleteOptions) error
	// remoteListWatch lists and watches the objects of the kind in one
	// namespace of another cluster; nil unless FromOtherClusters.
	remoteListWatch(c kubernetes.Interface, namespace string) *cache.ListWatch
	// newObject is an empty object of the kind.
	newObject() runtime.Object
	cachedKind
}

// cachedKind is a kind's part of the cache transform (CacheTransform): how
// the cache holds the content of its objects. Each method leaves an object
// of another kind alone.
type cachedKind interface {
	// owns reports whether obj is of the kind.
	owns(obj any) bool
	// internContent shares the strings the content repeats across objects.
	internContent(obj any)
	// dropContent drops the content of an object the replicator does not
	// read or write, and reports whether the kind drops any.
	dropContent(obj any) bool
	// digestContent holds the content under keys (what the replicator
	// wrote) as digests.
	digestContent(obj any, keys []string)
	// shareContent holds the content's maps once across equal objects.
	shareContent(s *sharedMaps, obj any)
}

// FieldManager is the name the replicator's writes carry in managedFields.
const FieldManager = "replicator"

// writer is what the typed clients of client-go offer for one resource.
type writer[T runtime.Object] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// typedKind implements Kind for one typed API object T from a few functions.
type typedKind[T interface {
	runtime.Object
	metav1.Object
}] struct {
	name, plural, shortName, flag string
	dialects                      Dialects
	informer                      func(f informers.SharedInformerFactory) cache.SharedIndexInformer
	client                        func(c kubernetes.Interface, namespace string) writer[T]
	view                          func(obj T, o *Object)
	build                         func(current T, desired *Object) T
	rules                         Rules
	validName                     func(string) []string
	// remote, for a kind that can come from another cluster, lists and
	// watches its objects in one namespace there; nil for the others.
	remote func(c kubernetes.Interface, namespace string) *cache.ListWatch
	// content is how the cache may hold the kind's content; nil: whole,
	// always.
	content *cachedContent[T]
}

// cachedContent is how the cache holds the content of a kind whose content
// can be large and is often not read (see CacheTransform). intern may be
// nil.
type cachedContent[T any] struct {
	intern func(obj T)
	drop   func(obj T)
	digest func(obj T, keys []string)
	share  func(s *sharedMaps, obj T)
}

func (k *typedKind[T]) Name() string            { return k.name }
func (k *typedKind[T]) Plural() string          { return k.plural }
func (k *typedKind[T]) ShortName() string       { return k.shortName }
func (k *typedKind[T]) Flag() string            { return k.flag }
func (k *typedKind[T]) Dialects() Dialects      { return k.dialects }
func (k *typedKind[T]) FromOtherClusters() bool { return k.remote != nil }

func (k *typedKind[T]) remoteListWatch(c kubernetes.Interface, namespace string) *cache.ListWatch {
	if k.remote == nil {
		return nil
	}
	return k.remote(c, namespace)
}

func (k *typedKind[T]) newObject() runtime.Object {
	return reflect.New(reflect.TypeFor[T]().Elem()).Interface().(T)
}

func (k *typedKind[T]) owns(obj any) bool {
	_, ok := obj.(T)
	return ok
}

// contentOf is obj and the kind's cachedContent, if obj is of the kind
// and the cache may hold its content otherwise than whole.
func (k *typedKind[T]) contentOf(obj any) (T, *cachedContent[T], bool) {
	t, ok := obj.(T)
	return t, k.content, ok && k.content != nil
}

func (k *typedKind[T]) internContent(obj any) {
	if t, c, ok := k.contentOf(obj); ok && c.intern != nil {
		c.intern(t)
	}
}

func (k *typedKind[T]) dropContent(obj any) bool {
	t, c, ok := k.contentOf(obj)
	if ok {
		c.drop(t)
	}
	return ok
}

func (k *typedKind[T]) digestContent(obj any, keys []string) {
	if t, c, ok := k.contentOf(obj); ok {
		c.digest(t, keys)
	}
}

func (k *typedKind[T]) shareContent(s *sharedMaps, obj any) {
	if t, c, ok := k.contentOf(obj); ok {
		c.share(s, t)
	}
}

func (k *typedKind[T]) Informer(f informers.SharedInformerFactory) cache.SharedIndexInformer {
	return k.informer(f)
}

func (k *typedKind[T]) Rules() Rules                   { return k.rules }
func (k *typedKind[T]) ValidName(name string) []string { return k.validName(name) }

func (k *typedKind[T]) View(obj any) *Object {
	t, ok := obj.(T)
	if !ok {
		return nil
	}
	o := &Object{
		Namespace:       t.GetNamespace(),
		Name:            t.GetName(),
		UID:             string(t.GetUID()),
		ResourceVersion: t.GetResourceVersion(),
		Labels:          t.GetLabels(),
		Annotations:     t.GetAnnotations(),
		OwnerReferences: t.GetOwnerReferences(),
	}
	k.view(t, o)
	return o
}

// setMeta copies the metadata the replicator owns onto obj. Maps are cloned so
// that objects built from cached views never share memory with the cache.
func setMeta(obj metav1.Object, desired *Object) {
	obj.SetNamespace(desired.Namespace)
	obj.SetName(desired.Name)
	obj.SetLabels(maps.Clone(desired.Labels))
	obj.SetAnnotations(maps.Clone(desired.Annotations))
	obj.SetOwnerReferences(append([]metav1.OwnerReference(nil), desired.OwnerReferences...))
}

// errDigest refuses a write that would carry a digest the cache holds in
// place of content: it would replace the content with its hash.
var errDigest = errors.New("the planned write holds a digest in place of content; not written")

func (k *typedKind[T]) Create(ctx context.Context, c kubernetes.Interface, desired *Object) (string, error) {
	if desired.Data.digested() {
		return "", errDigest
	}
	var zero T
	obj := k.build(zero, desired)
	setMeta(obj, desired)
	obj.SetResourceVersion("")
	obj.SetUID("")
	obj.SetManagedFields(nil)
	created, err := k.client(c, desired.Namespace).Create(ctx, obj, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return "", err
	}
	return created.GetResourceVersion(), nil
}

func (k *typedKind[T]) Update(ctx context.Context, c kubernetes.Interface, current any, desired *Object) (string, error) {
	if desired.Data.digested() {
		return "", errDigest
	}
	obj := k.build(current.(T), desired)
	setMeta(obj, desired)
	// Optimistic concurrency: the write fails with a conflict if the object
	// changed since the version the change was planned from.
	obj.SetResourceVersion(desired.ResourceVersion)
	// The cache holds little of managedFields (keptWriters); sending none
	// leaves the server's as they are.
	obj.SetManagedFields(nil)
	updated, err := k.client(c, desired.Namespace).Update(ctx, obj, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return "", err
	}
	return updated.GetResourceVersion(), nil
}

func (k *typedKind[T]) Delete(ctx context.Context, c kubernetes.Interface, namespace, name string, opts metav1.DeleteOptions) error {
	return k.client(c, namespace).Delete(ctx, name, opts)
}
