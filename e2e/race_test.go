//go:build race

package e2e

// raceFlags build the replicator under test with the race detector when the
// tests themselves run with it (make test does wherever cgo is on, CI always).
var raceFlags = []string{"-race"}
