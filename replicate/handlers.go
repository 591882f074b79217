package replicate

import (
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// This file is what the informers' events become: keys on the queue, found
// through indexes derived from the cached objects' annotations. Handlers only
// enqueue; the workers do the rest. (The push expectations see the same
// events first: observeReplica, wired in objectHandler.)

// Index names on a kind's informer. Each is derived from the annotations of
// the cached objects, so it can never disagree with the cache.
const (
	// indexPullSource maps a source key to the pull targets naming it.
	indexPullSource = "replicator/pull-source"
	// indexPushMarker maps a source key to the push replicas it owns.
	indexPushMarker = "replicator/push-marker"
	// indexPushName maps an object name to the push sources of that name.
	indexPushName = "replicator/push-name"
	// indexPullNamespace maps a namespace to the pull targets in it. The
	// informers have no index of every object by namespace: at ten
	// thousand namespaces that is a set per namespace per kind, for
	// objects the replicator mostly never reads.
	indexPullNamespace = "replicator/pull-namespace"
)

// objectChanged enqueues everything an add, update or delete of obj may
// affect: obj itself if it carries our annotations, the pull targets naming
// it, the push source owning it, and push sources of the same name (whose
// target slot may have been taken or freed).
func (c *Controller) objectChanged(old, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		// Deleted while the watch was down: obj is the last version the
		// cache held.
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	key := m.GetNamespace() + "/" + m.GetName()
	a := c.opts.Annotations
	relevant := a.Relevant(m.GetAnnotations())
	if old != nil {
		if om, ok := old.(metav1.Object); ok && a.Relevant(om.GetAnnotations()) {
			relevant = true
			if marker := om.GetAnnotations()[a.ReplicatedFrom]; marker != "" {
				c.queue.Add(marker)
			}
		}
	}
	if relevant {
		c.queue.Add(key)
	}
	if marker := m.GetAnnotations()[a.ReplicatedFrom]; marker != "" {
		c.queue.Add(marker)
	}
	c.enqueueIndexed(indexPullSource, key)
	c.enqueueIndexed(indexPushName, m.GetName())
}

func (c *Controller) enqueueIndexed(index, value string) {
	keys, err := c.objects.GetIndexer().IndexKeys(index, value)
	if err != nil {
		return
	}
	for _, k := range keys {
		c.queue.Add(k)
	}
}

// countIndexed returns how many objects an index holds.
func (c *Controller) countIndexed(index string) int {
	n := 0
	indexer := c.objects.GetIndexer()
	for _, v := range indexer.ListIndexFuncValues(index) {
		keys, _ := indexer.IndexKeys(index, v)
		n += len(keys)
	}
	return n
}

func (c *Controller) enqueuePushSources() {
	for _, name := range c.objects.GetIndexer().ListIndexFuncValues(indexPushName) {
		c.enqueueIndexed(indexPushName, name)
	}
}

func (c *Controller) indexPullSource(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	v, _, ok := c.opts.Annotations.pullReference(m.GetAnnotations())
	if !ok {
		return nil, nil
	}
	ref, err := c.parseRef(v, m.GetNamespace())
	if err != nil {
		return nil, nil
	}
	return []string{ref.String()}, nil
}

func (c *Controller) indexPullNamespace(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	if _, _, ok := c.opts.Annotations.pullReference(m.GetAnnotations()); !ok {
		return nil, nil
	}
	return []string{m.GetNamespace()}, nil
}

// parseRef parses a pull reference (replicate-from, or reflector's
// reflects); a cluster prefix naming this cluster means this cluster.
func (c *Controller) parseRef(value, namespace string) (Ref, error) {
	ref, err := ParseRef(value, namespace, c.kind.ValidName)
	if err == nil && ref.Cluster != "" && ref.Cluster == c.opts.Cluster {
		ref.Cluster = ""
	}
	return ref, err
}

func (c *Controller) indexPushMarker(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	if v := m.GetAnnotations()[c.opts.Annotations.ReplicatedFrom]; v != "" {
		return []string{v}, nil
	}
	return nil, nil
}

func (c *Controller) indexPushName(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	if c.opts.Annotations.IsPushSource(m.GetAnnotations()) {
		return []string{m.GetName()}, nil
	}
	return nil, nil
}

// get returns the cached object and its view, or nils.
func (c *Controller) get(key string) (any, *Object) {
	obj, exists, err := c.objects.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return nil, nil
	}
	return obj, c.kind.View(obj)
}

func (c *Controller) namespace(name string) *corev1.Namespace {
	obj, exists, err := c.namespaces.GetIndexer().GetByKey(name)
	if err != nil || !exists {
		return nil
	}
	ns, _ := obj.(*corev1.Namespace)
	return ns
}

func terminating(ns *corev1.Namespace) bool {
	return ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating
}

// namespaceChanged enqueues the push sources when a namespace's name, labels
// or life cycle changed: their target sets may have. In reflector's dialect
// a source may allow namespaces by label, so the pull targets in a
// relabelled namespace are looked at again too.
func (c *Controller) namespaceChanged(old, cur any) {
	o, ok1 := old.(*corev1.Namespace)
	n, ok2 := cur.(*corev1.Namespace)
	if !ok1 || !ok2 || o.Status.Phase != n.Status.Phase || !maps.Equal(o.Labels, n.Labels) || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) {
		c.enqueuePushSources()
	}
	if ok1 && ok2 && c.opts.Annotations.Dialects.Reads(DialectReflector) && !maps.Equal(o.Labels, n.Labels) {
		c.enqueuePullTargetsIn(n.Name)
	}
}

// enqueuePullTargetsIn enqueues the pull targets in namespace.
func (c *Controller) enqueuePullTargetsIn(namespace string) {
	objs, _ := c.objects.GetIndexer().ByIndex(indexPullNamespace, namespace)
	for _, obj := range objs {
		if m, ok := obj.(metav1.Object); ok {
			c.queue.Add(namespace + "/" + m.GetName())
		}
	}
}

// remoteListener enqueues the pull targets of source cluster name when a
// source there changes, or when one of its namespaces comes or goes.
func (c *Controller) remoteListener(name string) RemoteListener {
	return RemoteListener{
		Changed: func(key string) { c.enqueueIndexed(indexPullSource, name+":"+key) },
		StateChanged: func(namespace string) {
			prefix := name + ":" + namespace + "/"
			for _, v := range c.objects.GetIndexer().ListIndexFuncValues(indexPullSource) {
				if strings.HasPrefix(v, prefix) {
					c.enqueueIndexed(indexPullSource, v)
				}
			}
		},
	}
}

// costlyBytes is how many bytes of pattern lists and selectors make an
// object costly to reconcile: ordinary ones hold a few names.
const costlyBytes = 2048

// costly reports whether reconciling the object at key means compiling and
// matching long pattern lists or selectors, its own or, for a pull target,
// its source's: whoever can write a namespace can make thousands of those,
// and they are reconciled one at a time (see processNextItem) so that the
// objects of everyone else are not held up behind them. It reads the cache
// only.
func (c *Controller) costly(key string) bool {
	_, o := c.get(key)
	if o == nil {
		return false
	}
	if c.listBytes(o) > costlyBytes {
		return true
	}
	v, _, ok := c.opts.Annotations.pullReference(o.Annotations)
	if !ok {
		return false
	}
	ref, err := c.parseRef(v, o.Namespace)
	if err != nil || ref.Cluster != "" {
		return false
	}
	_, source := c.get(ref.Namespace + "/" + ref.Name)
	return source != nil && c.listBytes(source) > costlyBytes
}

// listBytes is how long the pattern lists and selectors o carries are.
func (c *Controller) listBytes(o *Object) int {
	n := 0
	for _, k := range c.listKeys {
		if k != "" {
			n += len(o.Annotations[k])
		}
	}
	return n
}
