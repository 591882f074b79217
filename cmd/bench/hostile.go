package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"github.com/kubereplicator/replicator/internal/testsupport"
	"github.com/kubereplicator/replicator/replicate"
)

// The hostile mode (make bench-hostile): can one tenant, who may write
// anything into its own namespace, make the replicator use unbounded memory
// or slow down the replication of other tenants?
//
// Each phase runs in a fresh control plane with a fresh replicator started
// with the arguments of the chart's default values (deploy/replicator.yaml),
// then again with the tenant allowed to push and every dialect read. A
// prober updates a legitimate source Secret every second and times until
// every placeholder pulling it holds the new value: first alone (baseline),
// then while the tenant creates N objects whose annotations hold everything
// the replicator parses, at its most costly (the API server busy with them
// too), until the replicator is done with them, and after a restart (when it
// reads all of them at once). A third phase, the control, creates the same
// objects with their annotations under keys the replicator does not read:
// what they cost the API server and the watch alone. It reports; it fails
// only when the setup does.

const (
	tenantNamespace = "tenant-a"
	legitNamespace  = "certs"
	legitName       = "wildcard"
	// hostileMargin is how far under the API server's limit on an object's
	// annotations (TotalAnnotationSizeLimitB, 256 KiB) the objects past the
	// replicator's limits stay.
	hostileMargin = 64
	// limitsMargin is how far under MaxMetadataBytes the objects
	// within the replicator's limits stay: room for the bookkeeping
	// annotations the replicator adds when it writes a pull target.
	limitsMargin = 512
	// The targets the verdict compares with.
	targetRSSMiB  = 128
	targetLatency = time.Second
	// probeTimeout is how long one probe waits for every placeholder.
	probeTimeout = 2 * time.Minute
)

// placeholderNamespaces are the legitimate tenants pulling legitName.
var placeholderNamespaces = []string{"app-0", "app-1", "app-2", "app-3", "app-4"}

// The annotations the hostile objects fill, by what they hold.
var (
	ours      = replicate.NewAnnotations(replicate.DefaultPrefix)
	reflector = replicate.NewReflectorKeys()
	// listKeys hold pattern lists.
	listKeys = []string{ours.ReplicationAllowedNS, ours.ReplicationAllowedClusters, ours.ReplicateTo,
		reflector.AllowedNamespaces, reflector.AutoNamespaces}
	// selectorKeys hold label selectors.
	selectorKeys = []string{ours.ReplicateToMatching, replicate.KubedSyncAnnotation,
		reflector.AllowedSelector, reflector.AutoSelector}
	// trueKeys are set to "true": consent to pull, reflector's consent and
	// its auto push.
	trueKeys = []string{ours.ReplicationAllowed, reflector.Allowed, reflector.AutoEnabled}
	// refKeys name a source (on every other object).
	refKeys = []string{ours.ReplicateFrom, reflector.Reflects}
)

// costlyEntries are RE2 entries that compile to as many instructions per byte
// as Go's parser accepts (it caps a repetition count at 1000, and nested
// repetitions at 1000 together). None holds a comma, which separates the
// entries of a list: "x{1,1000}" would be two harmless fragments, so the
// counts are exact ("x{1000}"), or a "?" repeated. Each ends in "_", which no
// namespace or cluster name holds: they match nothing, so a matcher tries
// every one.
var costlyEntries = []string{`(?:.?){1000}_`, `.{1000}_`, `[a-z0-9]{1000}_`, `(?i)[[:alpha:]]{1000}_`, `(?:[a-z0-9]{63}[a-z]){15}_`}

// costlyTemplates are the entries within the replicator's limits, with the
// repetition count left open for entries of a given cost. Of the entries of
// the same cost (replicate.PatternCost) these are by far the slowest to
// match: an optional or starred any-character repeated makes the matcher
// follow a thread per repetition at every byte of the name (at a cost of
// 1,000, "(?:.?){327}_" takes about 0.1 ms for a 15-byte name and 0.4 ms for
// 63 bytes, where "[a-z0-9]{491}_" takes 20 ns).
var costlyTemplates = []string{`(?:.?){%d}_`, `(?:.*){%d}_`}

// The unique first entry of each object's lists and selectors: no two
// objects' annotations are equal, as an attacker's would not be (equal lists
// would be parsed once, equal maps held once).
func uniqueListEntry(i int) string   { return fmt.Sprintf("u%05d,", i%100000) }
func uniqueRequirement(i int) string { return fmt.Sprintf("!u%05d,", i%100000) }

// objectName is as long as a name may be: the references to it are as long
// as they can be.
func objectName(prefix string, i int) string {
	n := fmt.Sprintf("%s-%05d-", prefix, i)
	return n + strings.Repeat("x", 253-len(n))
}

// limits are the replicator's limits the objects within them are made for:
// those of the replicator built (read from its replicate/patterns.go), the
// bench's own (its replicate package) otherwise.
type limits struct {
	Patterns      int `json:"maxPatterns"`
	ListBytes     int `json:"maxListBytes"`
	PatternCost   int `json:"maxPatternCost"`
	ListCost      int `json:"maxListCost"`
	SelectorBytes int `json:"maxSelectorBytes"`
	MetadataBytes int `json:"maxMetadataBytes"`
}

// ownLimits are the bench's own replicate package's.
var ownLimits = limits{replicate.MaxPatterns, replicate.MaxListBytes, replicate.MaxPatternCost,
	replicate.MaxListCost, replicate.MaxSelectorBytes, replicate.MaxMetadataBytes}

// readLimits reads the limits from the source of replicate/patterns.go
// ("MaxListBytes = 16 * 1024"); a limit it does not find keeps its value in
// own, and is named in missing.
func readLimits(source string, own limits) (l limits, missing []string) {
	l = own
	for name, v := range map[string]*int{"MaxPatterns": &l.Patterns, "MaxListBytes": &l.ListBytes, "MaxPatternCost": &l.PatternCost,
		"MaxListCost": &l.ListCost, "MaxSelectorBytes": &l.SelectorBytes, "MaxMetadataBytes": &l.MetadataBytes} {
		m := regexp.MustCompile(`(?m)^\s*` + name + `\s*=\s*([0-9_]+)(?:\s*\*\s*([0-9_]+))?\s*(?://.*)?$`).FindStringSubmatch(source)
		if m == nil {
			missing = append(missing, name)
			continue
		}
		n, _ := strconv.Atoi(strings.ReplaceAll(m[1], "_", ""))
		if m[2] != "" {
			f, _ := strconv.Atoi(strings.ReplaceAll(m[2], "_", ""))
			n *= f
		}
		*v = n
	}
	slices.Sort(missing)
	return l, missing
}

// builtLimits are the limits of the replicator whose source is in src, and
// a warning if they could not all be read (the bench's own are taken then).
func builtLimits(src string) (limits, string) {
	b, err := os.ReadFile(filepath.Join(src, "replicate", "patterns.go"))
	if err != nil {
		return ownLimits, fmt.Sprintf("%v: the bench's own limits taken", err)
	}
	l, missing := readLimits(string(b), ownLimits)
	if len(missing) > 0 {
		return l, fmt.Sprintf("%s not found in the replicator's replicate/patterns.go: the bench's own taken", strings.Join(missing, ", "))
	}
	return l, ""
}

// flavour is one shape of hostile object. The bodies of its lists and
// selectors are made once and shared by every object of the flavour.
type flavour struct {
	name   string
	prefix string // of the objects' names
	// limit is what an object's annotations may hold in bytes, keys and
	// values counted (as the API server counts them).
	limit          int
	list, selector string
	// inert objects carry the same values under keys the replicator does
	// not read (inertPrefix): the control, what the objects cost the API
	// server and the watch alone.
	inert bool
}

// inertPrefix is where an inert object carries its annotations.
const inertPrefix = "bench.example.com/"

// inertFlavours are fs as inert objects, named apart.
func inertFlavours(fs []flavour) []flavour {
	var out []flavour
	for _, f := range fs {
		f.inert, f.name, f.prefix = true, f.name+", inert", "i"+f.prefix
		out = append(out, f)
	}
	return out
}

// fixedBytes is what the annotations of an object that pulls hold besides
// the bodies of its lists and selectors; the others hold less.
func fixedBytes(prefix string) int {
	n := 0
	for _, k := range trueKeys {
		n += len(k) + len("true")
	}
	for _, k := range refKeys {
		n += len(k) + len(tenantNamespace) + 1 + len(objectName(prefix, 0))
	}
	for _, k := range listKeys {
		n += len(k) + len(uniqueListEntry(0))
	}
	for _, k := range selectorKeys {
		n += len(k) + len(uniqueRequirement(0))
	}
	return n
}

// pastLimits is the flavour whose annotations are as big as the API server
// accepts, shared evenly by the lists and selectors: every list and
// selector is past the replicator's own limits.
func pastLimits() flavour {
	f := flavour{name: "past the limits", prefix: "h", limit: apivalidation.TotalAnnotationSizeLimitB - hostileMargin}
	share := (f.limit - fixedBytes(f.prefix)) / (len(listKeys) + len(selectorKeys))
	f.list = costlyList(share)
	f.selector = bigSelector(share)
	return f
}

// withinLimits is the flavour the replicator accepts: every list at
// MaxListCost with its costliest entries (each at most MaxPatternCost),
// padded with plain names; the whole within MaxMetadataBytes, shared evenly
// by the lists and selectors (five lists of MaxListBytes would not fit).
func withinLimits(l limits) flavour {
	f := flavour{name: "within limits", prefix: "l", limit: l.MetadataBytes - limitsMargin}
	share := (f.limit - fixedBytes(f.prefix)) / (len(listKeys) + len(selectorKeys))
	f.list = limitList(l, min(share, l.ListBytes-len(uniqueListEntry(0))), l.Patterns-1)
	f.selector = bigSelector(min(share, l.SelectorBytes-len(uniqueRequirement(0))))
	return f
}

// annotations are object i's: consent everywhere, its lists and selectors,
// and on every other object a reference to the one before it (so that the
// pull gate reads that one's lists).
func (f flavour) annotations(i int) map[string]string {
	m := map[string]string{}
	for _, k := range trueKeys {
		m[k] = "true"
	}
	for _, k := range listKeys {
		m[k] = uniqueListEntry(i) + f.list
	}
	for _, k := range selectorKeys {
		m[k] = uniqueRequirement(i) + f.selector
	}
	if i%2 == 1 {
		for _, k := range refKeys {
			m[k] = tenantNamespace + "/" + objectName(f.prefix, i-1)
		}
	}
	if f.inert {
		inert := map[string]string{}
		for k, v := range m {
			_, name, _ := strings.Cut(k, "/")
			inert[inertPrefix+name] = v
		}
		return inert
	}
	return m
}

// annotationBytes counts annotations as the API server does: keys and
// values.
func annotationBytes(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// joinUpTo joins item(0), item(1), ... with commas, as many as fit in max
// bytes and at most count of them.
func joinUpTo(max, count int, item func(i int) string) string {
	var b strings.Builder
	for i := 0; i < count; i++ {
		s := item(i)
		if i > 0 {
			s = "," + s
		}
		if b.Len()+len(s) > max {
			break
		}
		b.WriteString(s)
	}
	return b.String()
}

// costlyList is a list of size bytes of costlyEntries, over and over; a
// plain name fills what is left.
func costlyList(size int) string {
	s := joinUpTo(size, math.MaxInt, func(i int) string { return costlyEntries[i%len(costlyEntries)] })
	if rest := size - len(s) - 1; rest > 0 {
		s += "," + strings.Repeat("z", rest)
	}
	return s
}

// costliest returns the entry of template with the largest repetition count
// that costs at most budget (replicate.PatternCost), and its cost; "" if
// none does.
func costliest(template string, budget int) (string, int) {
	fits := func(n int) (string, int, bool) {
		e := fmt.Sprintf(template, n)
		c, err := replicate.PatternCost(e)
		return e, c, err == nil && c <= budget
	}
	if _, _, ok := fits(1); !ok {
		return "", 0
	}
	lo, hi := 1, 1000 // fits(lo); Go refuses counts past 1000
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if _, _, ok := fits(mid); ok {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	e, c, _ := fits(lo)
	return e, c
}

// limitEntries are the costliest entries one list may hold together: each
// as close to MaxPatternCost as its template allows, until the list's cost
// is as close to MaxListCost as it gets (the last entry takes what is
// left). Costs are replicate.PatternCost's.
func limitEntries(l limits) []string {
	var out []string
	left := l.ListCost
	for i := 0; ; i++ {
		found := false
		// The next template in turn that still fits.
		for j := range costlyTemplates {
			e, c := costliest(costlyTemplates[(i+j)%len(costlyTemplates)], min(l.PatternCost, left))
			if e != "" {
				out, left, found = append(out, e), left-c, true
				break
			}
		}
		if !found {
			return out
		}
	}
}

// limitList is limitEntries, then distinct plain names, up to size bytes and
// count entries.
func limitList(l limits, size, count int) string {
	entries := limitEntries(l)
	return joinUpTo(size, count, func(i int) string {
		if i < len(entries) {
			return entries[i]
		}
		return "p" + strconv.Itoa(i)
	})
}

// bigSelector is a valid label selector of at most size bytes that selects
// no namespace but makes a matcher check every requirement on the way:
// "a notin (...)" and "!k0,!k1,..." hold for every namespace without those
// labels, and the last requirement (by key, as a parsed selector is sorted),
// "zz in (...)", fails.
func bigSelector(size int) string {
	third := size / 3
	notIn := "a notin (" + joinUpTo(third-len("a notin ()"), math.MaxInt, func(i int) string { return "v" + strconv.Itoa(i) }) + ")"
	absent := joinUpTo(third-1, math.MaxInt, func(i int) string { return "!k" + strconv.Itoa(i) })
	rest := size - len(notIn) - len(absent) - 2
	in := "zz in (" + joinUpTo(rest-len("zz in ()"), math.MaxInt, func(i int) string { return "w" + strconv.Itoa(i) }) + ")"
	return notIn + "," + absent + "," + in
}

// chartArgs are the replicator's arguments in the Deployment of manifest
// (the chart rendered with its default values), without what does not
// apply to a process outside a cluster: the status address and leader
// election (the bench starts it with --leader-elect=false).
func chartArgs(manifest []byte) ([]string, error) {
	for _, doc := range strings.Split(string(manifest), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name != "replicator" {
				continue
			}
			var args []string
			for _, a := range c.Args {
				if strings.HasPrefix(a, "--status-addr") || strings.HasPrefix(a, "--leader-elect") {
					continue
				}
				args = append(args, a)
			}
			return args, nil
		}
	}
	return nil, errors.New("no Deployment with a container named replicator")
}

// withArgs replaces the flags of args that set names the same flags as
// set, and adds the others.
func withArgs(args []string, set ...string) []string {
	name := func(a string) string { n, _, _ := strings.Cut(a, "="); return n }
	out := slices.Clone(args)
	for _, s := range set {
		i := slices.IndexFunc(out, func(a string) bool { return name(a) == name(s) })
		if i >= 0 {
			out[i] = s
		} else {
			out = append(out, s)
		}
	}
	return out
}

// latencySummary describes the probes of one window.
type latencySummary struct {
	Count int `json:"count"`
	// Over counts the probes over targetLatency; TimedOut those whose
	// value had not reached every placeholder after probeTimeout (counted
	// as probeTimeout in the figures) or by the end of the phase (counted
	// as how long they had waited).
	Over     int     `json:"over1s"`
	TimedOut int     `json:"timedOut"`
	Max      float64 `json:"maxSeconds"`
	P50      float64 `json:"p50Seconds"`
	P99      float64 `json:"p99Seconds"`
}

// percentile is the nearest-rank p-th percentile of sorted (not empty).
func percentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func summarize(samples []probeSample) latencySummary {
	var s latencySummary
	var xs []float64
	for _, p := range samples {
		xs = append(xs, p.Seconds)
		if !p.OK {
			s.TimedOut++
		}
		if p.Seconds > targetLatency.Seconds() {
			s.Over++
		}
	}
	s.Count = len(xs)
	if len(xs) == 0 {
		return s
	}
	slices.Sort(xs)
	s.Max, s.P50, s.P99 = xs[len(xs)-1], percentile(xs, 50), percentile(xs, 99)
	return s
}

// The windows of a phase a probe is counted in.
const (
	windowBaseline = "baseline"       // before the hostile objects
	windowCreating = "while created"  // the API server busy creating them too
	windowCreated  = "after creation" // until the restart
	windowGap      = "restart gap"    // the replicator stopped: not counted
	windowRestart  = "after restart"  // the new process ready, reading them all
)

// windows in the order of a phase.
var windows = []string{windowBaseline, windowCreating, windowCreated, windowGap, windowRestart}

// marks are when a phase's windows begin.
type marks struct{ hostile, created, down, up time.Time }

// window is the window of a probe from start to end: a probe the restart
// overlaps (the replicator stopped or not yet ready) is in none that counts.
func (m marks) window(start, end time.Time) string {
	switch {
	case !m.down.IsZero() && end.After(m.down) && (m.up.IsZero() || start.Before(m.up)):
		return windowGap
	case !m.up.IsZero() && !start.Before(m.up):
		return windowRestart
	case m.hostile.IsZero() || !end.After(m.hostile):
		return windowBaseline
	case m.created.IsZero() || start.Before(m.created):
		return windowCreating
	default:
		return windowCreated
	}
}

// probeSample is one probe: the source updated to a new version, then
// timed until every placeholder holds it (or a later one).
type probeSample struct {
	At      float64 `json:"at"`            // seconds since the phase began
	Seconds float64 `json:"seconds"`       // until every placeholder held it
	Update  float64 `json:"updateSeconds"` // the source's update request alone
	// OK is false when the version had not reached every placeholder after
	// probeTimeout (Seconds is then probeTimeout), or by the end of the
	// phase (Seconds is then how long it had waited).
	OK     bool   `json:"ok"`
	Window string `json:"window"`

	start, end time.Time
}

// prober updates the source every second and, independently, reads every
// placeholder every 20 ms: each update is timed on its own, so a slow one
// (the replicator stopped, say) does not keep the next from being made and
// timed.
type prober struct {
	b     *bench
	begin time.Time
	mu    sync.Mutex
	// pending are the versions written and not yet seen everywhere.
	pending map[int]probeSample
	samples []probeSample
}

func newProber(b *bench, begin time.Time) *prober {
	return &prober{b: b, begin: begin, pending: map[int]probeSample{}}
}

// run probes until ctx is done, then counts the versions still on their
// way (see finish).
func (p *prober) run(ctx context.Context) {
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		p.poll(ctx)
	}()
	for version := 1; ctx.Err() == nil; version++ {
		start := time.Now()
		if err := p.update(ctx, version); err != nil {
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "bench: probe:", err)
			}
		} else {
			p.mu.Lock()
			p.pending[version] = probeSample{At: start.Sub(p.begin).Seconds(), Update: time.Since(start).Seconds(), start: start}
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(start.Add(time.Second))):
		}
	}
	<-polled
	p.finish(time.Now())
}

// update writes version into the source.
func (p *prober) update(ctx context.Context, version int) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := p.b.client.CoreV1().Secrets(legitNamespace).Get(ctx, legitName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Data = map[string][]byte{"value": []byte("v" + strconv.Itoa(version))}
		_, err = p.b.client.CoreV1().Secrets(legitNamespace).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
}

// poll reads every placeholder every 20 ms and tells observe the lowest
// version they hold.
func (p *prober) poll(ctx context.Context) {
	for ctx.Err() == nil {
		low := math.MaxInt
		for _, ns := range placeholderNamespaces {
			v := 0
			if s, err := p.b.client.CoreV1().Secrets(ns).Get(ctx, legitName, metav1.GetOptions{}); err == nil {
				v = versionOf(string(s.Data["value"]))
			}
			low = min(low, v)
		}
		if ctx.Err() != nil {
			return
		}
		p.observe(low, time.Now())
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// versionOf reads "v<version>"; 0 for anything else.
func versionOf(value string) int {
	v, err := strconv.Atoi(strings.TrimPrefix(value, "v"))
	if err != nil || !strings.HasPrefix(value, "v") {
		return 0
	}
	return v
}

// observe counts every pending version up to low as seen everywhere at
// now, and those older than probeTimeout as timed out.
func (p *prober) observe(low int, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for v, s := range p.pending {
		switch {
		case v <= low:
			s.end, s.OK = now, true
		case now.Sub(s.start) > probeTimeout:
			s.end = s.start.Add(probeTimeout)
		default:
			continue
		}
		s.Seconds = s.end.Sub(s.start).Seconds()
		p.samples = append(p.samples, s)
		delete(p.pending, v)
	}
}

// finish counts the versions still on their way at the end, if they have
// waited longer than targetLatency already, as not seen (with how long they
// had waited): dropping them would hide the slowest.
func (p *prober) finish(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for v, s := range p.pending {
		if now.Sub(s.start) > targetLatency {
			s.end = now
			s.Seconds = now.Sub(s.start).Seconds()
			p.samples = append(p.samples, s)
		}
		delete(p.pending, v)
	}
}

// placeholdersHold reads every placeholder every 20 ms until each has held
// want (true) or timeout passes (false).
func (b *bench) placeholdersHold(ctx context.Context, want string, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	left := slices.Clone(placeholderNamespaces)
	for len(left) > 0 {
		var still []string
		for _, ns := range left {
			s, err := b.client.CoreV1().Secrets(ns).Get(ctx, legitName, metav1.GetOptions{})
			if err != nil && ctx.Err() != nil {
				return false, err
			}
			if err != nil || string(s.Data["value"]) != want {
				still = append(still, ns)
			}
		}
		left = still
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true, nil
}

// all are the samples in the order of their updates.
func (p *prober) all() []probeSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.SortedFunc(slices.Values(p.samples), func(a, b probeSample) int { return a.start.Compare(b.start) })
}

// tailBuffer keeps the last max bytes written and counts them all: what the
// replicator logs about hostile objects must not fill the bench's memory.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	total int64
	buf   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > t.max {
		return string(t.buf[len(t.buf)-t.max:])
	}
	return string(t.buf)
}

func (t *tailBuffer) bytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// startLogged starts the replicator as start does, its output into logs.
func (b *bench) startLogged(logs *tailBuffer, args []string) (*testsupport.Process, error) {
	p, err := testsupport.Start(b.lab.Binary, b.lab.Cluster.KubeconfigPath, logs, append(append([]string{"--leader-elect=false", "--log-level=warning"}, b.extra...), args...)...)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, logs.String())
	}
	return p, nil
}

// settle waits until the replicator is done with what it was given: the
// hostile kind's queue empty and its adds (unless the probe's Secrets go
// through the same queue), every retry, problem and failed write unchanged
// over three scrapes 2 s apart, and at least least since from. It returns
// when that began, counted from from (or how long it waited, and false,
// when most passed first or the process exited).
func settle(p *testsupport.Process, queue string, from time.Time, least, most time.Duration) (time.Duration, bool) {
	var last string
	var since time.Time
	stable := 0
	for {
		select {
		case <-p.Exited():
			return time.Since(from), false
		case <-time.After(2 * time.Second):
		}
		m, err := p.Metrics()
		now := time.Now()
		if err == nil && m.Value("workqueue_depth", map[string]string{"name": queue}) == 0 {
			fp := fmt.Sprint(m.Sum("workqueue_retries_total", "")[""], m.Sum("replicator_problems_total", "")[""], m.Sum("replicator_write_errors_total", "")[""])
			if queue != "secrets" {
				fp += fmt.Sprint(" ", m.Value("workqueue_adds_total", map[string]string{"name": queue}))
			}
			if fp == last {
				stable++
			} else {
				stable, since = 0, now
			}
			last = fp
		} else {
			stable, last = 0, ""
		}
		if stable >= 2 && now.Sub(from) >= least {
			return since.Sub(from), true
		}
		if now.Sub(from) >= most {
			return now.Sub(from), false
		}
	}
}

// hostileOptions are the hostile mode's settings.
type hostileOptions struct {
	n        int
	kind     string // configmap or secret
	binDir   string
	manifest string
	extra    []string
	baseline time.Duration
	after    time.Duration
	most     time.Duration
	// commit names what to build the replicator from (empty: the working
	// tree); binary is what was built.
	commit, binary string
	// control adds a phase with the same objects under keys the replicator
	// does not read (inertPrefix), with the chart's defaults: what they
	// cost without the replicator parsing them.
	control bool
	// namespaces is how many more namespaces the lab has, with names as
	// long as they may be: what a push source's lists and selectors are
	// matched against grows with them.
	namespaces int
}

// hostilePhase is one phase's figures.
type hostilePhase struct {
	Name string   `json:"name"`
	Args []string `json:"args"`
	// AnnotationBytes is what the largest object of each flavour holds.
	AnnotationBytes map[string]int `json:"annotationBytes"`
	CreateSeconds   float64        `json:"createSeconds"`
	SettleSeconds   float64        `json:"settleSeconds"`
	Settled         bool           `json:"settled"`
	PeakRSS         float64        `json:"peakRSSMiB"`
	Problems        float64        `json:"problems"`
	Use             processUse     `json:"use"`
	LogBytes        int64          `json:"logBytes"`
	// The process started again.
	RestartReadySeconds  float64    `json:"restartReadySeconds"`
	RestartSettleSeconds float64    `json:"restartSettleSeconds"`
	RestartSettled       bool       `json:"restartSettled"`
	RestartPeakRSS       float64    `json:"restartPeakRSSMiB"`
	RestartLogBytes      int64      `json:"restartLogBytes"`
	RestartUse           processUse `json:"restartUse"`
	// CPU is what the phase cost from the first probe to the last: CPU
	// seconds of the lab's processes (the replicators' are in Use and
	// RestartUse), how busy the machine was, and the CPU seconds spent
	// outside the lab (other work on the machine, which the figures share
	// it with).
	CPU        cpuUse  `json:"cpu"`
	OutsideLab float64 `json:"outsideLabCPUSeconds"`
	// Exited says how a replicator process ended before it was stopped.
	Exited  string                    `json:"exited,omitempty"`
	Windows map[string]latencySummary `json:"windows"`
	// Verdict's figures: the highest peak RSS, and the probes of every
	// window but the restart gap.
	MaxPeakRSS float64        `json:"maxPeakRSSMiB"`
	Latency    latencySummary `json:"latency"`
	// LatencyOutsideCreation leaves out the probes while the objects were
	// created, when the API server is busy with them too (the control
	// phase shows how much).
	LatencyOutsideCreation latencySummary `json:"latencyOutsideCreation"`
	Samples                []probeSample  `json:"samples"`
}

type hostileReport struct {
	Commit string `json:"commit"`
	N      int    `json:"n"`
	// Namespaces is how many namespaces the lab had besides the tenant's,
	// the legitimate ones and the API server's own.
	Namespaces int    `json:"otherNamespaces"`
	Kind       string `json:"kind"`
	// Limits are those the objects within limits were made for, and
	// LimitEntries the expressions each of their lists holds.
	Limits       limits         `json:"limits"`
	LimitEntries []string       `json:"limitEntries"`
	Phases       []hostilePhase `json:"phases"`
	BenchMB      float64        `json:"benchPeakRSSMiB"`
	Results      []result       `json:"results"`
}

func runHostile(o hostileOptions, out string) error {
	if o.kind != "configmap" && o.kind != "secret" {
		return fmt.Errorf("-hostile-kind: %q is neither configmap nor secret", o.kind)
	}
	dir, err := os.MkdirTemp("", "replicator-hostile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	binary, src, from, err := buildReplicator(dir, o.commit)
	if err != nil {
		return err
	}
	// The chart of the same commit.
	manifest, err := os.ReadFile(filepath.Join(src, o.manifest))
	if err != nil {
		return err
	}
	args, err := chartArgs(manifest)
	if err != nil {
		return fmt.Errorf("%s: %w", o.manifest, err)
	}
	fmt.Fprintf(os.Stderr, "bench: the replicator built from %s\n", from)
	o.binary = binary
	l, warning := builtLimits(src)
	if warning != "" {
		fmt.Fprintln(os.Stderr, "bench: WARNING:", warning)
	}
	within := withinLimits(l)
	flavours := []flavour{pastLimits(), within}
	report := hostileReport{Commit: from, N: o.n, Kind: o.kind, Namespaces: o.namespaces, Limits: l, LimitEntries: limitEntries(l)}
	fmt.Fprintf(os.Stderr, "bench: limits %+v; a list within them: %s, then plain names\n", l, strings.Join(report.LimitEntries, ","))
	phases := []struct {
		name     string
		args     []string
		flavours []flavour
	}{
		{"chart defaults", args, flavours},
		{"tenant may push", withArgs(args, "--push-from-namespaces="+tenantNamespace, "--dialects=replicator,reflector,kubed"), flavours},
	}
	if o.control {
		phases = append(phases, struct {
			name     string
			args     []string
			flavours []flavour
		}{"control: inert keys", args, inertFlavours(flavours)})
	}
	var results []result
	for _, ph := range phases {
		b := &bench{ctx: context.Background(), extra: o.extra}
		res, err := b.hostilePhase(ph.name, ph.args, ph.flavours, o)
		results = append(results, b.results...)
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		report.Phases = append(report.Phases, res)
	}
	report.BenchMB = selfPeakRSS()
	report.Results = results

	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "measure\tvalue\tunit\tnote\n")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%.2f\t%s\t%s\n", r.Name, r.Value, r.Unit, r.Note)
	}
	w.Flush()
	fmt.Printf("\nreplicator %s, %d hostile %ss in %s (half past the limits, half within), %d other namespaces, bench's own peak RSS %.0f MiB\n", report.Commit, o.n, o.kind, tenantNamespace, o.namespaces, report.BenchMB)
	for _, p := range report.Phases {
		fmt.Printf("%s: peak RSS %.1f MiB (target <= %d): %s\n", p.Name, p.MaxPeakRSS, targetRSSMiB, met(p.MaxPeakRSS <= targetRSSMiB))
		fmt.Printf("%s: legit pull max %.2f s (target <= %.0f s): %s (p50 %.2f s, p99 %.2f s, %d of %d probes over 1 s, %d timed out; outside the creation: max %.2f s, %s)\n",
			p.Name, p.Latency.Max, targetLatency.Seconds(), met(p.Latency.Max <= targetLatency.Seconds()), p.Latency.P50, p.Latency.P99, p.Latency.Over, p.Latency.Count, p.Latency.TimedOut,
			p.LatencyOutsideCreation.Max, met(p.LatencyOutsideCreation.Max <= targetLatency.Seconds()))
	}
	j, _ := json.MarshalIndent(report, "", "  ")
	return os.WriteFile(out, append(j, '\n'), 0o644)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// buildReplicator builds the replicator once, for every phase: from the
// working tree, or from the commit rev names (through git archive, leaving
// the working tree and the repository as they are). It returns the binary,
// the folder it was built in, and what it was built from: the commit, with
// "+dirty" and a digest of the differences when the working tree differs
// from it.
func buildReplicator(dir, rev string) (binary, src, from string, err error) {
	src = "."
	if rev != "" {
		src = filepath.Join(dir, "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			return "", "", "", err
		}
		if out, err := exec.Command("sh", "-c", `git archive "$1" | tar -x -C "$2"`, "sh", rev, src).CombinedOutput(); err != nil {
			return "", "", "", fmt.Errorf("git archive %s: %v: %s", rev, err, out)
		}
		c, err := exec.Command("git", "rev-parse", "--short", rev+"^{commit}").Output()
		if err != nil {
			return "", "", "", fmt.Errorf("git rev-parse %s: %v", rev, err)
		}
		from = strings.TrimSpace(string(c))
	} else {
		from = treeState()
	}
	binary = filepath.Join(dir, "replicator")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", "", fmt.Errorf("building the replicator from %s: %v: %s", from, err, out)
	}
	return binary, src, from, nil
}

// binaryPaths are the files the replicator's binary is built from (a
// pathspec): not the tests, the other commands or the end-to-end suite.
var binaryPaths = []string{"*.go", "go.mod", "go.sum", ":!*_test.go", ":!cmd/**", ":!e2e/**", ":!hack/**", ":!tools/**"}

// treeState is the working tree's commit, with "+dirty", a digest of its
// differences and the files that differ, when what the binary is built from
// differs from it (new files included).
func treeState() string {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "unknown"
	}
	dir := strings.TrimSpace(string(top))
	c, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(c))
	git := func(args ...string) []byte {
		cmd := exec.Command("git", append(args, binaryPaths...)...)
		cmd.Dir = dir
		out, _ := cmd.Output()
		return out
	}
	diff := git("diff", "HEAD", "--")
	files := strings.Fields(string(git("diff", "--name-only", "HEAD", "--")))
	h := sha256.New()
	h.Write(diff)
	for _, f := range strings.Fields(string(git("ls-files", "--others", "--exclude-standard", "--"))) {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		h.Write([]byte(f))
		h.Write(b)
		files = append(files, f+" (new)")
	}
	if len(files) == 0 {
		return s
	}
	return fmt.Sprintf("%s+dirty:%x (%s)", s, h.Sum(nil)[:4], strings.Join(files, " "))
}

// selfPeakRSS is the bench's own high-water mark of resident memory, in
// MiB.
func selfPeakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// createFunc creates an object with the options given.
type createFunc func(ctx context.Context, b *bench, o metav1.CreateOptions) error

// hostileObject is object i of flavour f, of the kind in use, with
// annotations (f's for i when nil).
func hostileObject(kind string, f flavour, i int, annotations map[string]string) createFunc {
	if annotations == nil {
		annotations = f.annotations(i)
	}
	meta := metav1.ObjectMeta{Name: objectName(f.prefix, i), Namespace: tenantNamespace, Annotations: annotations}
	if kind == "secret" {
		s := &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"k": []byte("v")}}
		return func(ctx context.Context, b *bench, o metav1.CreateOptions) error {
			_, err := b.client.CoreV1().Secrets(tenantNamespace).Create(ctx, s, o)
			return err
		}
	}
	c := &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"k": "v"}}
	return func(ctx context.Context, b *bench, o metav1.CreateOptions) error {
		_, err := b.client.CoreV1().ConfigMaps(tenantNamespace).Create(ctx, c, o)
		return err
	}
}

// checkAccepted asks the API server (in a dry run) whether it takes the
// largest object of each flavour (one that pulls), and whether it refuses
// one a byte past its limit on annotations: the sizes are computed right.
func (b *bench) checkAccepted(kind string, flavours []flavour) (map[string]int, error) {
	sizes := map[string]int{}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	for _, f := range flavours {
		a := f.annotations(1)
		sizes[f.name] = annotationBytes(a)
		if err := hostileObject(kind, f, 1, a)(b.ctx, b, dry); err != nil {
			return nil, fmt.Errorf("the API server refuses an object %s (%d bytes of annotations): %w", f.name, sizes[f.name], err)
		}
	}
	over := flavours[0].annotations(1)
	const key = "bench/over"
	over[key] = strings.Repeat("z", max(0, apivalidation.TotalAnnotationSizeLimitB+1-annotationBytes(over)-len(key)))
	if err := hostileObject(kind, flavours[0], 1, over)(b.ctx, b, dry); !apierrors.IsInvalid(err) {
		return nil, fmt.Errorf("the API server did not refuse %d bytes of annotations (%v): its limit is not where the bench thinks", annotationBytes(over), err)
	}
	return sizes, nil
}

func (b *bench) hostilePhase(name string, args []string, flavours []flavour, o hostileOptions) (hostilePhase, error) {
	res := hostilePhase{Name: name, Args: args, Windows: map[string]latencySummary{}}
	say := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "bench: %s: %s\n", name, fmt.Sprintf(format, a...))
	}
	lab, err := testsupport.NewLab(b.ctx, "hostile", o.binDir)
	if err != nil {
		return res, err
	}
	defer lab.Close()
	b.lab, b.client = lab, lab.Client
	// The same binary in every phase, whatever the working tree holds now.
	lab.Binary = o.binary
	ctx := b.ctx

	for _, ns := range append([]string{tenantNamespace, legitNamespace}, placeholderNamespaces...) {
		if _, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return res, err
		}
	}
	if err := parallel(o.namespaces, func(i int) error {
		n := fmt.Sprintf("other-%05d-", i)
		_, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n + strings.Repeat("x", 63-len(n))}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return res, err
	}
	if _, err := b.client.CoreV1().Secrets(legitNamespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: legitName, Annotations: map[string]string{
			ours.ReplicationAllowed: "true", ours.ReplicationAllowedNS: "app-.*"}},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"value": []byte("v0")},
	}, metav1.CreateOptions{}); err != nil {
		return res, err
	}
	for _, ns := range placeholderNamespaces {
		if _, err := b.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: legitName, Annotations: map[string]string{ours.ReplicateFrom: legitNamespace + "/" + legitName}},
			Type:       corev1.SecretTypeOpaque,
		}, metav1.CreateOptions{}); err != nil {
			return res, err
		}
	}
	if res.AnnotationBytes, err = b.checkAccepted(o.kind, flavours); err != nil {
		return res, err
	}
	say("the API server takes the objects: %v bytes of annotations", res.AnnotationBytes)

	logs := &tailBuffer{max: 64 << 10}
	r, err := b.startLogged(logs, args)
	if err != nil {
		return res, err
	}
	defer func() {
		if r != nil {
			r.Stop()
		}
	}()
	if ok, err := b.placeholdersHold(ctx, "v0", time.Minute); err != nil || !ok {
		return res, fmt.Errorf("the placeholders were not filled within a minute (%v)\n%s", err, logs.String())
	}

	labPids := func() map[string]int {
		pids := lab.Cluster.Pids()
		pids["bench"] = os.Getpid()
		return pids
	}
	cpuBefore := sampleCPU(labPids())
	replicatorBefore, _ := processCPU(r.Pid())
	begin := time.Now()
	p := newProber(b, begin)
	probeCtx, stopProbe := context.WithCancel(ctx)
	probing := make(chan struct{})
	go func() {
		defer close(probing)
		p.run(probeCtx)
	}()
	defer func() {
		stopProbe()
		<-probing
	}()
	say("baseline: probing for %s", o.baseline)
	time.Sleep(o.baseline)

	var m marks
	m.hostile = time.Now()
	half := o.n / 2
	counts := []int{half, o.n - half}
	for k, f := range flavours {
		if err := parallel(counts[k], func(i int) error {
			return hostileObject(o.kind, f, i, nil)(ctx, b, metav1.CreateOptions{})
		}); err != nil {
			return res, fmt.Errorf("creating the objects %s: %w", f.name, err)
		}
	}
	m.created = time.Now()
	res.CreateSeconds = m.created.Sub(m.hostile).Seconds()
	say("%d hostile %ss created in %.1f s; waiting for the replicator to settle", o.n, o.kind, res.CreateSeconds)
	b.record(name+": hostile objects created", res.CreateSeconds, "s", fmt.Sprintf("%d %ss, %v bytes of annotations", o.n, o.kind, res.AnnotationBytes))

	queue := o.kind + "s"
	settled, ok := settle(r, queue, m.hostile, o.after, o.most)
	res.SettleSeconds, res.Settled = settled.Seconds(), ok
	b.record(name+": settled after the creation began", res.SettleSeconds, "s", settledNote(ok, queue, o.most))
	res.PeakRSS = r.Memory("VmHWM")
	if mt, err := r.Metrics(); err == nil {
		res.Problems = mt.Sum("replicator_problems_total", "")[""]
	}
	b.record(name+": peak RSS", res.PeakRSS, "MiB", fmt.Sprintf("target <= %d", targetRSSMiB))
	b.record(name+": problems raised", res.Problems, "Events", "replicator_problems_total")
	res.Use = use(r)
	b.recordUse(name, res.Use)
	select {
	case <-r.Exited():
		res.Exited = fmt.Sprintf("before the restart: %v", r.ExitErr())
		say("the replicator exited: %v\n%s", r.ExitErr(), logs.String())
	default:
	}

	m.down = time.Now()
	r.Stop()
	res.LogBytes = logs.bytes()
	b.record(name+": log output", float64(res.LogBytes)/1024, "KiB", "")
	logs = &tailBuffer{max: 64 << 10}
	r, err = b.startLogged(logs, args)
	m.up = time.Now()
	res.RestartReadySeconds = m.up.Sub(m.down).Seconds()
	if err != nil {
		// Not ready within the minute testsupport.Start waits: a finding,
		// not a setup error.
		r = nil
		res.Exited += fmt.Sprintf(" restart: %v", err)
		say("restart: %v", err)
		b.record(name+": restart: ready", -1, "s", "not ready: "+shortErr(err))
	} else {
		b.record(name+": restart: ready after the stop", res.RestartReadySeconds, "s", "")
		settled, ok := settle(r, queue, m.up, o.after, o.most)
		res.RestartSettleSeconds, res.RestartSettled = settled.Seconds(), ok
		b.record(name+": restart: settled after ready", res.RestartSettleSeconds, "s", settledNote(ok, queue, o.most))
		res.RestartPeakRSS = r.Memory("VmHWM")
		res.RestartUse = use(r)
		b.recordUse(name+": restart", res.RestartUse)
		b.record(name+": restart: peak RSS", res.RestartPeakRSS, "MiB", fmt.Sprintf("target <= %d", targetRSSMiB))
		select {
		case <-r.Exited():
			res.Exited += fmt.Sprintf(" after the restart: %v", r.ExitErr())
		default:
		}
		r.Stop()
		r = nil
		res.RestartLogBytes = logs.bytes()
		b.record(name+": restart: log output", float64(res.RestartLogBytes)/1024, "KiB", "")
	}
	stopProbe()
	<-probing
	cpuAfter := sampleCPU(labPids())
	res.CPU = cpuAfter.since(cpuBefore)
	inLab := res.Use.CPUSeconds - replicatorBefore + res.RestartUse.CPUSeconds
	for _, s := range res.CPU.Seconds {
		inLab += s
	}
	res.OutsideLab = cpuAfter.machine - cpuBefore.machine - inLab
	var cpu []string
	for _, n := range slices.Sorted(maps.Keys(res.CPU.Seconds)) {
		cpu = append(cpu, fmt.Sprintf("%s %.0f", n, res.CPU.Seconds[n]))
	}
	b.record(name+": the machine", 100*res.CPU.Busy, "% busy", fmt.Sprintf("CPU s: %s, replicator %.0f; outside the lab (other work on this machine) %.0f",
		strings.Join(cpu, ", "), res.Use.CPUSeconds-replicatorBefore+res.RestartUse.CPUSeconds, res.OutsideLab))

	var counted []probeSample
	byWindow := map[string][]probeSample{}
	for _, s := range p.all() {
		s.Window = m.window(s.start, s.end)
		res.Samples = append(res.Samples, s)
		byWindow[s.Window] = append(byWindow[s.Window], s)
		if s.Window != windowGap {
			counted = append(counted, s)
		}
	}
	for _, w := range windows {
		s := summarize(byWindow[w])
		res.Windows[w] = s
		var upd []float64
		for _, x := range byWindow[w] {
			upd = append(upd, x.Update)
		}
		note := fmt.Sprintf("p50 %.3f s, p99 %.3f s, %d probes, %d over 1 s, %d timed out", s.P50, s.P99, s.Count, s.Over, s.TimedOut)
		if len(upd) > 0 {
			note += fmt.Sprintf("; the source's update itself max %.3f s", slices.Max(upd))
		}
		if w == windowGap {
			note += " (the replicator stopped or starting: not counted)"
		}
		b.record(fmt.Sprintf("%s: legit pull, %s: max", name, w), s.Max, "s", note)
	}
	res.Latency = summarize(counted)
	res.LatencyOutsideCreation = summarize(slices.DeleteFunc(slices.Clone(counted), func(s probeSample) bool { return s.Window == windowCreating }))
	res.MaxPeakRSS = max(res.PeakRSS, res.RestartPeakRSS)
	b.record(name+": verdict: peak RSS", res.MaxPeakRSS, "MiB", fmt.Sprintf("target <= %d: %s", targetRSSMiB, met(res.MaxPeakRSS <= targetRSSMiB)))
	b.record(name+": verdict: legit pull max", res.Latency.Max, "s", fmt.Sprintf("target <= %.0f s: %s; p50 %.3f s, p99 %.3f s, %d of %d over 1 s; outside the creation %.2f s",
		targetLatency.Seconds(), met(res.Latency.Max <= targetLatency.Seconds()), res.Latency.P50, res.Latency.P99, res.Latency.Over, res.Latency.Count, res.LatencyOutsideCreation.Max))
	return res, nil
}

// processUse is what a replicator process used up to now: CPU time, its
// requests to the API server, and the time they waited for its client-side
// rate limit (--kube-api-qps, --kube-api-burst).
type processUse struct {
	CPUSeconds    float64 `json:"cpuSeconds"`
	Requests      float64 `json:"requests"`
	RateLimitWait float64 `json:"rateLimitWaitSeconds"`
}

func use(p *testsupport.Process) processUse {
	var u processUse
	u.CPUSeconds, _ = processCPU(p.Pid())
	if m, err := p.Metrics(); err == nil {
		u.Requests = m.Sum("rest_client_requests_total", "")[""]
		for _, s := range m.Families["rest_client_rate_limiter_duration_seconds"].GetMetric() {
			u.RateLimitWait += s.GetHistogram().GetSampleSum()
		}
	}
	return u
}

func (b *bench) recordUse(name string, u processUse) {
	b.record(name+": CPU", u.CPUSeconds, "s", "")
	b.record(name+": requests to the API server", u.Requests, "requests", fmt.Sprintf("%.1f s waited for the client-side rate limit in all", u.RateLimitWait))
}

func settledNote(ok bool, queue string, most time.Duration) string {
	if ok && queue == "secrets" {
		return "queue empty, no new retries, problems or write errors for 4 s"
	}
	if ok {
		return "queue empty, no new adds, retries, problems or write errors for 4 s"
	}
	return fmt.Sprintf("NOT settled within %s (or the process exited)", most)
}

func shortErr(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
