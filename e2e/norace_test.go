//go:build !race

package e2e

// raceFlags are empty without the race detector: building with it needs cgo
// and a C compiler, which this run has not.
var raceFlags []string
