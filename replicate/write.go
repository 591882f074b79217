package replicate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// This file is the one way anything is written, in steps: admit (dry run,
// the write guard, at the end of this file), request (with the push expectations), classify the API
// server's answer, report it (metrics, logs, Events; for a failure, an
// Event, a quiet retry or a backoff).

// errRetry marks errors that are retried without an error log.
var errRetry = errors.New("retry")

// requeue asks for the key to be reconciled again after a pause: nothing
// failed, it is too early (a write held back, push writes not yet in the
// cache).
type requeue struct {
	after time.Duration
	why   string
}

func (r *requeue) Error() string { return r.why + ", again in " + r.after.String() }

// requeueAfter returns the shortest pause asked for in err (which may join
// several), and whether err asks for nothing else.
func requeueAfter(err error) (time.Duration, bool) {
	if r, ok := err.(*requeue); ok {
		return r.after, true
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return 0, false
	}
	var shortest time.Duration
	for _, e := range joined.Unwrap() {
		d, only := requeueAfter(e)
		if !only {
			return 0, false
		}
		if shortest == 0 || d < shortest {
			shortest = d
		}
	}
	return shortest, shortest > 0
}

// dryRunLog remembers the writes a dry run reported: nothing is written, so
// every reconcile plans them again, and each is reported once until what it
// would write changes.
type dryRunLog struct {
	mu   sync.Mutex
	seen map[string]string // action and target -> content digest
}

// first reports whether key is new, or would now write other content.
func (d *dryRunLog) first(key, digest string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[key] == digest {
		return false
	}
	d.seen[key] = digest
	return true
}

// writeOp is one write a plan asked for.
type writeOp struct {
	// mode is what the write is for, for metrics and logs.
	mode   Mode
	change Change
	// current is the cached object the change was computed from; nil for
	// Create.
	current any
	// owner is the key of the object the write is done for (the pull
	// target, the push source): requeued when the write is held back, and
	// named in failures. report is that object as cached, if it exists:
	// it receives the Events.
	owner  string
	report any
	// fields describe the write in the log; reason says why it is needed
	// (for a dry run).
	fields logrus.Fields
	reason string
}

// writeOutcome is what became of a writeOp.
type writeOutcome struct {
	// result is written, unchanged (a replica to delete was gone
	// already), dry_run, held (the object keeps being changed back) or
	// failed.
	result Result
	// err is nil when written or when retrying cannot help; a requeue when
	// held; otherwise worth a retry with backoff (errRetry-wrapped:
	// quietly).
	err error
}

// write carries out op, in steps: admit (a dry run reports the write
// instead; the write guard may hold it back), request (the change sent,
// with the push expectations around it), classify (what the API server's
// answer means), report (metrics, log, Events, the write guard's count,
// and what the queue is to do).
func (c *Controller) write(ctx context.Context, op writeOp) writeOutcome {
	digest := contentDigest(&op.change.Object)
	switch admission, pause := c.admit(op, digest); admission {
	case dryRunFirst:
		c.reportDryRun(op)
		return writeOutcome{result: ResultDryRun}
	case dryRunAgain:
		// Reported already; the cache will not change for it.
		return writeOutcome{result: ResultDryRun}
	case heldBack:
		// Written several times in a row: someone else keeps changing it.
		// Try again later instead of fighting.
		c.log.WithFields(op.fields).WithField("wait", pause.String()).Debug("write held back, the object keeps changing")
		return writeOutcome{result: ResultHeld, err: &requeue{after: pause, why: "write held back"}}
	}
	err := c.request(ctx, op)
	return c.report(op, digest, classify(err), err)
}

// admission is what the write path decides before a request.
type admission int

const (
	// admitted: the write is sent.
	admitted admission = iota
	// dryRunFirst: a dry run reports the write instead of sending it, the
	// first time it is planned with this content; dryRunAgain: it was
	// reported already.
	dryRunFirst
	dryRunAgain
	// heldBack: the write guard holds the write back for a pause: another
	// writer keeps undoing it.
	heldBack
)

// admit decides whether op, whose content has digest, is sent now.
func (c *Controller) admit(op writeOp, digest string) (admission, time.Duration) {
	target := op.change.Object.Key()
	if c.opts.DryRun {
		if c.dryRun.first(string(op.change.Action)+" "+target, digest) {
			return dryRunFirst, 0
		}
		return dryRunAgain, 0
	}
	if pause := c.guard.wait(target, digest, time.Now()); pause > 0 {
		return heldBack, pause
	}
	return admitted, 0
}

// request sends op's change. A push source waits for the cache to show its
// writes before it plans again (expectations): each write is expected
// before the request, since the informer may show its result before the
// request returns, and forgotten when it failed or changed nothing (no new
// version will show).
func (c *Controller) request(ctx context.Context, op writeOp) error {
	target := op.change.Object.Key()
	awaits := op.mode == ModePush
	// from is the version of the object the change replaces or deletes
	// (none for a create).
	var from string
	switch op.change.Action {
	case Update, Adopt:
		from = op.change.Object.ResourceVersion
	case Delete:
		from = op.change.Current.ResourceVersion
	}
	if awaits {
		c.expected.expect(op.owner, target, from, time.Now())
	}
	version, err := c.apply(ctx, op.change, op.current)
	if awaits && (err != nil || (from != "" && version == from)) {
		c.expected.forget(op.owner, target)
	}
	return err
}

// errGone: a delete found the object gone already; nothing was written.
var errGone = errors.New("already deleted")

// apply carries out one change. current is the cached object the change was
// computed from, if any. It returns the version the API server answered a
// create or update with.
func (c *Controller) apply(ctx context.Context, ch Change, current any) (string, error) {
	switch ch.Action {
	case Create:
		return c.kind.Create(ctx, c.client, &ch.Object)
	case Update, Adopt:
		if current == nil {
			// Gone from the cache since planning: plan again.
			return "", apierrors.NewNotFound(schema.GroupResource{Resource: strings.ToLower(c.name) + "s"}, ch.Object.Name)
		}
		return c.kind.Update(ctx, c.client, current, &ch.Object)
	case Delete, Recreate:
		uid := types.UID(ch.Current.UID)
		rv := ch.Current.ResourceVersion
		err := c.kind.Delete(ctx, c.client, ch.Current.Namespace, ch.Current.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", err
		}
		if ch.Action == Delete {
			if err != nil {
				return "", errGone
			}
			return "", nil
		}
		ch.Object.UID, ch.Object.ResourceVersion = "", ""
		return c.kind.Create(ctx, c.client, &ch.Object)
	}
	return "", fmt.Errorf("unknown action %q", ch.Action)
}

// writeClass is what the API server's answer to a write means to the write
// path. A failure's class is its label in replicator_write_errors_total.
type writeClass string

const (
	classWritten writeClass = "written"
	// classGone: a delete found the object gone already; nothing was
	// written.
	classGone writeClass = "gone"
	// classNamespaceGone: the namespace went away between the cache and
	// the write; there is nothing to retry.
	classNamespaceGone writeClass = "namespace_gone"
	// classConflict: the cache is behind the server; retried quietly once
	// it has caught up.
	classConflict writeClass = "conflict"
	// classInvalid: the same write would fail again; it is retried when
	// the objects change.
	classInvalid writeClass = "invalid"
	// classForbidden: most often RBAC's escalation check (a Role or
	// RoleBinding grants what the replicator does not hold). Permissions
	// can be granted later, so it is retried with backoff.
	classForbidden writeClass = "forbidden"
	classOther     writeClass = "other"
)

// classify tells what err, the answer to a write, means.
func classify(err error) writeClass {
	switch {
	case err == nil:
		return classWritten
	case errors.Is(err, errGone):
		return classGone
	case isNamespaceGone(err):
		return classNamespaceGone
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsNotFound(err):
		return classConflict
	case apierrors.IsInvalid(err), apierrors.IsRequestEntityTooLargeError(err), apierrors.IsBadRequest(err):
		return classInvalid
	case apierrors.IsForbidden(err):
		return classForbidden
	}
	return classOther
}

// retry is what a failed write of class c (what, err) asks of the queue:
// nothing (nil) when retrying cannot help, errRetry-wrapped errors for
// expected races, and the error itself for failures worth a backoff.
func (c writeClass) retry(what string, err error) error {
	switch c {
	case classNamespaceGone, classInvalid:
		return nil
	case classConflict:
		return fmt.Errorf("%s: %w: %v", what, errRetry, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// report tells what became of op, sent to the API server, whose answer is
// of class (err), and returns what the write came to and what the queue is
// to do. A write made is counted, logged and shown to the write guard,
// which may name a fight. A delete is the replicator's own decision (the
// source stopped pushing there), not an answer to another writer: it is
// not shown to the guard, and a later create of the same content starts
// afresh. A write is shown once the API server has made it: one refused (a
// conflict while the cache lags) answered no other writer. A failure is
// counted and, but for a conflict, told on the object the write was for.
func (c *Controller) report(op writeOp, digest string, class writeClass, err error) writeOutcome {
	switch class {
	case classGone:
		c.log.WithFields(op.fields).Debug("push replica already deleted")
		return writeOutcome{result: ResultUnchanged}
	case classWritten:
		target := op.change.Object.Key()
		c.opts.Metrics.writes.WithLabelValues(c.name, string(op.mode), string(op.change.Action)).Inc()
		c.work.Add(1)
		if op.change.Action == Delete {
			c.guard.forget(target)
		} else if c.guard.wrote(target, digest, time.Now()) {
			c.fighting(op)
		}
		if op.mode == ModePull {
			c.log.WithFields(op.fields).Info("pull target written")
		} else {
			c.log.WithFields(op.fields).Info("push replica written")
		}
		return writeOutcome{result: ResultWritten}
	}
	what := string(op.change.Action)
	if op.mode == ModePush {
		what += " in " + op.change.Object.Namespace
	}
	c.opts.Metrics.writeErrors.WithLabelValues(c.name, string(class)).Inc()
	c.reportFailure(op, what, class, err)
	return writeOutcome{result: ResultFailed, err: class.retry(what, err)}
}

// reportFailure logs a failed write (what, of class, err) and raises the
// Event that tells its owner, if the class has one: a conflict is only a
// race with the cache.
func (c *Controller) reportFailure(op writeOp, what string, class writeClass, err error) {
	log := c.log.WithFields(logrus.Fields{"object": op.owner, "write": what})
	switch class {
	case classNamespaceGone:
		log.Warn("write skipped, namespace terminating or gone")
		c.recordEvent(op.report, Warning, ReasonNamespaceGone, what+" skipped: the namespace is terminating or gone")
	case classInvalid:
		log.WithError(err).Warn("write rejected")
		c.recordEvent(op.report, Warning, ReasonWriteFailed, fmt.Sprintf("%s rejected: %s", what, apierrors.ReasonForError(err)))
	case classForbidden:
		c.recordEvent(op.report, Warning, ReasonWriteFailed, fmt.Sprintf("%s forbidden: the replicator lacks the permission (to replicate a Role or RoleBinding it must hold what it grants, or escalate and bind); retrying", what))
	case classOther:
		c.recordEvent(op.report, Warning, ReasonWriteFailed, fmt.Sprintf("%s failed: %s, retrying", what, apierrors.ReasonForError(err)))
	}
}

// reportDryRun counts, logs and shows explain a write a dry run does not
// make.
func (c *Controller) reportDryRun(op writeOp) {
	c.opts.Metrics.dryRunWrites.WithLabelValues(c.name, string(op.mode), string(op.change.Action)).Inc()
	if c.opts.Observe != nil {
		c.opts.Observe(Observation{Kind: c.name, Mode: op.mode, Action: op.change.Action,
			Namespace: op.change.Object.Namespace, Name: op.change.Object.Name, Reason: op.reason})
	}
	c.log.WithFields(op.fields).WithFields(logrus.Fields{
		"kind": c.name, "namespace": op.change.Object.Namespace, "name": op.change.Object.Name,
		"action": op.change.Action, "reason": op.reason,
	}).Info("dry run: would write")
}

// isNamespaceGone reports whether a create failed because its namespace is
// terminating or does not exist.
func isNamespaceGone(err error) bool {
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		d := status.Status().Details
		return apierrors.IsNotFound(err) && d != nil && d.Kind == "namespaces"
	}
	return false
}

// event records an Event on obj and logs warnings with the object's fields.
func (c *Controller) event(obj any, o *Object, e *Event) {
	if len(e.Message) > maxEventMessage {
		// Messages quote annotations, which anyone can make long: the
		// recorder, its correlator and the log hold each one.
		short := *e
		short.Message = strings.ToValidUTF8(e.Message[:maxEventMessage], "") + "..."
		e = &short
	}
	if e.Type == Warning {
		c.opts.Metrics.problems.WithLabelValues(c.name, e.Reason).Inc()
	}
	if e.Type == Warning && o != nil {
		c.log.WithFields(logrus.Fields{"namespace": o.Namespace, "name": o.Name, "reason": e.Reason, "detail": e.Message}).Warn("replication refused")
	}
	if obj != nil {
		c.recordEvent(obj, e.Type, e.Reason, e.Message)
	}
}

// maxEventMessage is the longest Event message recorded and logged, in
// bytes.
const maxEventMessage = 2048

func (c *Controller) recordEvent(obj any, typ EventType, reason, message string) {
	ro, ok := obj.(runtime.Object)
	if !ok {
		return
	}
	if c.opts.DryRun {
		// Events are writes too: each is logged once until its message
		// changes.
		if m, ok := obj.(metav1.Object); ok && c.dryRun.first("event "+m.GetNamespace()+"/"+m.GetName()+" "+reason, message) {
			if c.opts.Observe != nil {
				c.opts.Observe(Observation{Kind: c.name, Namespace: m.GetNamespace(), Name: m.GetName(), EventType: typ, Reason: reason, Message: message})
			}
			c.log.WithFields(logrus.Fields{"namespace": m.GetNamespace(), "name": m.GetName(), "type": typ, "reason": reason, "message": message}).Info("dry run: would record event")
		}
		return
	}
	if typ == Normal && c.opts.NormalEvents != nil && !c.opts.NormalEvents.Allow() {
		c.opts.Metrics.eventsSkipped.WithLabelValues(c.name, reason).Inc()
		return
	}
	c.opts.Recorder.Event(ro, string(typ), reason, message)
}

// GitOpsDocs is where the FightingWriter Event sends the reader.
const GitOpsDocs = "https://github.com/kubereplicator/replicator/blob/main/docs/gitops.md"

// fighting names, once per fight spell, the writer that keeps undoing op's
// write: a Warning Event on the object written (for a replica that keeps
// being deleted, on its source), the log and a metric. The other writers
// are those of the object the write replaced, as the cache holds them
// (keptWriters): read before this write, since once it takes the fields
// back, a writer that owned nothing else drops out of managedFields.
func (c *Controller) fighting(op writeOp) {
	c.opts.Metrics.fights.WithLabelValues(c.name, string(op.mode)).Inc()
	var msg string
	target := op.change.Object.Key()
	on := op.current
	if op.change.Action != Create && op.current != nil {
		var writers []metav1.ManagedFieldsEntry
		if m, ok := op.current.(metav1.Object); ok {
			writers = m.GetManagedFields()
		}
		others := otherWriters(writers)
		msg = fmt.Sprintf("another writer keeps changing %s back, and the replicator restores it each time; field managers of the object, latest first: %s", target, strings.Join(others, ", "))
		if len(others) == 0 {
			msg = fmt.Sprintf("another writer keeps changing %s back, and the replicator restores it each time", target)
		}
	} else {
		on = op.report
		msg = fmt.Sprintf("another writer keeps deleting %s, and the replicator creates it again each time", target)
	}
	msg += "; to keep both from fighting, see " + GitOpsDocs
	c.log.WithFields(op.fields).WithField("detail", msg).Warn("fighting another writer")
	c.opts.Metrics.problems.WithLabelValues(c.name, ReasonFightingWriter).Inc()
	c.recordEvent(on, Warning, ReasonFightingWriter, msg)
}

// otherWriters returns the field managers of an object other than the
// replicator, the one that wrote last first, each with its operation.
func otherWriters(fields []metav1.ManagedFieldsEntry) []string {
	fields = slices.Clone(fields)
	slices.SortStableFunc(fields, func(a, b metav1.ManagedFieldsEntry) int {
		return timeOf(b).Compare(timeOf(a))
	})
	var out []string
	for _, f := range fields {
		if f.Manager == FieldManager {
			continue
		}
		name := fmt.Sprintf("%s (%s)", f.Manager, f.Operation)
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func timeOf(f metav1.ManagedFieldsEntry) time.Time {
	if f.Time == nil {
		return time.Time{}
	}
	return f.Time.Time
}

// maxKeptWriters bounds the field managers the cache keeps of an object:
// whoever can write a namespace can add managers to an object there.
const maxKeptWriters = 5

// keptWriters is what the cache keeps of obj's managedFields: of a pull
// target or a push replica, objects the replicator writes, the other
// field managers, the latest first, at most maxKeptWriters, each with its
// operation and time only (which fields it owns is the bulk, and never
// read); nothing of any other object. The Event that names a fight reads
// them (fighting).
func keptWriters(obj any, a Annotations) []metav1.ManagedFieldsEntry {
	m, ok := obj.(metav1.Object)
	if _, ns := obj.(*corev1.Namespace); !ok || ns {
		return nil
	}
	ann := m.GetAnnotations()
	_, _, pull := a.pullReference(ann)
	_, replica := ann[a.ReplicatedFrom]
	if !pull && !replica {
		return nil
	}
	var kept []metav1.ManagedFieldsEntry
	for _, f := range m.GetManagedFields() {
		if f.Manager != FieldManager {
			kept = append(kept, metav1.ManagedFieldsEntry{Manager: intern(f.Manager), Operation: f.Operation, Time: f.Time})
		}
	}
	slices.SortStableFunc(kept, func(a, b metav1.ManagedFieldsEntry) int { return timeOf(b).Compare(timeOf(a)) })
	return slices.Clip(kept[:min(len(kept), maxKeptWriters)])
}

// The write guard, which admit asks: against another writer undoing ours.

// writeGuard keeps the replicator from fighting another writer in a hot
// loop, while answering every writer that undoes its work at a human or
// GitOps pace. It counts, per object, the writes of the same content (the
// same digest) in a row: each one after the first answers someone who
// changed the object back.
//
//   - A revert seen a second or more after our write (a person, a GitOps
//     controller re-applying a manifest every few seconds) is answered at
//     once, within a budget: a bucket of guardBurst writes that refills one
//     write every guardRefill, so a writer slower than that is answered
//     every time and a faster one at most at that rate.
//   - A revert seen sooner than guardHot after our write is a hot loop:
//     guardFreeHot of those in a row are answered at once, then each waits,
//     guardHotBase at first and twice as long each time after, up to
//     guardHotMax.
//
// New content (the source changed) or a quiet spell (guardQuiet without a
// write, besides any pause owed) starts afresh. The guardSpell-th write of
// the same content in a row opens a fight spell: the caller names the other
// writer in an Event, once per spell. Other objects are never delayed.
type writeGuard struct {
	mu      sync.Mutex
	entries map[string]*guardEntry
	writes  int
}

type guardEntry struct {
	digest string
	// last is the time of our last write; wanted, when not zero, the time
	// a write was first wanted and held back since then (when the revert
	// was seen).
	last, wanted time.Time
	// writes counts the writes of this content in a row; hot the hot
	// reverts among the last ones in a row.
	writes, hot int
	// tokens is the bucket's level after the last write.
	tokens float64
}

const (
	guardHot     = time.Second
	guardFreeHot = 3
	guardHotBase = 5 * time.Second
	guardHotMax  = 5 * time.Minute
	guardBurst   = 5
	guardRefill  = 2 * time.Second
	guardSpell   = 3
	guardQuiet   = 2 * time.Minute
)

func newWriteGuard() *writeGuard { return &writeGuard{entries: map[string]*guardEntry{}} }

// hotPause is the pause owed before a write that answers a hot revert.
func (e *guardEntry) hotPause() time.Duration {
	if e.hot < guardFreeHot {
		return 0
	}
	d := guardHotBase
	for i := guardFreeHot; i < e.hot && d < guardHotMax; i++ {
		d *= 2
	}
	return min(d, guardHotMax)
}

// stale reports whether a write at now would start afresh: the object has
// been left alone for a quiet spell longer than any pause it owes.
func (e *guardEntry) stale(now time.Time) bool {
	return now.Sub(e.last) > guardQuiet+e.hotPause()
}

// level is the bucket's level at now.
func (e *guardEntry) level(now time.Time) float64 {
	return min(guardBurst, e.tokens+float64(now.Sub(e.last))/float64(guardRefill))
}

// hotRevert reports whether a write at now answers a revert seen sooner
// than guardHot after our last write.
func (e *guardEntry) hotRevert(now time.Time) bool {
	seen := now
	if !e.wanted.IsZero() {
		seen = e.wanted
	}
	return seen.Sub(e.last) < guardHot
}

// wait returns how long to wait before writing the object at key with
// content digest; 0: now.
func (g *writeGuard) wait(key, digest string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[key]
	if e == nil || e.digest != digest {
		return 0
	}
	if e.stale(now) {
		delete(g.entries, key)
		return 0
	}
	var pause time.Duration
	if level := e.level(now); level < 1 {
		pause = time.Duration((1 - level) * float64(guardRefill))
	}
	if e.hotRevert(now) {
		pause = max(pause, e.last.Add(e.hotPause()).Sub(now))
	}
	if pause > 0 && e.wanted.IsZero() {
		e.wanted = now
	}
	return max(0, pause)
}

// wrote records a write of the object at key with content digest, made by
// the API server, and reports whether it opens a fight spell.
func (g *writeGuard) wrote(key, digest string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[key]
	if e == nil || e.digest != digest || e.stale(now) {
		e = &guardEntry{digest: digest, tokens: guardBurst, last: now}
		g.entries[key] = e
	} else {
		if e.hotRevert(now) {
			e.hot++
		} else {
			e.hot = 0
		}
		e.tokens = e.level(now)
	}
	e.tokens = max(0, e.tokens-1)
	e.writes++
	e.last, e.wanted = now, time.Time{}
	// Now and then, forget the objects a write would start afresh anyway,
	// so that the map holds only objects written in the last few minutes,
	// and those being fought over.
	if g.writes++; g.writes%256 == 0 {
		g.pruneLocked(now)
	}
	return e.writes == guardSpell
}

// forget drops what the guard knows of the object at key.
func (g *writeGuard) forget(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.entries, key)
}

// prune forgets the objects a write at now would start afresh anyway: after
// a fan-out to every namespace, the guard does not keep an entry for each
// one while nothing is written.
func (g *writeGuard) prune(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pruneLocked(now)
}

func (g *writeGuard) pruneLocked(now time.Time) {
	for k, e := range g.entries {
		if e.stale(now) {
			delete(g.entries, k)
		}
	}
}

// contentDigest identifies what a write makes of an object: its type, data
// and labels.
func contentDigest(o *Object) string {
	fields := [][]byte{[]byte(o.Type)}
	for _, k := range slices.Sorted(maps.Keys(o.Data)) {
		v := o.Data[k]
		// The content's digest: the same whether the object holds the
		// content or, as the cache does for targets, only its digest.
		fields = append(fields, []byte(k), v.sum())
		if v.Binary {
			fields = append(fields, []byte{1})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
		fields = append(fields, []byte(k), []byte(o.Labels[k]))
	}
	h := sha256.New()
	for _, b := range fields {
		// Each field is written with its length, so that no two different
		// objects run together into the same bytes.
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	return string(h.Sum(nil))
}
