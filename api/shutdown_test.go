package api

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestShutdownEndsEveryStreamCleanly(t *testing.T) {
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var readers []*sseReader
	for range 50 {
		readers = append(readers, openSSE(t, ctx, f.URL+"/v1/stream"))
	}
	f.api.Shutdown(t.Context())
	start := time.Now()
	for _, r := range readers {
		for {
			_, err := r.next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("stream ended with %v, want a clean end", err)
				}
				break
			}
		}
		r.Close()
	}
	t.Logf("50 streams ended %s after Shutdown", time.Since(start))
	if resp, _ := get(t, f.URL+"/v1/stream"); resp.StatusCode != 503 {
		t.Fatalf("new stream during shutdown: %d", resp.StatusCode)
	}
}
