package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// This file tunes the garbage collector: tighter during start-up, and a soft
// limit below the container's memory limit.

// syncGCPercent is the garbage collector's target during start-up: while the
// informers load the cluster and the first reconcile of everything runs. The
// load streams every Secret and ConfigMap in full (the cache transform drops
// the data of unrelated ones only after decoding), and the first reconcile
// looks at every object at once, so both produce garbage many times the size
// of what is kept; collecting four times as often bounds the start-up peak by
// what is kept. It lasts seconds, so the extra CPU is small.
const syncGCPercent = 25

// steadyGCPercent is the garbage collector's target after start-up. Go's
// default (100) lets the heap grow to twice what is kept before collecting;
// what is kept grows with the cluster (a few KiB per namespace), so at ten
// thousand namespaces a fan-out would take the process to three times its
// live heap. 50 keeps the peak at one and a half times, for a little more
// collection work during fan-outs (measured in docs/scale.md).
const steadyGCPercent = 50

// tightenGCDuringSync sets syncGCPercent unless GOGC is set, and returns what
// sets steadyGCPercent after start-up.
func tightenGCDuringSync() (relax func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	debug.SetGCPercent(syncGCPercent)
	return func() { debug.SetGCPercent(steadyGCPercent) }
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
