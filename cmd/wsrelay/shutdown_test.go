package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/relaytest"
)

// TestShutdownWaitsOnlyForRequestsInProgress: with a grace of a minute, a
// connection that sent nothing and one idle between requests do not hold
// the shutdown up (http.Server alone waits 5 s for the first kind), while
// a request in progress is still answered.
func TestShutdownWaitsOnlyForRequestsInProgress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started, finish := make(chan struct{}), make(chan struct{})
	conns := newConnTracker()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				close(started)
				<-finish
			}
			io.WriteString(w, "ok")
		}),
		ConnState:         conns.track,
		ReadHeaderTimeout: time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()

	silent, err := net.Dial("tcp", ln.Addr().String()) // accepted, never sends a request
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	resp, err := client.Get(base + "/") // leaves an idle keep-alive connection
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	slow := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: &http.Transport{}}).Get(base + "/slow")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		slow <- err
	}()
	<-started
	relaytest.Eventually(t, "a new, an idle and an active connection", func() bool {
		conns.mu.Lock()
		defer conns.mu.Unlock()
		n := map[http.ConnState]int{}
		for _, st := range conns.conns {
			n[st]++
		}
		return n[http.StateNew] == 1 && n[http.StateIdle] == 1 && n[http.StateActive] == 1
	})

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- shutdownHTTP(ctx, srv, conns) }()
	// http.Server alone closes it only once it is 5 s old.
	silent.SetReadDeadline(start.Add(3 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		close(finish)
		t.Fatalf("the silent connection: %v, want it closed at once", err)
	}
	close(finish) // the request in progress ends; shutdown may complete
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Until(start.Add(4 * time.Second))):
		t.Fatalf("shutdown still waiting %s after it started", time.Since(start).Round(time.Millisecond))
	}
	if err := <-slow; err != nil {
		t.Fatalf("the request in progress: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
	t.Logf("shutdown took %s", time.Since(start).Round(time.Millisecond))
}
