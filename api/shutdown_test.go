package api

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestShutdownEndsEveryStreamCleanly: Shutdown ends every open stream, over
// HTTP/1 and HTTP/2, with a clean end of the body (the client reconnects
// elsewhere), counts them as shutdown, turns /readyz to 503 and refuses new
// streams.
func TestShutdownEndsEveryStreamCleanly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 1)
	open2 := serveHTTP2(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var readers []*sseReader
	for range 50 {
		readers = append(readers, openSSE(t, ctx, f.URL+"/v1/stream"))
	}
	r2, done2 := open2(ctx, "/v1/stream")
	defer done2()
	readers = append(readers, r2)
	if err := f.api.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, r := range readers {
		for {
			if _, err := r.next(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("stream %d ended with %v, want a clean end", i, err)
				}
				break
			}
		}
		r.resp.Body.Close()
	}
	if v := f.cut(reasonShutdown); v != 51 {
		f.logCuts(t)
		t.Fatalf("%v streams ended as shutdown, want 51", v)
	}
	if f.api.Clients() != 0 {
		t.Fatalf("%d streams left", f.api.Clients())
	}
	if resp, _ := get(t, f.URL+"/v1/stream"); resp.StatusCode != 503 {
		t.Fatalf("new stream during shutdown: %d", resp.StatusCode)
	}
	if resp, _ := get(t, f.URL+"/readyz"); resp.StatusCode != 503 {
		t.Fatalf("readyz during shutdown: %d", resp.StatusCode)
	}
	if err := f.api.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
