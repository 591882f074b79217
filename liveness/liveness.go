// Package liveness serves the health endpoints: /healthz answers whether the
// process and its workers are alive, /readyz whether it is ready to work
// (informer caches synced).
package liveness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Check returns nil when healthy, or why not.
type Check func() error

// Server holds named checks and serves them over HTTP.
type Server struct {
	mu    sync.RWMutex
	live  map[string]Check
	ready map[string]Check
	mux   *http.ServeMux
}

// New returns a Server with no checks: both endpoints answer 200 until checks
// are added.
func New() *Server {
	s := &Server{live: map[string]Check{}, ready: map[string]Check{}, mux: http.NewServeMux()}
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { s.serve(w, s.live) })
	s.mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { s.serve(w, s.ready) })
	return s
}

// Handle adds another handler (metrics, say) on the same listener.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddLive adds a check to /healthz.
func (s *Server) AddLive(name string, c Check) { s.add(s.live, name, c) }

// AddReady adds a check to /readyz.
func (s *Server) AddReady(name string, c Check) { s.add(s.ready, name, c) }

func (s *Server) add(m map[string]Check, name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[name] = c
}

func (s *Server) serve(w http.ResponseWriter, checks map[string]Check) {
	s.mu.RLock()
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	failed := false
	for _, n := range names {
		if err := checks[n](); err != nil {
			failed = true
			fmt.Fprintf(&b, "[-] %s: %v\n", n, err)
		} else {
			fmt.Fprintf(&b, "[+] %s ok\n", n)
		}
	}
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(b.String()))
}

// ServeHTTP serves the endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// ListenAndServe serves on addr until ctx ends. It returns once the listener
// is open, with the address it listens on; serving errors go to errc.
func (s *Server) ListenAndServe(ctx context.Context, addr string) (net.Addr, <-chan error, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
		close(errc)
	}()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	return l.Addr(), errc, nil
}
