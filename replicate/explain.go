package replicate

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// This file answers "what does the replicator think of this object?" after
// the fact: it loads the caches the controller would have, runs the same
// code on the object in dry run, and says what it would write and why.

// Observation is a write or an Event a dry run reports: a write has an
// Action, an Event a Type.
type Observation struct {
	Kind      string    `json:"kind"`
	Mode      Mode      `json:"mode,omitempty"`
	Action    Action    `json:"action,omitempty"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Reason    string    `json:"reason"`
	EventType EventType `json:"type,omitempty"`
	Message   string    `json:"message,omitempty"`
}

// Explanation is what the replicator makes of one object.
type Explanation struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Settings says where the replicator's settings came from; Warnings
	// what may make the answer differ from the installed replicator's.
	Settings string   `json:"settings,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Pull is set for a pull target, Push for a push source (or an object
	// that still owns replicas), Replica for a push replica.
	Pull    *PullExplanation    `json:"pull,omitempty"`
	Push    *PushExplanation    `json:"push,omitempty"`
	Replica *ReplicaExplanation `json:"replica,omitempty"`
	// PulledBy are the pull targets naming this object, and whether each
	// may have it.
	PulledBy []Puller `json:"pulledBy,omitempty"`
	// Writes and Events are what the controller would do now: nothing
	// when the object is as it should be.
	Writes []Observation `json:"writes"`
	Events []Observation `json:"events"`
	Notes  []string      `json:"notes,omitempty"`
}

// PullExplanation is a pull target's view of its source.
type PullExplanation struct {
	Annotation string `json:"annotation"`
	Reference  string `json:"reference"`
	// Source is the source it resolves to; Found whether it exists.
	Source string `json:"source"`
	// Cluster names the other cluster the source is in, if any.
	Cluster       string  `json:"cluster,omitempty"`
	Found         bool    `json:"found"`
	SourceType    string  `json:"sourceType,omitempty"`
	SourceVersion string  `json:"sourceVersion,omitempty"`
	Checks        []Check `json:"checks"`
	// Reported is the replicator's latest Event on the target, read for a
	// source in another cluster, which explain does not read itself: it
	// says whether the replicator can read that cluster.
	Reported *Reported `json:"reported,omitempty"`
	// The bookkeeping of the last data change written.
	ReplicatedAt      string `json:"replicatedAt,omitempty"`
	ReplicatedVersion string `json:"replicatedVersion,omitempty"`
	ReplicatedKeys    string `json:"replicatedKeys,omitempty"`
}

// PushExplanation is a push source's targets.
type PushExplanation struct {
	Policy Check `json:"policy"`
	// Read are the push annotations read, in every dialect, as written.
	Read    []Written    `json:"read,omitempty"`
	Targets []PushTarget `json:"targets"`
	// Problems are the warnings its annotations and the policy raise.
	Problems []string `json:"problems,omitempty"`
}

// PushTarget is one namespace a source pushes into, and its state: an
// Action to take, "up to date", "conflict" (an object it does not own),
// "refused" (the push policy) or "excluded" (--exclude-namespaces).
type PushTarget struct {
	Namespace string `json:"namespace"`
	State     string `json:"state"`
	// Checked are the lists and selectors that selected the namespace,
	// with the entry that matched, then those of the operator's policy or
	// exclusion that closed it, if any.
	Checked []Lookup `json:"checked,omitempty"`
}

// ReplicaExplanation names the source of a push replica.
type ReplicaExplanation struct {
	Source string `json:"source"`
	// Targeted reports whether the source still pushes into this
	// namespace.
	Targeted bool   `json:"targeted"`
	State    string `json:"state"`
}

// Puller is a pull target naming an object.
type Puller struct {
	Target  string `json:"target"`
	Allowed bool   `json:"allowed"`
	Detail  string `json:"detail,omitempty"`
}

// ExplainError is a failure explain reports in one line.
type ExplainError struct{ Msg string }

func (e *ExplainError) Error() string { return e.Msg }

// Explain loads what the controller of kind would cache from client (as
// the caller: every object of the kind and every namespace), then explains
// the object namespace/name with opts (the replicator's settings). It
// writes nothing.
func Explain(ctx context.Context, client kubernetes.Interface, kind Kind, namespace, name string, opts Options, timeout time.Duration) (*Explanation, error) {
	ex := &Explanation{Kind: kind.Name(), Namespace: namespace, Name: name, Writes: []Observation{}, Events: []Observation{}}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(CacheTransform(opts.Annotations, opts.AllowAll)))
	c, err := NewController(kind, client, factory, ex.dryRun(opts))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	failed := c.watchErrors()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer cancel()
	if err := c.waitForCaches(ctx, failed, timeout); err != nil {
		return nil, err
	}
	key := namespace + "/" + name
	_, view := c.get(key)
	if view == nil {
		return nil, &ExplainError{Msg: fmt.Sprintf("%s %s not found", strings.ToLower(kind.Name()), key)}
	}
	c.explainParts(ex, key, view)
	c.explainWrites(ctx, ex, key)
	if ex.Pull != nil && ex.Pull.Cluster != "" {
		reported, err := latestReport(ctx, client, kind, namespace, name)
		if err != nil {
			ex.Notes = append(ex.Notes, "cannot read the replicator's Events on it: "+err.Error())
		}
		ex.Pull.Reported = reported
	}
	return ex, nil
}

// Reported is an Event the replicator made.
type Reported struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Last is when it was last made (RFC 3339), Count how many times.
	Last  string `json:"last"`
	Count int32  `json:"count"`
}

// latestReport is the newest Event the replicator made on the object, nil
// if none.
func latestReport(ctx context.Context, client kubernetes.Interface, kind Kind, namespace, name string) (*Reported, error) {
	events, err := client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": name, "involvedObject.kind": kind.Name(), "source": EventComponent}.String(),
	})
	if err != nil {
		return nil, err
	}
	var latest *corev1.Event
	for i := range events.Items {
		ev := &events.Items[i]
		if latest == nil || eventTime(ev).After(eventTime(latest)) {
			latest = ev
		}
	}
	if latest == nil {
		return nil, nil
	}
	return &Reported{Type: latest.Type, Reason: latest.Reason, Message: latest.Message,
		Last: eventTime(latest).UTC().Format(time.RFC3339), Count: max(latest.Count, 1)}, nil
}

// eventTime is when ev was last made, whichever API made it.
func eventTime(ev *corev1.Event) time.Time {
	for _, t := range []time.Time{ev.LastTimestamp.Time, ev.EventTime.Time, ev.FirstTimestamp.Time, ev.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// dryRun returns opts for a controller that writes nothing, logs nothing
// and counts nowhere, and tells ex each write and Event it would make.
func (ex *Explanation) dryRun(opts Options) Options {
	var mu sync.Mutex
	opts.DryRun = true
	opts.Observe = func(o Observation) {
		mu.Lock()
		defer mu.Unlock()
		if o.EventType != "" {
			ex.Events = append(ex.Events, o)
		} else {
			ex.Writes = append(ex.Writes, o)
		}
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	opts.Log = quiet
	opts.Metrics = NewMetrics(prometheus.NewRegistry())
	opts.Remotes = nil
	return opts
}

// watchErrors returns where the first failure to list or watch the
// controller's informers arrives, said for the caller.
func (c *Controller) watchErrors() <-chan error {
	failed := make(chan error, 2)
	for what, inf := range map[string]cache.SharedIndexInformer{strings.ToLower(c.name) + "s": c.objects, "namespaces": c.namespaces} {
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			select {
			case failed <- &ExplainError{Msg: fmt.Sprintf("cannot list %s cluster-wide (explain reads as the kubeconfig's user, and needs list and watch on %s and namespaces): %v", what, strings.ToLower(c.name)+"s", err)}:
			default:
			}
		})
	}
	return failed
}

// waitForCaches waits until the caches are loaded, a list or watch failed,
// or ctx ends (timeout: how long it had).
func (c *Controller) waitForCaches(ctx context.Context, failed <-chan error, timeout time.Duration) error {
	synced := make(chan bool, 1)
	go func() { synced <- cache.WaitForCacheSync(ctx.Done(), c.objects.HasSynced, c.namespaces.HasSynced) }()
	select {
	case err := <-failed:
		return err
	case ok := <-synced:
		if !ok {
			return &ExplainError{Msg: fmt.Sprintf("the cluster could not be read within %s", timeout)}
		}
	}
	return nil
}

// explainParts explains what the object at key (view) is to the
// replicator: a pull target, a push source, a push replica, a source pull
// targets name.
func (c *Controller) explainParts(ex *Explanation, key string, view *Object) {
	a := c.opts.Annotations
	if !a.Relevant(view.Annotations) {
		ex.Notes = append(ex.Notes, "the object carries none of the annotations the replicator acts on (prefix "+strings.TrimSuffix(a.ReplicateFrom, "replicate-from")+")")
	}
	if _, _, ok := a.pullReference(view.Annotations); ok {
		ex.Pull = c.explainPull(view)
	}
	owned, _ := c.objects.GetIndexer().ByIndex(indexPushMarker, key)
	if len(owned) > 0 || a.IsPushSource(view.Annotations) {
		ex.Push = c.explainPush(key, view, owned)
	}
	if marker := view.Annotations[a.ReplicatedFrom]; marker != "" {
		ex.Replica = c.explainReplica(marker, view)
	}
	ex.PulledBy = c.explainPullers(key, view)
}

// explainWrites is what the controller would do now: the same reconcile,
// in dry run. A replica is written by its source's reconcile.
func (c *Controller) explainWrites(ctx context.Context, ex *Explanation, key string) {
	keys := []string{key}
	if ex.Replica != nil {
		keys = append(keys, ex.Replica.Source)
	}
	if ex.Pull != nil && ex.Pull.Cluster != "" {
		ex.Notes = append(ex.Notes, "the source is in another cluster, which explain does not read: what the replicator would write is not shown")
		keys = keys[1:]
	}
	for _, k := range keys {
		if err := c.reconcile(ctx, k); err != nil {
			if _, only := requeueAfter(err); !only {
				ex.Notes = append(ex.Notes, "reconciling "+k+": "+err.Error())
			}
		}
	}
	if ex.Replica != nil {
		ex.Writes = slices.DeleteFunc(ex.Writes, func(o Observation) bool { return o.Namespace != ex.Namespace || o.Name != ex.Name })
	}
}

// explainPull is PlanPull's plan for a pull target, with the checks it
// made, on the input the controller gathers. A source in another cluster is
// not read: explain plans as if that cluster could not be read.
func (c *Controller) explainPull(target *Object) *PullExplanation {
	a := c.opts.Annotations
	in := c.pullInput(target)
	if in.RefErr == nil && in.Ref.Cluster != "" {
		in.Source, in.SourceErr = nil, &UnavailableError{Cluster: in.Ref.Cluster, Namespace: in.Ref.Namespace, Reason: "explain reads this cluster only"}
	}
	plan := PlanPull(in)
	value, _, _ := a.pullReference(target.Annotations)
	p := &PullExplanation{
		Annotation: in.RefKey, Reference: value, Checks: plan.Checks,
		ReplicatedAt: target.Annotations[a.ReplicatedAt], ReplicatedVersion: target.Annotations[a.ReplicatedFromVersion], ReplicatedKeys: target.Annotations[a.ReplicatedKeys],
	}
	if in.RefErr == nil {
		p.Source, p.Cluster = in.Ref.String(), in.Ref.Cluster
	}
	if s := plan.Source; s != nil {
		p.Found, p.SourceType, p.SourceVersion = true, s.Type, s.ResourceVersion
	}
	return p
}

// explainPush is PlanPush's view of a source's targets.
func (c *Controller) explainPush(key string, source *Object, owned []any) *PushExplanation {
	plan := c.planPush(key, source, owned, true)
	p := &PushExplanation{Targets: []PushTarget{}, Read: plan.Read}
	if plan.Policy != nil {
		p.Policy = *plan.Policy
	}
	state := map[string]string{}
	for _, ns := range plan.Targets {
		state[ns] = "up to date"
	}
	for _, ns := range plan.Excluded {
		state[ns] = "excluded"
	}
	for _, ns := range plan.Refused {
		state[ns] = "refused"
	}
	for _, ns := range plan.Conflicts {
		state[ns] = "conflict"
	}
	for _, ch := range plan.Changes {
		state[ch.Object.Namespace] = string(ch.Action)
	}
	for _, ns := range slices.Sorted(maps.Keys(state)) {
		p.Targets = append(p.Targets, PushTarget{Namespace: ns, State: state[ns], Checked: plan.Why[ns]})
	}
	for _, e := range plan.Problems {
		p.Problems = append(p.Problems, e.Reason+": "+e.Message)
	}
	return p
}

// explainReplica finds the source of a push replica and what it plans here.
func (c *Controller) explainReplica(marker string, replica *Object) *ReplicaExplanation {
	r := &ReplicaExplanation{Source: marker, State: "up to date"}
	_, source := c.get(marker)
	owned, _ := c.objects.GetIndexer().ByIndex(indexPushMarker, marker)
	if source == nil {
		r.State = "delete: the source is gone"
		return r
	}
	plan := c.planPush(marker, source, owned, false)
	r.Targeted = slices.Contains(plan.Targets, replica.Namespace)
	for _, ch := range plan.Changes {
		if ch.Object.Namespace == replica.Namespace && ch.Object.Name == replica.Name {
			r.State = string(ch.Action)
		}
	}
	return r
}

// explainPullers lists the pull targets naming the object at key.
func (c *Controller) explainPullers(key string, source *Object) []Puller {
	targets, _ := c.objects.GetIndexer().ByIndex(indexPullSource, key)
	var out []Puller
	for _, t := range targets {
		v := c.kind.View(t)
		if v == nil {
			continue
		}
		ns := Namespace{Name: v.Namespace}
		if n := c.namespace(v.Namespace); n != nil {
			ns.Labels = n.Labels
		}
		ok, why := c.gate.Allows(source, Ref{Namespace: source.Namespace, Name: source.Name}, ns)
		out = append(out, Puller{Target: v.Key(), Allowed: ok, Detail: why})
	}
	slices.SortFunc(out, func(a, b Puller) int { return strings.Compare(a.Target, b.Target) })
	return out
}

// Text renders the explanation for a person.
func (ex *Explanation) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s/%s\n", ex.Kind, ex.Namespace, ex.Name)
	if ex.Settings != "" {
		fmt.Fprintf(&b, "  settings: %s\n", ex.Settings)
	}
	for _, w := range ex.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	if p := ex.Pull; p != nil {
		p.text(&b)
	}
	if p := ex.Push; p != nil {
		p.text(&b)
	}
	if r := ex.Replica; r != nil {
		fmt.Fprintf(&b, "  push replica of %s (still a target: %t): %s\n", r.Source, r.Targeted, r.State)
	}
	for _, p := range ex.PulledBy {
		if p.Allowed {
			fmt.Fprintf(&b, "  pulled by %s: allowed\n", p.Target)
		} else {
			fmt.Fprintf(&b, "  pulled by %s: refused: %s\n", p.Target, p.Detail)
		}
	}
	for _, n := range ex.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	if len(ex.Writes) == 0 {
		fmt.Fprintf(&b, "  would write: nothing, the object is as it should be\n")
	}
	for _, w := range ex.Writes {
		fmt.Fprintf(&b, "  would write: %s %s %s/%s (%s)\n", w.Action, strings.ToLower(w.Kind), w.Namespace, w.Name, w.Reason)
	}
	for _, e := range ex.Events {
		fmt.Fprintf(&b, "  event on %s/%s: %s %s: %s\n", e.Namespace, e.Name, e.EventType, e.Reason, e.Message)
	}
	return b.String()
}

// text renders a check and the lists and selectors it read.
func (c Check) text(b *strings.Builder) {
	mark := "pass"
	if !c.Passed {
		mark = "FAIL"
	}
	fmt.Fprintf(b, "    %s  %s: %s\n", mark, c.What, c.Detail)
	for _, l := range c.Checked {
		what := l.Written.String()
		if l.Key == c.What {
			what = l.Written.value()
		}
		fmt.Fprintf(b, "          checked %s: %s\n", what, l.outcome())
	}
}

// text renders a pull target's source and checks.
func (p *PullExplanation) text(b *strings.Builder) {
	fmt.Fprintf(b, "  pull target: %s: %s\n", p.Annotation, p.Reference)
	if p.Found {
		fmt.Fprintf(b, "    source %s: type %s, resourceVersion %s\n", p.Source, p.SourceType, p.SourceVersion)
	}
	for _, c := range p.Checks {
		c.text(b)
	}
	if r := p.Reported; r != nil {
		fmt.Fprintf(b, "    the replicator last reported (%s, %d times): %s %s: %s\n", r.Last, r.Count, r.Type, r.Reason, r.Message)
	} else if p.Cluster != "" {
		fmt.Fprintf(b, "    the replicator last reported: no Event on it\n")
	}
	if p.ReplicatedAt != "" || p.ReplicatedKeys != "" {
		fmt.Fprintf(b, "    last data change written: %s, from source version %s, keys %s\n", orDash(p.ReplicatedAt), orDash(p.ReplicatedVersion), orDash(p.ReplicatedKeys))
	} else {
		fmt.Fprintf(b, "    last data change written: none\n")
	}
}

// text renders a push source's policy check, what it reads and its
// targets.
func (p *PushExplanation) text(b *strings.Builder) {
	fmt.Fprintf(b, "  push source\n")
	p.Policy.text(b)
	read := map[string]bool{}
	for _, w := range p.Read {
		fmt.Fprintf(b, "    reads %s\n", w)
		read[w.Key] = true
	}
	if len(p.Targets) == 0 {
		fmt.Fprintf(b, "    targets: none\n")
	}
	for _, t := range p.Targets {
		// The annotations were shown as read: here, the one that
		// selected the namespace, and the operator's lists with their
		// values.
		var why []string
		for _, l := range t.Checked {
			what := l.Written.String()
			if read[l.Key] {
				if !l.Matched {
					continue
				}
				what = l.Key
			}
			why = append(why, what+": "+l.outcome())
		}
		if len(why) > 0 {
			fmt.Fprintf(b, "    target %s: %s (%s)\n", t.Namespace, t.State, strings.Join(why, "; "))
		} else {
			fmt.Fprintf(b, "    target %s: %s\n", t.Namespace, t.State)
		}
	}
	for _, pr := range p.Problems {
		fmt.Fprintf(b, "    problem: %s\n", pr)
	}
}

// String is the list or selector as explain prints it: its key and its
// value, quoted.
func (w Written) String() string { return w.Key + " " + w.value() }

// value is the value quoted; a long one cut, with how many entries (or
// bytes, for a selector) it has.
func (w Written) value() string {
	if !w.Truncated {
		return strconv.Quote(w.Value)
	}
	if w.Selector {
		return fmt.Sprintf("%s (%d bytes)", strconv.Quote(w.Value+"…"), w.Bytes)
	}
	return fmt.Sprintf("%s (%d entries)", strconv.Quote(w.Value+"…"), w.Entries)
}

// outcome says what the lookup made of its name.
func (l Lookup) outcome() string {
	name := "`" + l.Name + "`"
	switch {
	case l.Every:
		return "every namespace"
	case l.Selector && l.Matched:
		return "selects " + name
	case l.Selector:
		return "does not select " + name
	case l.PlainOnly && l.Matched:
		return "names " + name + " plainly"
	case l.PlainOnly:
		return "no entry names " + name + " plainly (a pattern does not count)"
	case l.Matched:
		return "matched by entry `" + l.Entry + "`"
	}
	return "no entry matches " + name
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
