package replicate

import (
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unique"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

func TestCacheTransform(t *testing.T) {
	at := metav1.Now()
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Time: &at, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{"f:k":{}}}`)}}}
	tests := map[string]struct {
		annotations map[string]string
		allowAll    bool
		dialects    bool // reflector's and kubed's read
		keepsData   bool
		// keepsWriters: an object the replicator writes keeps who else
		// wrote it, for the Event that names a fight.
		keepsWriters bool
	}{
		"a reflector source keeps its data while that dialect is read":                     {annotations: map[string]string{rk.Allowed: "true"}, dialects: true, keepsData: true},
		"a reflector mirror keeps its data while that dialect is read":                     {annotations: map[string]string{rk.Reflects: "a/b"}, dialects: true, keepsData: true, keepsWriters: true},
		"a kubed source keeps its data while that dialect is read":                         {annotations: map[string]string{KubedSyncAnnotation: ""}, dialects: true, keepsData: true},
		"reflector's and kubed's annotations mean nothing without dialect":                 {annotations: map[string]string{rk.Allowed: "true", rk.Reflects: "a/b", KubedSyncAnnotation: ""}},
		"a Secret applied with kubectl loses the copy of its data too":                     {annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"k":"dg=="}}`}},
		"an unrelated Secret is cached without data":                                       {annotations: map[string]string{"other.example/x": "y"}},
		"a Secret with no annotations at all, likewise":                                    {},
		"a pull target applied with kubectl keeps last-applied (updates must not drop it)": {annotations: map[string]string{ann.ReplicateFrom: "a/b", corev1.LastAppliedConfigAnnotation: "{}"}, keepsData: true, keepsWriters: true},
		"a pull target keeps its data":                                                     {annotations: map[string]string{ann.ReplicateFrom: "a/b"}, keepsData: true, keepsWriters: true},
		"a source allowing replication keeps its data":                                     {annotations: map[string]string{ann.ReplicationAllowed: "true"}, keepsData: true},
		"a push source keeps its data":                                                     {annotations: map[string]string{ann.ReplicateToMatching: "x=y"}, keepsData: true},
		"a push replica keeps its data":                                                    {annotations: map[string]string{ann.ReplicatedFrom: "a/b"}, keepsData: true, keepsWriters: true},
		"with allow-all any Secret may be a source":                                        {allowAll: true, keepsData: true},
		"another prefix's annotations do not count as ours":                                {annotations: map[string]string{"other.prefix/replicate-from": "a/b"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: tt.annotations, ManagedFields: managed},
				Data:       map[string][]byte{"k": []byte("v")},
			}
			a := ann
			if tt.dialects {
				a = dialects
			}
			out, err := CacheTransform(a, tt.allowAll)(s)
			require.NoError(t, err)
			got := out.(*corev1.Secret)
			if tt.keepsWriters {
				assert.Equal(t, []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Time: &at}}, got.ManagedFields,
					"who wrote it, without the fields it owns")
			} else {
				assert.Nil(t, got.ManagedFields)
			}
			assert.Equal(t, tt.keepsData, got.Data != nil)
			_, applied := got.Annotations[corev1.LastAppliedConfigAnnotation]
			assert.Equal(t, tt.keepsData && tt.annotations[corev1.LastAppliedConfigAnnotation] != "", applied)
		})
	}
	ns, err := CacheTransform(ann, false)(&corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: managed, Labels: map[string]string{"a": "b"}, Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}"}},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating, Conditions: []corev1.NamespaceCondition{{Type: "NamespaceDeletionDiscoveryFailure"}}},
	})
	require.NoError(t, err)
	assert.Equal(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"a": "b"}}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}, ns,
		"a namespace keeps its name, labels and phase")
}

func TestCacheTransformDigestsWhatWasReplicated(t *testing.T) {
	content := map[string][]byte{"tls.crt": []byte("C"), "tls.key": []byte("K"), "own": []byte("O")}
	written := map[string][]byte{"#tls.crt": digest([]byte("C")), "#tls.key": digest([]byte("K")), "own": []byte("O")}
	keys := map[string]string{ann.ReplicatedKeys: "tls.crt,tls.key"}
	with := func(more ...string) map[string]string {
		m := maps.Clone(keys)
		for i := 0; i+1 < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	tests := map[string]struct {
		annotations map[string]string
		allowAll    bool
		dialects    bool
		want        map[string][]byte
	}{
		"a filled pull target holds the keys it was given as digests, its own keys whole": {annotations: with(ann.ReplicateFrom, "a/b"), want: written},
		"a push replica likewise":                                             {annotations: with(ann.ReplicatedFrom, "a/b"), want: written},
		"a mirror in reflector's dialect likewise":                            {annotations: with(rk.Reflects, "a/b"), dialects: true, want: written},
		"a pull target not yet filled (no replicated-keys) is kept whole":     {annotations: map[string]string{ann.ReplicateFrom: "a/b"}, want: content},
		"a filled target others may pull from is kept whole":                  {annotations: with(ann.ReplicateFrom, "a/b", ann.ReplicationAllowed, "true"), want: content},
		"a filled target that names the namespaces that may pull, likewise":   {annotations: with(ann.ReplicateFrom, "a/b", ann.ReplicationAllowedNS, "x"), want: content},
		"a replica another cluster may pull is kept whole":                    {annotations: with(ann.ReplicatedFrom, "a/b", ann.ReplicationAllowedClusters, "c"), want: content},
		"a filled target that pushes on is kept whole":                        {annotations: with(ann.ReplicateFrom, "a/b", ann.ReplicateTo, "x"), want: content},
		"a filled target that is a reflector source is kept whole":            {annotations: with(ann.ReplicateFrom, "a/b", rk.Allowed, "true"), dialects: true, want: content},
		"with allow-all any object may be a source: targets are kept whole":   {annotations: with(ann.ReplicateFrom, "a/b"), allowAll: true, want: content},
		"replicated-keys naming a key the target lacks digests what is there": {annotations: map[string]string{ann.ReplicateFrom: "a/b", ann.ReplicatedKeys: "tls.crt,gone"}, want: map[string][]byte{"#tls.crt": digest([]byte("C")), "tls.key": []byte("K"), "own": []byte("O")}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := ann
			if tt.dialects {
				a = dialects
			}
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: tt.annotations}, Data: maps.Clone(content)}
			out, err := CacheTransform(a, tt.allowAll)(s)
			require.NoError(t, err)
			assert.Equal(t, tt.want, out.(*corev1.Secret).Data)

			view := Secrets().View(out)
			for k, v := range content {
				assert.True(t, view.Data[k].Same(Value{Bytes: v}), "the view of %s compares equal to its content", k)
				assert.False(t, view.Data[k].Same(Value{Bytes: []byte("other")}), k)
			}
		})
	}

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: map[string]string{ann.ReplicatedFrom: "a/b", ann.ReplicatedKeys: "ca.crt,bin"}},
		Data:       map[string]string{"ca.crt": "PEM", "own": "O"},
		BinaryData: map[string][]byte{"bin": {0, 1}},
	}
	out, err := CacheTransform(ann, false)(cm)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"#ca.crt": string(digest([]byte("PEM"))), "own": "O"}, out.(*corev1.ConfigMap).Data)
	assert.Equal(t, map[string][]byte{"#bin": digest([]byte{0, 1})}, out.(*corev1.ConfigMap).BinaryData)
	view := ConfigMaps().View(out)
	assert.Equal(t, Data{
		"ca.crt": {Bytes: digest([]byte("PEM")), Digest: true},
		"bin":    {Bytes: digest([]byte{0, 1}), Digest: true, Binary: true},
		"own":    {Bytes: []byte("O")},
	}, view.Data)
	assert.True(t, view.Data.Equal(Data{"ca.crt": {Bytes: []byte("PEM")}, "bin": {Bytes: []byte{0, 1}, Binary: true}, "own": {Bytes: []byte("O")}}))
}

func TestValueSame(t *testing.T) {
	c, d := Value{Bytes: []byte("C")}, Value{Bytes: digest([]byte("C")), Digest: true}
	tests := map[string]struct {
		a, b Value
		same bool
	}{
		"equal content":                          {c, Value{Bytes: []byte("C")}, true},
		"different content":                      {c, Value{Bytes: []byte("D")}, false},
		"content and its digest":                 {c, d, true},
		"a digest and its content":               {d, c, true},
		"content and another's digest":           {Value{Bytes: []byte("D")}, d, false},
		"two equal digests":                      {d, Value{Bytes: digest([]byte("C")), Digest: true}, true},
		"binary and text with the same bytes":    {c, Value{Bytes: []byte("C"), Binary: true}, false},
		"the digest bytes themselves as content": {Value{Bytes: digest([]byte("C"))}, d, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.same, tt.a.Same(tt.b))
		})
	}
}

func TestCacheTransformConfigMaps(t *testing.T) {
	tests := map[string]struct {
		annotations map[string]string
		allowAll    bool
		keepsData   bool
	}{
		"an unrelated ConfigMap is cached without data or binaryData": {annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}"}},
		"a ConfigMap source keeps both":                               {annotations: map[string]string{ann.ReplicationAllowed: "true"}, keepsData: true},
		"with allow-all every ConfigMap keeps both":                   {allowAll: true, keepsData: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cm := &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: tt.annotations},
				Data:       map[string]string{"k": "v"},
				BinaryData: map[string][]byte{"b": {0}},
			}
			out, err := CacheTransform(ann, tt.allowAll)(cm)
			require.NoError(t, err)
			got := out.(*corev1.ConfigMap)
			assert.Equal(t, tt.keepsData, got.Data != nil)
			assert.Equal(t, tt.keepsData, got.BinaryData != nil)
			assert.NotContains(t, got.Annotations, corev1.LastAppliedConfigAnnotation)
		})
	}
}

func TestCacheTransformSharesRepeatedStrings(t *testing.T) {
	object := func(namespace string) *corev1.Secret {
		// Built from bytes, as decoding does: equal strings, separate copies.
		str := func(s string) string { return string([]byte(s)) }
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Namespace:   str(namespace),
			Name:        "tls",
			Labels:      map[string]string{str("team"): str("web")},
			Annotations: map[string]string{str(ann.ReplicateFrom): str("certs/wildcard")},
		}}
	}
	// Handles keep the shared copies known across a garbage collection
	// the test might meet.
	handles := []unique.Handle[string]{unique.Make("app"), unique.Make("tls"), unique.Make("team"), unique.Make("web"), unique.Make(ann.ReplicateFrom), unique.Make("certs/wildcard")}
	defer runtime.KeepAlive(handles)
	a, err := CacheTransform(ann, false)(object("app"))
	require.NoError(t, err)
	b, err := CacheTransform(ann, false)(object("app"))
	require.NoError(t, err)
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	sa, sb := a.(*corev1.Secret), b.(*corev1.Secret)
	assert.True(t, same(sa.Namespace, sb.Namespace), "namespace")
	for k, v := range sa.Labels {
		for l, w := range sb.Labels {
			assert.True(t, same(k, l) && same(v, w), "label")
		}
	}
	for k, v := range sa.Annotations {
		for l, w := range sb.Annotations {
			assert.True(t, same(k, l) && same(v, w), "annotation")
		}
	}
	assert.Equal(t, map[string]string{ann.ReplicateFrom: "certs/wildcard"}, sa.Annotations)
}

func TestCacheTransformKeepsOnlyTheNameOfUnrelatedObjects(t *testing.T) {
	meta := func(annotations, labels map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "app", Name: "x", UID: "u", ResourceVersion: "7", Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{Name: "o"}}, Finalizers: []string{"f"}}
	}
	stripped := metav1.ObjectMeta{Namespace: "app", Name: "x", ResourceVersion: "7"}
	tests := map[string]struct {
		annotations, labels map[string]string
		a                   Annotations
		kept                bool
	}{
		"an unrelated object keeps its name, namespace and version":          {annotations: map[string]string{"x": "y"}, labels: map[string]string{"a": "b"}, a: ann},
		"a pull target keeps everything":                                     {annotations: map[string]string{ann.ReplicateFrom: "a/b"}, a: ann, kept: true},
		"a copy kubernetes-replicator made (to adopt) keeps everything":      {annotations: map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z"}, a: ann, kept: true},
		"a copy reflector made keeps everything":                             {annotations: map[string]string{reflectorReflects: "a/b", reflectorAutoReflects: "True"}, a: ann, kept: true},
		"a copy kubed made keeps everything":                                 {labels: map[string]string{kubedOriginName: "b", kubedOriginNamespace: "a"}, a: ann, kept: true},
		"with another tool's dialect read, unrelated objects are kept whole": {annotations: map[string]string{"x": "y"}, a: dialects, kept: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			for _, obj := range []metav1.Object{
				&corev1.ConfigMap{ObjectMeta: meta(tt.annotations, tt.labels)},
				&corev1.ServiceAccount{ObjectMeta: meta(tt.annotations, tt.labels)},
			} {
				out, err := CacheTransform(tt.a, false)(obj)
				require.NoError(t, err)
				got := out.(metav1.Object)
				if tt.kept {
					assert.Equal(t, meta(tt.annotations, tt.labels).Labels, got.GetLabels())
					assert.Equal(t, types.UID("u"), got.GetUID())
					assert.NotEmpty(t, got.GetOwnerReferences())
				} else {
					assert.Equal(t, stripped.Labels, got.GetLabels())
					assert.Empty(t, got.GetAnnotations())
					assert.Empty(t, got.GetUID())
					assert.Empty(t, got.GetOwnerReferences())
					assert.Empty(t, got.GetFinalizers())
					assert.Equal(t, "7", got.GetResourceVersion())
					assert.Equal(t, "x", got.GetName())
				}
			}
		})
	}
}

func TestCacheTransformSharesEqualMaps(t *testing.T) {
	target := func(namespace string, extra ...string) *corev1.Secret {
		annotations := map[string]string{ann.ReplicatedFrom: "certs/wildcard", ann.ReplicatedKeys: "tls.crt", ann.ReplicatedAt: "2026-11-29T06:00:00Z"}
		for i := 0; i+1 < len(extra); i += 2 {
			annotations[extra[i]] = extra[i+1]
		}
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "tls", Annotations: annotations, Labels: map[string]string{"team": "web"}},
			Data:       map[string][]byte{"tls.crt": []byte("C")},
		}
	}
	same := func(a, b any) bool { return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() }
	transform := CacheTransform(ann, false)
	cache := func(s *corev1.Secret) *corev1.Secret {
		out, err := transform(s)
		require.NoError(t, err)
		return out.(*corev1.Secret)
	}
	a, b := cache(target("a")), cache(target("b"))
	assert.True(t, same(a.Annotations, b.Annotations), "the targets of a fan-out share their annotations")
	assert.True(t, same(a.Labels, b.Labels), "and their labels")
	assert.True(t, same(a.Data, b.Data), "and the digests of what was written")
	assert.Equal(t, map[string][]byte{"#tls.crt": digest([]byte("C"))}, b.Data)

	c := cache(target("c", ann.ReplicatedAt, "2026-11-29T06:00:01Z"))
	assert.False(t, same(a.Annotations, c.Annotations), "other content, another map")
	assert.Equal(t, "2026-11-29T06:00:01Z", c.Annotations[ann.ReplicatedAt])
	assert.True(t, same(a.Data, c.Data))

	long := strings.Repeat("x", sharedMapMaxKey)
	d, e := cache(target("d", corev1.LastAppliedConfigAnnotation, long)), cache(target("e", corev1.LastAppliedConfigAnnotation, long))
	assert.False(t, same(d.Annotations, e.Annotations), "long content is not shared")
	assert.Equal(t, long, e.Annotations[corev1.LastAppliedConfigAnnotation])

	s := newSharedMaps()
	for i := range sharedMapsMax + 10 {
		shareMaps(s, &corev1.ConfigMap{Data: map[string]string{"k": strconv.Itoa(i)}}, ConfigMaps())
	}
	assert.LessOrEqual(t, len(s.strings), sharedMapsMax, "the table is bounded")
	assert.Len(t, s.strings, 10, "and starts afresh when full")
}

func TestCacheTransformLeavesTheNameLabelToViews(t *testing.T) {
	out, err := CacheTransform(ann, false)(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a",
		Labels: map[string]string{corev1.LabelMetadataName: "team-a", "tier": "web"}}})
	require.NoError(t, err)
	ns := out.(*corev1.Namespace)
	assert.Equal(t, map[string]string{"tier": "web"}, ns.Labels, "the API server's name label is not held")
	view := Namespace{Name: ns.Name, Labels: ns.Labels}
	for selector, matches := range map[string]bool{
		"kubernetes.io/metadata.name=team-a":       true,
		"kubernetes.io/metadata.name in (team-a)":  true,
		"kubernetes.io/metadata.name":              true,
		"kubernetes.io/metadata.name!=team-a":      false,
		"kubernetes.io/metadata.name=team-b":       false,
		"tier=web,kubernetes.io/metadata.name":     true,
		"!kubernetes.io/metadata.name":             false,
		"tier=web,kubernetes.io/metadata.name=x-y": false,
	} {
		sel, err := labels.Parse(selector)
		require.NoError(t, err)
		assert.Equal(t, matches, sel.Matches(view.labels()), selector)
	}
}

// client-go passes an object through the transform twice when it streams an
// informer's initial state (into a temporary store, then into its queue); by
// the second pass the object's maps may be shared with objects other
// goroutines read. The transform never writes into a map an object holds.
func TestCacheTransformNeverWritesIntoAMap(t *testing.T) {
	objects := func() []metav1.Object {
		return []metav1.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "tls", Labels: map[string]string{"team": "web"},
				Annotations: map[string]string{ann.ReplicateFrom: "certs/wildcard", ann.ReplicatedKeys: "tls.crt", corev1.LastAppliedConfigAnnotation: "{}"}},
				Data: map[string][]byte{"tls.crt": []byte("C"), "own": []byte("O")}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "helm", Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}", "x": "y"}},
				Data: map[string][]byte{"k": []byte("v")}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "settings", Annotations: map[string]string{ann.ReplicatedFrom: "a/b", ann.ReplicatedKeys: "k,b"}},
				Data: map[string]string{"k": "v"}, BinaryData: map[string][]byte{"b": []byte("B")}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{corev1.LabelMetadataName: "app", "team": "web"}}},
		}
	}
	// Every map an object holds, with a copy of its content.
	type held struct{ live, was any }
	mapsOf := func(o metav1.Object) []held {
		out := []held{{o.GetLabels(), maps.Clone(o.GetLabels())}, {o.GetAnnotations(), maps.Clone(o.GetAnnotations())}}
		switch o := o.(type) {
		case *corev1.Secret:
			out = append(out, held{o.Data, maps.Clone(o.Data)})
		case *corev1.ConfigMap:
			out = append(out, held{o.Data, maps.Clone(o.Data)}, held{o.BinaryData, maps.Clone(o.BinaryData)})
		}
		return out
	}
	transform := CacheTransform(ann, false)
	once := objects()
	var before []held
	for _, o := range once {
		before = append(before, mapsOf(o)...)
		_, err := transform(o)
		require.NoError(t, err)
	}
	for _, h := range before {
		assert.Equal(t, h.was, h.live, "a map the object held as it came")
	}
	var transformed []held
	for _, o := range once {
		transformed = append(transformed, mapsOf(o)...)
	}
	// Cached objects are read by other goroutines meanwhile (go test
	// -race sees a write).
	stop, read := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(read)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, o := range once {
				_ = maps.Clone(o.GetAnnotations())
				_ = maps.Clone(o.GetLabels())
			}
		}
	}()
	twice := objects()
	for _, o := range twice {
		_, err := transform(o)
		require.NoError(t, err)
		_, err = transform(o)
		require.NoError(t, err)
	}
	close(stop)
	<-read
	for _, h := range transformed {
		assert.Equal(t, h.was, h.live, "a map held after the first pass")
	}
	for i := range once {
		assert.Equal(t, once[i], twice[i], "a second pass changes nothing")
	}
}

func TestCacheTransformBoundsWhatAnObjectBrings(t *testing.T) {
	big := strings.Repeat("x", MaxMetadataBytes)
	tests := map[string]struct {
		annotations map[string]string
		labels      map[string]string
		refused     bool
		says        string   // besides MaxMetadataBytes, when refused
		kept        []string // annotation keys left, when not refused
	}{
		"a list past its own limits is named with the limit": {
			annotations: map[string]string{ann.ReplicateTo: strings.Repeat("team-a,", 5000)},
			refused:     true, says: ann.ReplicateTo + ": the list has 5000 entries, more than the 1000 accepted (MaxPatterns)",
		},
		"a source keeps only the annotations the replicator reads": {
			annotations: map[string]string{ann.ReplicateTo: "team-a", corev1.LastAppliedConfigAnnotation: big, "other.example/x": "y"},
			kept:        []string{ann.ReplicateTo},
		},
		"a pull target keeps every annotation: a write carries them": {
			annotations: map[string]string{ann.ReplicateFrom: "a/b", "other.example/x": "y"},
			kept:        []string{ann.ReplicateFrom, "other.example/x"},
		},
		"a pull target past the limit is cut to its name": {
			annotations: map[string]string{ann.ReplicateFrom: "a/b", "other.example/x": big},
			refused:     true,
		},
		"a source whose own annotations are past the limit is cut to its name": {
			annotations: map[string]string{ann.ReplicationAllowed: "true", ann.ReplicationAllowedNS: big},
			refused:     true,
		},
		"labels count too: they are copied onto replicas": {
			annotations: map[string]string{ann.ReplicateTo: "team-a"},
			labels:      map[string]string{"a": big[:MaxMetadataBytes/2], "b": big[:MaxMetadataBytes/2]},
			refused:     true,
		},
		"a copy another tool made keeps everything, within the limit": {
			annotations: map[string]string{ann.ReplicatedAt: "2026-01-01T00:00:00Z", "other.example/x": "y"},
			kept:        []string{ann.ReplicatedAt, "other.example/x"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Annotations: tt.annotations, Labels: tt.labels},
				Data:       map[string][]byte{"k": []byte("v")},
			}
			out, err := CacheTransform(ann, false)(s)
			require.NoError(t, err)
			got := out.(*corev1.Secret)
			view := Secrets().View(got)
			why, refused := view.Annotations[refusedMark]
			assert.Equal(t, tt.refused, refused)
			if tt.refused {
				assert.Contains(t, why, "MaxMetadataBytes")
				assert.Contains(t, why, tt.says)
				assert.Nil(t, got.Data, "no data kept")
				assert.Nil(t, got.Labels)
				assert.Len(t, got.Annotations, 1, "only why")
				assert.True(t, ann.Relevant(got.Annotations), "the controller looks at it, to say why")
				return
			}
			assert.ElementsMatch(t, tt.kept, slices.Collect(maps.Keys(got.Annotations)))
		})
	}
}
