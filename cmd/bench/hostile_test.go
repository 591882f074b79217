package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubereplicator/replicator/replicate"
)

// The namespaces of the lab, and a few more: no hostile entry or selector
// may match one (a match would stop a matcher early, or push for real).
var labNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease", tenantNamespace, legitNamespace,
	"app-0", "app-4", "certs", "x", "a1", "zz"}

func TestCostlyEntriesMatchNoNamespace(t *testing.T) {
	for _, e := range append(costlyEntries, limitEntries(ownLimits)...) {
		if strings.Contains(e, ",") {
			t.Errorf("%s holds a comma: a list would split it", e)
		}
		re, err := regexp.Compile("^(?:" + e + ")$")
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		for _, ns := range labNamespaces {
			if re.MatchString(ns) {
				t.Errorf("%s matches %s", e, ns)
			}
		}
	}
	for _, e := range costlyEntries {
		if c, err := replicate.PatternCost(e); err != nil || c <= replicate.MaxPatternCost {
			t.Errorf("%s costs %d (%v): want more than MaxPatternCost %d", e, c, err, replicate.MaxPatternCost)
		}
	}
}

func TestLimitEntriesAreAtTheLimits(t *testing.T) {
	entries := limitEntries(ownLimits)
	total := 0
	for i, e := range entries {
		c, err := replicate.PatternCost(e)
		// The last one takes what the list has left.
		if err != nil || c > replicate.MaxPatternCost || i < len(entries)-1 && c < replicate.MaxPatternCost*9/10 {
			t.Errorf("%s costs %d (%v): want just under MaxPatternCost %d", e, c, err, replicate.MaxPatternCost)
		}
		total += c
	}
	if total > replicate.MaxListCost || total < replicate.MaxListCost*99/100 {
		t.Errorf("the entries cost %d together: want just under MaxListCost %d", total, replicate.MaxListCost)
	}
}

func TestFlavours(t *testing.T) {
	past, within := pastLimits(), withinLimits(ownLimits)
	for _, tc := range []struct {
		f        flavour
		min, max int // bytes of annotations
	}{
		{past, apivalidation.TotalAnnotationSizeLimitB - 1024, apivalidation.TotalAnnotationSizeLimitB},
		{within, replicate.MaxMetadataBytes - 2048, replicate.MaxMetadataBytes - limitsMargin},
	} {
		t.Run(tc.f.name, func(t *testing.T) {
			for _, i := range []int{0, 1, 98, 99} {
				a := tc.f.annotations(i)
				if errs := apivalidation.ValidateAnnotations(a, field.NewPath("metadata", "annotations")); len(errs) > 0 {
					t.Fatalf("object %d: %v", i, errs.ToAggregate())
				}
				if n := annotationBytes(a); n > tc.max || i%2 == 1 && n < tc.min {
					t.Errorf("object %d: %d bytes of annotations, want %d..%d", i, n, tc.min, tc.max)
				}
				for _, k := range append(append(append([]string{}, listKeys...), selectorKeys...), trueKeys...) {
					if _, ok := a[k]; !ok {
						t.Errorf("object %d has no %s", i, k)
					}
				}
				if _, ok := a[ours.ReplicateFrom]; ok != (i%2 == 1) {
					t.Errorf("object %d: replicate-from %v, want it on odd objects only", i, ok)
				}
				if errs := validation.IsDNS1123Subdomain(objectName(tc.f.prefix, i)); len(errs) > 0 || len(objectName(tc.f.prefix, i)) != 253 {
					t.Errorf("name of object %d: %v", i, errs)
				}
			}
			// Every object's lists and selectors differ from every other's.
			if tc.f.annotations(0)[listKeys[0]] == tc.f.annotations(1)[listKeys[0]] || tc.f.annotations(0)[selectorKeys[0]] == tc.f.annotations(1)[selectorKeys[0]] {
				t.Error("two objects share a list or a selector")
			}
			for _, sel := range []string{tc.f.selector, tc.f.annotations(7)[selectorKeys[0]]} {
				s, err := labels.Parse(sel)
				if err != nil {
					t.Fatalf("selector: %v", err)
				}
				for _, ns := range labNamespaces {
					if s.Matches(labels.Set{"kubernetes.io/metadata.name": ns}) {
						t.Errorf("the selector selects %s", ns)
					}
				}
			}
		})
	}
	// Past the limits: every list and selector is past the replicator's.
	a := past.annotations(1)
	for _, k := range listKeys {
		if len(a[k]) <= replicate.MaxListBytes {
			t.Errorf("past the limits: %s is %d bytes, not past MaxListBytes", k, len(a[k]))
		}
	}
	for _, k := range selectorKeys {
		if len(a[k]) <= replicate.MaxSelectorBytes {
			t.Errorf("past the limits: %s is %d bytes, not past MaxSelectorBytes", k, len(a[k]))
		}
	}
	// Within the limits: the replicator takes every list whole, at its
	// cost limit.
	a = within.annotations(1)
	for _, k := range listKeys {
		p, errs := replicate.ParsePatterns(a[k])
		if len(errs) > 0 || p.Empty() {
			t.Errorf("within limits: %s refused: %v", k, errs)
		}
		if n := len(strings.Split(a[k], ",")); n > replicate.MaxPatterns || len(a[k]) > replicate.MaxListBytes {
			t.Errorf("within limits: %s has %d entries, %d bytes", k, n, len(a[k]))
		}
	}
	for _, k := range selectorKeys {
		if len(a[k]) > replicate.MaxSelectorBytes {
			t.Errorf("within limits: %s is %d bytes", k, len(a[k]))
		}
	}
}

func TestJoinUpTo(t *testing.T) {
	item := func(i int) string { return fmt.Sprint("e", i) }
	for _, tc := range []struct {
		max, count int
		want       string
	}{
		{0, 10, ""},
		{1, 10, ""},
		{2, 10, "e0"},
		{5, 10, "e0,e1"},
		{6, 10, "e0,e1"},
		{100, 3, "e0,e1,e2"},
	} {
		if got := joinUpTo(tc.max, tc.count, item); got != tc.want {
			t.Errorf("joinUpTo(%d, %d) = %q, want %q", tc.max, tc.count, got, tc.want)
		}
	}
	for _, size := range []int{40, 100, 1000, 29000} {
		if got := costlyList(size); len(got) != size {
			t.Errorf("costlyList(%d) is %d bytes", size, len(got))
		}
		if got := bigSelector(size); len(got) > size || len(got) < size-20 {
			t.Errorf("bigSelector(%d) is %d bytes", size, len(got))
		}
	}
}

func TestPercentileAndSummary(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{[]float64{1}, 50, 1},
		{[]float64{1}, 99, 1},
		{[]float64{1, 2}, 50, 1},
		{[]float64{1, 2}, 99, 2},
		{[]float64{1, 2, 3, 4}, 50, 2},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0, 1},
	} {
		if got := percentile(tc.xs, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.xs, tc.p, got, tc.want)
		}
	}
	var samples []probeSample
	for i := 1; i <= 100; i++ {
		samples = append(samples, probeSample{Seconds: float64(i) / 50, OK: i != 100})
	}
	got := summarize(samples)
	want := latencySummary{Count: 100, Over: 50, TimedOut: 1, Max: 2, P50: 1, P99: 1.98}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (latencySummary{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

func TestWindows(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	m := marks{hostile: at(10), created: at(40), down: at(100), up: at(110)}
	for _, tc := range []struct {
		start, end float64
		m          marks
		want       string
	}{
		{1, 2, m, windowBaseline},
		{9.5, 10, m, windowBaseline},
		{9.5, 10.5, m, windowCreating},
		{20, 21, m, windowCreating},
		{39.5, 40.5, m, windowCreating},
		{40, 41, m, windowCreated},
		{99, 100, m, windowCreated},
		{99, 101, m, windowGap},
		{105, 106, m, windowGap},
		{109, 111, m, windowGap},
		{110, 111, m, windowRestart},
		{200, 201, m, windowRestart},
		{1, 2, marks{}, windowBaseline},
		{50, 51, marks{hostile: at(10)}, windowCreating},
		{50, 51, marks{hostile: at(10), created: at(40)}, windowCreated},
		{99, 101, marks{hostile: at(10), created: at(40), down: at(100)}, windowGap},
	} {
		if got := tc.m.window(at(tc.start), at(tc.end)); got != tc.want {
			t.Errorf("window(%v, %v) = %s, want %s", tc.start, tc.end, got, tc.want)
		}
	}
}

func TestChartArgs(t *testing.T) {
	manifest := `---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: replicator
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: replicator
spec:
  template:
    spec:
      containers:
        - name: replicator
          args:
            - --status-addr=:9102
            - "--push-from-namespaces="
            - --workers=32
            - --leader-elect=true
            - --leader-elect-lease-name=replicator
            - --dialects=replicator
`
	args, err := chartArgs([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--push-from-namespaces=", "--workers=32", "--dialects=replicator"}
	if fmt.Sprint(args) != fmt.Sprint(want) {
		t.Errorf("chartArgs = %q, want %q", args, want)
	}
	got := withArgs(args, "--push-from-namespaces=tenant-a", "--dialects=replicator,kubed", "--kube-api-qps=-1")
	want = []string{"--push-from-namespaces=tenant-a", "--workers=32", "--dialects=replicator,kubed", "--kube-api-qps=-1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("withArgs = %q, want %q", got, want)
	}
	if fmt.Sprint(args) != fmt.Sprint([]string{"--push-from-namespaces=", "--workers=32", "--dialects=replicator"}) {
		t.Errorf("withArgs changed its argument: %q", args)
	}
	if _, err := chartArgs([]byte("kind: ServiceAccount\n")); err == nil {
		t.Error("no Deployment: want an error")
	}
}

func TestVersionOf(t *testing.T) {
	for in, want := range map[string]int{"v0": 0, "v1": 1, "v123": 123, "": 0, "1": 0, "v": 0, "vx": 0, "v-1": -1} {
		if got := versionOf(in); got != want {
			t.Errorf("versionOf(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestProberObserve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	p := newProber(nil, t0)
	for v := 1; v <= 4; v++ {
		p.pending[v] = probeSample{At: float64(v), start: at(float64(v))}
	}
	p.observe(0, at(1.5)) // nothing arrived yet
	if len(p.samples) != 0 {
		t.Fatalf("samples %v", p.samples)
	}
	p.observe(2, at(2.5)) // 1 and 2 arrived together (1 skipped is fine)
	p.observe(1, at(2.6)) // a placeholder read late never goes back
	end := 3 + probeTimeout.Seconds() + 0.5
	p.observe(2, at(end)) // 3 timed out, 4 not yet
	p.pending[5] = probeSample{At: end - 0.5, start: at(end - 0.5)}
	p.finish(at(end)) // 4 waited past the target: counted; 5 waited 0.5 s: dropped
	var got []string
	for _, s := range p.all() {
		got = append(got, fmt.Sprintf("%.0f:%.1f:%v", s.At, s.Seconds, s.OK))
	}
	want := []string{"1:1.5:true", "2:0.5:true", fmt.Sprintf("3:%.1f:false", probeTimeout.Seconds()), fmt.Sprintf("4:%.1f:false", end-4)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("samples %v, want %v", got, want)
	}
	if len(p.pending) != 0 {
		t.Errorf("pending after finish: %v", p.pending)
	}
}

func TestReadLimits(t *testing.T) {
	own := limits{1, 2, 3, 4, 5, 6}
	source := `const (
	// MaxPatterns is ...
	MaxPatterns = 1000
	MaxListBytes = 16 * 1024
	MaxPatternCost = 300 // a comment
	MaxListCost    = 1_000
	MaxSelectorBytes = 4096
)
`
	got, missing := readLimits(source, own)
	want := limits{Patterns: 1000, ListBytes: 16384, PatternCost: 300, ListCost: 1000, SelectorBytes: 4096, MetadataBytes: 6}
	if got != want || fmt.Sprint(missing) != "[MaxMetadataBytes]" {
		t.Errorf("readLimits = %+v, %v; want %+v, [MaxMetadataBytes]", got, missing, want)
	}
	// The repository's own file gives the package's values.
	b, err := os.ReadFile("../../replicate/patterns.go")
	if err != nil {
		t.Fatal(err)
	}
	if got, missing := readLimits(string(b), limits{}); got != ownLimits || len(missing) > 0 {
		t.Errorf("readLimits(replicate/patterns.go) = %+v, %v; want %+v", got, missing, ownLimits)
	}
}

func TestInertFlavours(t *testing.T) {
	fs := []flavour{pastLimits(), withinLimits(ownLimits)}
	for k, f := range inertFlavours(fs) {
		hostile, inert := fs[k].annotations(1), f.annotations(1)
		if errs := apivalidation.ValidateAnnotations(inert, field.NewPath("metadata", "annotations")); len(errs) > 0 {
			t.Fatalf("%s: %v", f.name, errs.ToAggregate())
		}
		if len(inert) != len(hostile) || annotationBytes(inert) > annotationBytes(hostile) || annotationBytes(inert) < annotationBytes(hostile)-512 {
			t.Errorf("%s: %d annotations of %d bytes, want %d of about %d", f.name, len(inert), annotationBytes(inert), len(hostile), annotationBytes(hostile))
		}
		for key := range inert {
			if !strings.HasPrefix(key, inertPrefix) {
				t.Errorf("%s: %s is not under %s", f.name, key, inertPrefix)
			}
		}
		if objectName(f.prefix, 1) == objectName(fs[k].prefix, 1) {
			t.Errorf("%s: named as the hostile objects", f.name)
		}
	}
}
