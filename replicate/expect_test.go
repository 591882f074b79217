package replicate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestCreationsAreAwaitedUntilObservedOrExpired(t *testing.T) {
	c := newCreations()
	assert.False(t, c.awaited("certs/s", now), "nothing created, nothing awaited")

	c.expect("certs/s", "a/s", now)
	c.expect("certs/s", "b/s", now)
	assert.True(t, c.awaited("certs/s", now))
	assert.False(t, c.awaited("certs/other", now), "per source")
	c.observed("certs/s", "a/s")
	assert.True(t, c.awaited("certs/s", now), "b/s not seen yet")
	c.observed("certs/s", "b/s")
	assert.False(t, c.awaited("certs/s", now))
	c.observed("certs/s", "b/s") // a later event of the same replica

	c.expect("certs/s", "c/s", now)
	assert.True(t, c.awaited("certs/s", now.Add(expectationTTL)))
	assert.False(t, c.awaited("certs/s", now.Add(expectationTTL+time.Second)), "a replica never seen is not waited for forever")
	assert.Empty(t, c.pending)
}
