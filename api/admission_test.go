package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAdmissionReleaseReturnsThePlaceOnce: a released stream frees its
// place in all and for its address; a second release changes nothing.
func TestAdmissionReleaseReturnsThePlaceOnce(t *testing.T) {
	t.Parallel()
	a := newAdmission(2, 1)
	r1, err := a.admit("192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.admit("192.0.2.1"); err == nil || err.status != http.StatusTooManyRequests {
		t.Fatalf("second stream of one address: %v", err)
	}
	r2, err := a.admit("192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.admit("192.0.2.3"); err == nil || err.status != http.StatusServiceUnavailable {
		t.Fatalf("third stream: %v", err)
	}
	r1()
	r1()
	if a.total.Load() != 1 || len(a.byAddr) != 1 {
		t.Fatalf("after release: %d in all, %v", a.total.Load(), a.byAddr)
	}
	r3, err := a.admit("192.0.2.1")
	if err != nil {
		t.Fatalf("the released place was not returned: %v", err)
	}
	r2()
	r3()
	if a.total.Load() != 0 || len(a.byAddr) != 0 {
		t.Fatalf("all released: %d in all, %v", a.total.Load(), a.byAddr)
	}
}

// TestStreamLimitsCountClientsBehindTrustedProxy: with the loopback peer
// trusted, sse.max_clients_per_ip counts the addresses X-Forwarded-For
// names (429 past it), and sse.max_clients all streams (503 past it).
func TestStreamLimitsCountClientsBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{edit: func(c *Config) {
		c.SSE.MaxClients, c.SSE.MaxPerIP = 2, 1
		c.TrustedProxies, _ = ParseTrustedProxies([]string{"127.0.0.1"})
	}})
	f.WaitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	a := openSSE(t, ctx, f.URL+"/v1/stream?symbols=A", "X-Forwarded-For", "192.0.2.1")
	defer a.Close()
	refused := func(from string, status int) {
		t.Helper()
		resp, body := get(t, f.URL+"/v1/stream?symbols=A", "X-Forwarded-For", from)
		if resp.StatusCode != status || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), CodeTooManyClients) {
			t.Fatalf("stream from %s: %d %s, want %d", from, resp.StatusCode, body, status)
		}
	}
	refused("192.0.2.1", http.StatusTooManyRequests)
	b := openSSE(t, ctx, f.URL+"/v1/stream?symbols=A", "X-Forwarded-For", "192.0.2.2")
	defer b.Close()
	refused("192.0.2.3", http.StatusServiceUnavailable)
	if n := f.api.Clients(); n != 2 {
		t.Fatalf("%d streams, want 2", n)
	}
}
