package main

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// connTracker follows the HTTP server's connections (http.Server's
// ConnState hook) so that shutdown closes at once the ones that carry no
// request: accepted but silent (a load balancer's probe, a browser's
// preconnect, a client's spare keep-alive socket) or idle between
// requests. http.Server.Shutdown closes idle connections itself but waits
// for new ones until they are 5 s old, so one silent socket would make a
// SIGTERM take 5 s. Safe for concurrent use.
type connTracker struct {
	mu       sync.Mutex
	conns    map[net.Conn]http.ConnState
	draining bool
}

func newConnTracker() *connTracker {
	return &connTracker{conns: map[net.Conn]http.ConnState{}}
}

// track is the http.Server's ConnState hook.
func (t *connTracker) track(c net.Conn, st http.ConnState) {
	t.mu.Lock()
	switch st {
	case http.StateNew, http.StateIdle:
		if t.draining {
			delete(t.conns, c)
			t.mu.Unlock()
			c.Close() // nothing to wait for
			return
		}
		t.conns[c] = st
	case http.StateActive:
		t.conns[c] = st
	case http.StateHijacked, http.StateClosed: // a hijacked stream is the api's to end
		delete(t.conns, c)
	}
	t.mu.Unlock()
}

// drain closes every connection without a request in progress, and from
// now on each one that becomes new or idle.
func (t *connTracker) drain() {
	t.mu.Lock()
	t.draining = true
	var quiet []net.Conn
	for c, st := range t.conns {
		if st != http.StateActive {
			quiet = append(quiet, c)
			delete(t.conns, c)
		}
	}
	t.mu.Unlock()
	for _, c := range quiet {
		c.Close()
	}
}

// shutdownHTTP stops srv, whose ConnState hook is conns.track: it stops
// accepting, closes the connections that carry no request and waits for
// the requests in progress until ctx ends; then it closes what is left
// and returns ctx's error.
func shutdownHTTP(ctx context.Context, srv *http.Server, conns *connTracker) error {
	conns.drain()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return err
	}
	return nil
}
