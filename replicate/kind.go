package replicate

import (
	"context"
	"errors"
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Kind adapts one resource type to the replicator: how to watch it, how to see
// its content, and how to write it. Everything else is shared by all kinds.
type Kind interface {
	// Name is the Kubernetes kind, e.g. "Secret".
	Name() string
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
	name      string
	informer  func(f informers.SharedInformerFactory) cache.SharedIndexInformer
	client    func(c kubernetes.Interface, namespace string) writer[T]
	view      func(obj T, o *Object)
	build     func(current T, desired *Object) T
	rules     Rules
	validName func(string) []string
}

func (k *typedKind[T]) Name() string { return k.name }

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
	return versionOf(k.client(c, desired.Namespace).Create(ctx, obj, metav1.CreateOptions{FieldManager: FieldManager}))
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
	return versionOf(k.client(c, desired.Namespace).Update(ctx, obj, metav1.UpdateOptions{FieldManager: FieldManager}))
}

// versionOf is the resourceVersion of a write's answer.
func versionOf[T metav1.Object](obj T, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return obj.GetResourceVersion(), nil
}

func (k *typedKind[T]) Delete(ctx context.Context, c kubernetes.Interface, namespace, name string, opts metav1.DeleteOptions) error {
	return k.client(c, namespace).Delete(ctx, name, opts)
}
