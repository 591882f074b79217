package replicate

import (
	"context"
	"errors"
	"fmt"
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

// This file is the one way anything is written: the write guard, the
// request, then metrics, log and, on failure, the classification that
// decides between an Event, a quiet retry and a backoff.

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

// write carries out op.
func (c *Controller) write(ctx context.Context, op writeOp) writeOutcome {
	target, digest := op.change.Object.Key(), contentDigest(&op.change.Object)
	log := c.log.WithFields(op.fields)
	if c.opts.DryRun {
		if !c.dryRun.first(string(op.change.Action)+" "+target, digest) {
			// Reported already; the cache will not change for it.
			return writeOutcome{result: ResultDryRun}
		}
		c.opts.Metrics.dryRunWrites.WithLabelValues(c.kind.Name(), string(op.mode), string(op.change.Action)).Inc()
		if c.opts.Observe != nil {
			c.opts.Observe(Observation{Kind: c.kind.Name(), Mode: op.mode, Action: op.change.Action,
				Namespace: op.change.Object.Namespace, Name: op.change.Object.Name, Reason: op.reason})
		}
		log.WithFields(logrus.Fields{
			"kind": c.kind.Name(), "namespace": op.change.Object.Namespace, "name": op.change.Object.Name,
			"action": op.change.Action, "reason": op.reason,
		}).Info("dry run: would write")
		return writeOutcome{result: ResultDryRun}
	}
	if pause := c.guard.wait(target, digest, time.Now()); pause > 0 {
		// Written several times in a row: someone else keeps changing it.
		// Try again later instead of fighting.
		log.WithField("wait", pause.String()).Debug("write held back, the object keeps changing")
		return writeOutcome{result: ResultHeld, err: &requeue{after: pause, why: "write held back"}}
	}
	// A delete is the replicator's own decision (the source stopped
	// pushing there), not an answer to another writer: it is not counted,
	// and a later create of the same content starts afresh. A write is
	// counted once the API server has made it: one refused (a conflict
	// while the cache lags) answered no other writer.
	deletes := op.change.Action == Delete
	spell := !deletes && c.guard.opens(target, digest, time.Now())
	var writers []metav1.ManagedFieldsEntry
	if spell && op.change.Action != Create && op.current != nil {
		// Who else wrote the object, read before this write: once it
		// takes the fields back, a writer that owned nothing else drops
		// out of managedFields.
		var err error
		if writers, err = c.kind.ManagedFields(ctx, c.client, op.change.Object.Namespace, op.change.Object.Name); err != nil {
			log.WithError(err).Debug("cannot read the managed fields of a fought-over object")
		}
	}
	// A push source waits for the cache to show its writes before it
	// plans again (expectations). Recorded before the request: the
	// informer may show the result before the request returns.
	awaits := op.mode == ModePush
	from := plannedFrom(op.change)
	if awaits {
		c.expected.expect(op.owner, target, from, time.Now())
	}
	version, err := c.apply(ctx, op.change, op.current)
	if awaits && (err != nil || (from != "" && version == from)) {
		// Failed, or nothing changed: no new version will show.
		c.expected.forget(op.owner, target)
	}
	if errors.Is(err, errGone) {
		log.Debug("push replica already deleted")
		return writeOutcome{result: ResultUnchanged}
	}
	if deletes && err == nil {
		c.guard.forget(target)
	}
	if err != nil {
		what := string(op.change.Action)
		if op.mode == ModePush {
			what += " in " + op.change.Object.Namespace
		}
		return writeOutcome{result: ResultFailed, err: c.writeFailed(op.report, op.owner, what, err)}
	}
	c.opts.Metrics.writes.WithLabelValues(c.kind.Name(), string(op.mode), string(op.change.Action)).Inc()
	c.work.Add(1)
	if !deletes && c.guard.wrote(target, digest, time.Now()) {
		c.fighting(op, writers)
	}
	if op.mode == ModePull {
		log.Info("pull target written")
	} else {
		log.Info("push replica written")
	}
	return writeOutcome{result: ResultWritten}
}

// errGone: a delete found the object gone already; nothing was written.
var errGone = errors.New("already deleted")

// plannedFrom is the version of the object a change replaces or deletes
// (empty for a create).
func plannedFrom(ch Change) string {
	switch ch.Action {
	case Update, Adopt:
		return ch.Object.ResourceVersion
	case Delete:
		return ch.Current.ResourceVersion
	}
	return ""
}

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
			return "", apierrors.NewNotFound(schema.GroupResource{Resource: strings.ToLower(c.kind.Name()) + "s"}, ch.Object.Name)
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

// writeFailed classifies a failed write for the object at key (obj, if it
// still exists, receives the Event). It returns nil when retrying cannot help,
// errRetry-wrapped errors for expected races, and the error itself for
// failures worth a backoff.
func (c *Controller) writeFailed(obj any, key, what string, err error) error {
	log := c.log.WithFields(logrus.Fields{"object": key, "write": what})
	switch {
	case isNamespaceGone(err):
		// The namespace went away between the cache and the write; there is
		// nothing to retry.
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "namespace_gone").Inc()
		log.Warn("write skipped, namespace terminating or gone")
		c.recordEvent(obj, Warning, ReasonNamespaceGone, what+" skipped: the namespace is terminating or gone")
		return nil
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsNotFound(err):
		// The cache is behind the server: retry once it has caught up.
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "conflict").Inc()
		return fmt.Errorf("%s: %w: %v", what, errRetry, err)
	case apierrors.IsInvalid(err), apierrors.IsRequestEntityTooLargeError(err), apierrors.IsBadRequest(err):
		// The same write would fail again; it is retried when the objects
		// change.
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "invalid").Inc()
		log.WithError(err).Warn("write rejected")
		c.recordEvent(obj, Warning, ReasonWriteFailed, fmt.Sprintf("%s rejected: %s", what, apierrors.ReasonForError(err)))
		return nil
	case apierrors.IsForbidden(err):
		// Most often RBAC's escalation check: a Role or RoleBinding grants
		// what the replicator does not hold. Permissions can be granted
		// later, so it is retried with backoff.
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "forbidden").Inc()
		c.recordEvent(obj, Warning, ReasonWriteFailed, fmt.Sprintf("%s forbidden: the replicator lacks the permission (to replicate a Role or RoleBinding it must hold what it grants, or escalate and bind); retrying", what))
		return fmt.Errorf("%s: %w", what, err)
	default:
		c.opts.Metrics.writeErrors.WithLabelValues(c.kind.Name(), "other").Inc()
		c.recordEvent(obj, Warning, ReasonWriteFailed, fmt.Sprintf("%s failed: %s, retrying", what, apierrors.ReasonForError(err)))
		return fmt.Errorf("%s: %w", what, err)
	}
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
		c.opts.Metrics.problems.WithLabelValues(c.kind.Name(), e.Reason).Inc()
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
		if m, err := metaOf(obj); err == nil && c.dryRun.first("event "+m.GetNamespace()+"/"+m.GetName()+" "+reason, message) {
			if c.opts.Observe != nil {
				c.opts.Observe(Observation{Kind: c.kind.Name(), Namespace: m.GetNamespace(), Name: m.GetName(), EventType: typ, Reason: reason, Message: message})
			}
			c.log.WithFields(logrus.Fields{"namespace": m.GetNamespace(), "name": m.GetName(), "type": typ, "reason": reason, "message": message}).Info("dry run: would record event")
		}
		return
	}
	if typ == Normal && c.opts.NormalEvents != nil && !c.opts.NormalEvents.Allow() {
		c.opts.Metrics.eventsSkipped.WithLabelValues(c.kind.Name(), reason).Inc()
		return
	}
	c.opts.Recorder.Event(ro, string(typ), reason, message)
}

// GitOpsDocs is where the FightingWriter Event sends the reader.
const GitOpsDocs = "https://github.com/kubereplicator/replicator/blob/main/docs/gitops.md"

// fighting names, once per fight spell, the writer that keeps undoing op's
// write (writers: the object's managedFields as the write found it): a
// Warning Event on the object written (for a replica that keeps being
// deleted, on its source), the log and a metric.
func (c *Controller) fighting(op writeOp, writers []metav1.ManagedFieldsEntry) {
	c.opts.Metrics.fights.WithLabelValues(c.kind.Name(), string(op.mode)).Inc()
	var msg string
	target := op.change.Object.Key()
	on := op.current
	if op.change.Action != Create && op.current != nil {
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
	c.opts.Metrics.problems.WithLabelValues(c.kind.Name(), ReasonFightingWriter).Inc()
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
