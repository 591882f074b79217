package liveness

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestEndpointsFollowTheirChecks(t *testing.T) {
	s := New()
	var synced error = errors.New("caches not synced")
	s.AddReady("informers", func() error { return synced })
	s.Add("/healthz", "workers", func() error { return nil })

	code, body := get(t, s, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "[-] informers: caches not synced")

	code, _ = get(t, s, "/healthz")
	assert.Equal(t, http.StatusOK, code, "liveness does not depend on readiness")

	synced = nil
	code, body = get(t, s, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "[+] informers ok")
}

func TestListenAndServeStopsWithContext(t *testing.T) {
	s := New()
	ctx, cancel := context.WithCancel(context.Background())
	addr, errc, err := s.ListenAndServe(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	resp, err := http.Get("http://" + addr.String() + "/healthz")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	for err := range errc {
		t.Fatalf("serve error: %v", err)
	}
}

func TestProbeRemembersTheLastResult(t *testing.T) {
	p := NewProbe()
	assert.Error(t, p.Check(), "not probed yet")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fail atomic.Bool
	go p.Run(ctx, 10*time.Millisecond, time.Second, func(context.Context) error {
		if fail.Load() {
			return errors.New("down")
		}
		return nil
	})
	assert.Eventually(t, func() bool { return p.Check() == nil }, time.Second, 5*time.Millisecond)
	fail.Store(true)
	assert.Eventually(t, func() bool { return p.Check() != nil }, time.Second, 5*time.Millisecond)
	fail.Store(false)
	assert.Eventually(t, func() bool { return p.Check() == nil }, time.Second, 5*time.Millisecond)
}

func TestAnEndpointOfItsOwnDoesNotDecideReadiness(t *testing.T) {
	s := New()
	s.AddReady("informers", func() error { return nil })
	s.Add("/readyz/clusters", "hub", func() error { return errors.New("connection refused") })
	s.Add("/readyz/clusters", "edge", func() error { return nil })

	code, body := get(t, s, "/readyz/clusters")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "[+] edge ok\n[-] hub: connection refused\n", body)

	code, body = get(t, s, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.NotContains(t, body, "hub")
}
