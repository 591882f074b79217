package replicate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

func TestCreationsAreAwaitedUntilObservedOrExpired(t *testing.T) {
	e := newExpectations()
	assert.False(t, e.awaited("certs/s", now), "nothing written, nothing awaited")

	e.expect("certs/s", "a/s", "", now)
	e.expect("certs/s", "b/s", "", now)
	assert.True(t, e.awaited("certs/s", now))
	assert.False(t, e.awaited("certs/other", now), "per source")
	e.observed("certs/s", "a/s", "7")
	assert.True(t, e.awaited("certs/s", now), "b/s not seen yet")
	e.observed("certs/s", "b/s", "8")
	assert.False(t, e.awaited("certs/s", now))
	e.observed("certs/s", "b/s", "9") // a later event of the same replica

	e.expect("certs/s", "c/s", "", now)
	assert.True(t, e.awaited("certs/s", now.Add(expectationTTL)))
	assert.False(t, e.awaited("certs/s", now.Add(expectationTTL+time.Second)), "a replica never seen is not waited for forever")
	assert.Empty(t, e.pending)
}

func TestUpdatesAndDeletesAreAwaitedUntilTheCacheShowsAnotherVersion(t *testing.T) {
	for name, tt := range map[string]struct {
		shown   []string // versions of the replica the cache shows, in order
		awaited bool
	}{
		"nothing shown yet": {nil, true},
		"the version the write replaced, again (a relist)": {[]string{"5"}, true},
		"the write's result":                                   {[]string{"6"}, false},
		"a later version (someone wrote after it)":             {[]string{"9"}, false},
		"the replaced version, then the result":                {[]string{"5", "6"}, false},
		"the result, then the replaced version cannot undo it": {[]string{"6", "5"}, false},
	} {
		t.Run(name, func(t *testing.T) {
			e := newExpectations()
			e.expect("certs/s", "a/s", "5", now)
			for _, v := range tt.shown {
				e.observed("certs/s", "a/s", v)
			}
			assert.Equal(t, tt.awaited, e.awaited("certs/s", now))
		})
	}
}

func TestAWriteThatShowsNothingIsNotAwaited(t *testing.T) {
	e := newExpectations()
	e.expect("certs/s", "a/s", "5", now)
	e.expect("certs/s", "b/s", "5", now)
	e.forget("certs/s", "a/s")
	assert.True(t, e.awaited("certs/s", now), "b/s still awaited")
	e.forget("certs/s", "b/s")
	assert.False(t, e.awaited("certs/s", now))
	e.forget("certs/s", "b/s") // nothing left to forget
	assert.Empty(t, e.pending)
}

func TestExpiredWritesAreForgottenOneByOne(t *testing.T) {
	e := newExpectations()
	e.expect("certs/s", "old/s", "5", now)
	e.expect("certs/s", "new/s", "5", now.Add(20*time.Second))
	later := now.Add(expectationTTL + time.Second)
	assert.True(t, e.awaited("certs/s", later), "the newer write is still young")
	assert.Len(t, e.pending["certs/s"].writes, 1, "the expired one is gone")
	assert.False(t, e.awaited("certs/s", now.Add(20*time.Second+expectationTTL+time.Second)))
	assert.Empty(t, e.pending)
}

// The handler only enqueues; the push expectations see the same event
// first, through the one handler the informer calls, so that the source a
// replica's event enqueues finds the event observed.
func TestObjectHandlerObservesThenEnqueues(t *testing.T) {
	replica := secret("team-a", "wildcard", corev1.SecretTypeOpaque, map[string]string{"k": "v"}, map[string]string{ann.ReplicatedFrom: "certs/wildcard"})
	replica.ResourceVersion = "6"
	h := newHarness(t, harnessOptions{})

	queued := func() []string {
		var keys []string
		for h.ctrl.queue.Len() > 0 {
			k, _ := h.ctrl.queue.Get()
			keys = append(keys, k)
			h.ctrl.queue.Done(k)
		}
		return keys
	}
	h.ctrl.expected.expect("certs/wildcard", "team-a/wildcard", "5", time.Now())
	h.ctrl.objectChanged(nil, replica)
	assert.Contains(t, queued(), "certs/wildcard", "the source is enqueued")
	assert.True(t, h.ctrl.expected.awaited("certs/wildcard", time.Now()), "the handler leaves the expectations alone")

	h.ctrl.objectHandler().OnUpdate(replica, replica)
	assert.False(t, h.ctrl.expected.awaited("certs/wildcard", time.Now()), "the write is seen in its new version")
	assert.Contains(t, queued(), "certs/wildcard")

	h.ctrl.expected.expect("certs/wildcard", "team-a/wildcard", "6", time.Now())
	h.ctrl.objectHandler().OnDelete(cache.DeletedFinalStateUnknown{Key: "team-a/wildcard", Obj: replica})
	assert.False(t, h.ctrl.expected.awaited("certs/wildcard", time.Now()), "a delete missed while the watch was down is not waited for")
}
