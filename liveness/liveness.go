// Package liveness serves the health endpoints: /healthz answers while the
// process serves (a crashed worker ends the process), /readyz whether it is
// ready to work
// (informer caches synced), and further endpoints of the same form report
// what should not decide either (the clusters it pulls from, say).
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

// Server holds named checks by endpoint and serves them over HTTP.
type Server struct {
	mu        sync.RWMutex
	endpoints map[string]map[string]Check
	mux       *http.ServeMux
}

// New returns a Server with no checks: /healthz and /readyz answer 200 until
// checks are added.
func New() *Server {
	s := &Server{endpoints: map[string]map[string]Check{}, mux: http.NewServeMux()}
	s.endpoint("/healthz")
	s.endpoint("/readyz")
	return s
}

// endpoint returns the checks of path, serving it from now on.
func (s *Server) endpoint(path string) map[string]Check {
	checks, ok := s.endpoints[path]
	if !ok {
		checks = map[string]Check{}
		s.endpoints[path] = checks
		s.mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) { s.serve(w, checks) })
	}
	return checks
}

// Handle adds another handler (metrics, say) on the same listener.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddReady adds a check to /readyz.
func (s *Server) AddReady(name string, c Check) { s.Add("/readyz", name, c) }

// Add adds a check to the endpoint at path, which answers 503 while any of
// its checks fails. Call it before serving.
func (s *Server) Add(path, name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoint(path)[name] = c
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
