package liveness

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Probe runs a check in the background every interval and remembers the
// result, so that serving /readyz never waits on the network. It starts
// failing with "not probed yet".
type Probe struct {
	mu   sync.RWMutex
	last error
}

// NewProbe returns a Probe that has not run yet.
func NewProbe() *Probe { return &Probe{last: fmt.Errorf("not probed yet")} }

// Run calls check every interval (each call bounded by timeout) until ctx
// ends.
func (p *Probe) Run(ctx context.Context, interval, timeout time.Duration, check func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c, cancel := context.WithTimeout(ctx, timeout)
		err := check(c)
		cancel()
		p.mu.Lock()
		p.last = err
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check is the last result, for AddReady.
func (p *Probe) Check() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.last
}
