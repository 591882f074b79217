package main

import (
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// This file tunes the garbage collector: a tighter target than Go's, a soft
// limit below the container's memory limit, and memory given back after a
// burst of work.

// gcPercent is the garbage collector's target. Go's default (100) lets the
// heap grow to twice what is kept before collecting. What is kept grows with
// the cluster (a few KiB per namespace), and the work grows with it too: the
// start-up load streams every Secret and ConfigMap in full (the cache
// transform drops what is not needed only after decoding), and a fan-out
// decodes and encodes a full object per namespace. At ten thousand
// namespaces Go's default took the process to about three times its live
// heap; 25 keeps the peak near one and a quarter times, for more collection
// work during fan-outs, when the replicator mostly waits for the API server
// anyway (measured in docs/scale.md).
const gcPercent = 25

// tightenGC sets gcPercent unless GOGC is set.
func tightenGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// cgroupMemoryMax is where a container's memory limit is (cgroup v2).
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// softMemoryLimit sets Go's soft memory limit to 90% of the container's
// memory limit, unless GOMEMLIMIT is set or there is no limit: the garbage
// collector then works harder as the process nears the limit instead of
// letting it be killed. It returns the limit set, or 0.
func softMemoryLimit(path string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	containerLimit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || containerLimit <= 0 {
		return 0 // "max": no limit
	}
	limit := containerLimit / 10 * 9
	debug.SetMemoryLimit(limit)
	return limit
}

// releaseAfter is how much work (items reconciled and writes made) makes the
// memory it used worth giving back at once when the queues are empty again.
const releaseAfter = 1000

// releaseAfterBursts gives the memory a burst of work used back to the
// system once the work is done: checked every period, when at least
// releaseAfter items were reconciled or written since the last time and no
// work is queued. Go returns freed memory by itself only slowly and after its next
// collection, which an idle process may not run for minutes; a fan-out to
// every namespace would otherwise leave the process at its peak size. It
// costs one collection per burst.
func releaseAfterBursts(ctx context.Context, work func() (done uint64, idle bool), period time.Duration, release func()) {
	var last uint64
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, idle := work(); idle && n-last >= releaseAfter {
				release()
				last = n
			}
		}
	}
}

// eventCacheSize is the size of each of the Event correlator's caches (see
// run).
const eventCacheSize = 512
