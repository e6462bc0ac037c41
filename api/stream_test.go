package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/wsrelay/wsrelay/relay"
)

// TestStreamStartsWithRetryThenSnapshotThenLive: the headers, retry:, the
// latest quote of each symbol, then live quotes in ID order; snapshot=false
// starts with live quotes; the one-symbol route works.
func TestStreamStartsWithRetryThenSnapshotThenLive(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.URL+"/v1/stream?symbols=A,B")
	defer r.Close()
	h := r.resp.Header
	if h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" || h.Get("X-Accel-Buffering") != "no" || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("headers %v", h)
	}
	first, _ := r.next()
	if first.Retry != "2000" {
		t.Fatalf("first field %+v", first)
	}
	seen := map[string]bool{}
	var lastN uint64
	for i := 0; i < 20; i++ {
		ev, err := r.nextQuote()
		if err != nil {
			t.Fatal(err)
		}
		var q quoteBody
		if err := json.Unmarshal([]byte(ev.Data), &q); err != nil || q.ID != ev.ID {
			t.Fatalf("event %+v", ev)
		}
		id, _ := relay.ParseEventID(ev.ID)
		if id.N <= lastN {
			t.Fatalf("ids not increasing: %d after %d", id.N, lastN)
		}
		lastN = id.N
		if i < 2 {
			seen[q.Symbol] = true // the snapshot: one quote of each
		}
	}
	if !seen["A"] || !seen["B"] {
		t.Fatalf("snapshot had %v", seen)
	}
	// snapshot=false starts with live quotes only; the one-symbol route works.
	latest, _ := f.Broker.Latest("A")
	r2 := openSSE(t, ctx, f.URL+"/v1/quotes/A/stream?snapshot=false")
	defer r2.Close()
	ev, _ := r2.nextQuote()
	id, _ := relay.ParseEventID(ev.ID)
	if id.N <= latest.ID.N || !strings.Contains(ev.Data, `"symbol":"A"`) {
		t.Fatalf("snapshot=false began with %s (latest was %s)", ev.ID, latest.ID)
	}
}

// newSSEClient returns an r3labs client with sane reconnect settings.
func newSSEClient(ctx context.Context, url string) *sse.Client {
	c := sse.NewClient(url, sse.ClientMaxBufferSize(1<<20))
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 20 * time.Millisecond
	b.MaxInterval = 200 * time.Millisecond
	b.MaxElapsedTime = 0
	c.ReconnectStrategy = backoff.WithContext(b, ctx)
	return c
}

// follow subscribes with c until ctx ends, resubscribing when a response
// ends cleanly (the r3labs client does not), and hands every quote to fn.
func follow(ctx context.Context, c *sse.Client, fn func(q quoteBody) bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for ctx.Err() == nil {
		_ = c.SubscribeRawWithContext(ctx, func(m *sse.Event) {
			if string(m.Event) != "quote" || len(m.Data) == 0 {
				return
			}
			var q quoteBody
			if json.Unmarshal(m.Data, &q) != nil || !fn(q) {
				cancel()
			}
		})
	}
}

// seqChecker checks that quotes of each symbol arrive exactly once, in order.
type seqChecker struct {
	last map[string]uint64
	n    int
	err  error
}

func (c *seqChecker) add(q quoteBody) {
	if c.last == nil {
		c.last = map[string]uint64{}
	}
	if l, ok := c.last[q.Symbol]; ok && q.Seq != l+1 && c.err == nil {
		c.err = fmt.Errorf("%s seq %d after %d", q.Symbol, q.Seq, l)
	}
	c.last[q.Symbol] = q.Seq
	c.n++
}

// TestStreamClientsResumeInOrderAcrossServerCuts: r3labs clients whose
// streams are cut from the server side three times get every quote once,
// in order.
func TestStreamClientsResumeInOrderAcrossServerCuts(t *testing.T) {
	f := newFixture(t, opts{rate: 200, history: 8192})
	f.WaitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	const clients, want = 40, 600
	checks := make([]*seqChecker, clients)
	var wg sync.WaitGroup
	for i := range clients {
		checks[i] = &seqChecker{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(ctx, newSSEClient(ctx, f.URL+"/v1/stream?symbols=A,B"), func(q quoteBody) bool {
				checks[i].add(q)
				return checks[i].n < want
			})
		}()
	}
	// Cut every stream from the server side three times while they run.
	for range 3 {
		time.Sleep(400 * time.Millisecond)
		f.Listener.CutAll()
	}
	wg.Wait()
	for i, c := range checks {
		if c.err != nil || c.n < want {
			t.Fatalf("client %d: %d quotes, %v", i, c.n, c.err)
		}
	}
	if v := testutil.ToFloat64(f.api.metrics.sseResumes); v < clients {
		t.Fatalf("only %v resumes", v)
	}
}

// TestStreamResumesRightAfterLastEventID: resuming with Last-Event-ID (the
// header, or ?last_event_id=) continues with exactly the next quote.
func TestStreamResumesRightAfterLastEventID(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{rate: 300, history: 8192})
	f.WaitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var lastID string
	var lastN uint64
	total := 0
	for cut := 0; cut < 15; cut++ {
		url := f.URL + "/v1/stream?symbols=A,B"
		var r *sseReader
		if lastID == "" {
			// A snapshot holds the latest quote of each symbol, whose IDs
			// need not be consecutive; from here on they must be.
			r = openSSE(t, ctx, url+"&snapshot=false")
		} else if cut%2 == 0 {
			r = openSSE(t, ctx, url, "Last-Event-ID", lastID)
		} else {
			r = openSSE(t, ctx, url+"&last_event_id="+lastID)
		}
		for k := 0; k < 5+cut*7; k++ {
			ev, err := r.nextQuote()
			if err != nil {
				t.Fatal(err)
			}
			id, _ := relay.ParseEventID(ev.ID)
			// A and B are every symbol, so their IDs are consecutive.
			if lastN != 0 && id.N != lastN+1 {
				t.Fatalf("cut %d: id %d after %d", cut, id.N, lastN)
			}
			lastN, lastID = id.N, ev.ID
			total++
		}
		r.Close()
		time.Sleep(time.Duration(cut) * 3 * time.Millisecond)
	}
	t.Logf("%d quotes over 15 resumes, no gap, no duplicate", total)
}

// TestStreamWithForeignIDStartsWithResetThenSnapshot: an ID of another
// epoch, or garbage, gives reset and the snapshot, counted as resets.
func TestStreamWithForeignIDStartsWithResetThenSnapshot(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, id := range []string{"1-1", "garbage"} {
		r := openSSE(t, ctx, f.URL+"/v1/stream?symbols=A,B", "Last-Event-ID", id)
		r.next() // retry
		ev, _ := r.next()
		if ev.Event != "reset" || ev.ID != "" {
			t.Fatalf("%s: first event %+v", id, ev)
		}
		snap1, _ := r.next()
		snap2, _ := r.next()
		if snap1.Event != "quote" || snap2.Event != "quote" {
			t.Fatalf("no snapshot after reset: %+v %+v", snap1, snap2)
		}
		r.Close()
	}
	if v := testutil.ToFloat64(f.api.metrics.sseResets); v != 2 {
		t.Fatalf("resets metric %v", v)
	}
}

// TestStreamSendsKeepalivesWhenIdle: a stream with nothing to send gets a
// keepalive comment every heartbeat.
func TestStreamSendsKeepalivesWhenIdle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{rate: -1, edit: func(c *Config) { c.SSE.Heartbeat = 40 * time.Millisecond }})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.URL+"/v1/stream?symbols=A")
	defer r.Close()
	r.next()
	for range 3 {
		ev, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Event == "status" {
			continue
		}
		if ev.Comment != "keepalive" {
			t.Fatalf("got %+v, want a keepalive", ev)
		}
	}
}

// TestStreamCarriesUpstreamStateChanges: a dropped upstream shows as
// backoff, connecting, live status events.
func TestStreamCarriesUpstreamStateChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.URL+"/v1/stream?symbols=A,B")
	defer r.Close()
	f.Feed.Drop("A")
	states := []string{}
	for len(states) < 3 {
		ev, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Event != "status" {
			continue
		}
		var st struct{ Symbol, State, Reason string }
		json.Unmarshal([]byte(ev.Data), &st)
		if st.Symbol != "A" || st.Reason == "" {
			t.Fatalf("status %s", ev.Data)
		}
		states = append(states, st.State)
	}
	if strings.Join(states, ",") != "backoff,connecting,live" {
		t.Fatalf("states %v", states)
	}
}

// TestStreamMaxRateConflates: a conflated stream gets at most max_rate quotes
// per second, always newer ones; the stream's timer delivers a held-back
// quote when nothing else wakes the stream.
func TestStreamMaxRateConflates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{rate: 200})
	f.WaitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.URL+"/v1/quotes/A/stream?max_rate=5&snapshot=false")
	defer r.Close()
	start := time.Now()
	var seqs []uint64
	for len(seqs) < 6 {
		ev, err := r.nextQuote()
		if err != nil {
			t.Fatal(err)
		}
		var q quoteBody
		json.Unmarshal([]byte(ev.Data), &q)
		seqs = append(seqs, q.Seq)
	}
	elapsed := time.Since(start)
	skipped := false
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("not increasing: %v", seqs)
		}
		skipped = skipped || seqs[i] > seqs[i-1]+1
	}
	// 6 quotes at 5/s take at least a second (the first may go at once).
	if elapsed < 900*time.Millisecond || !skipped {
		t.Fatalf("6 conflated quotes in %s, seqs %v", elapsed, seqs)
	}
}

// serveHTTP2 serves the fixture's API over TLS with HTTP/2 as well, and
// returns a function that opens a stream there (failing unless it is an
// HTTP/2 event stream) and one that closes it.
func serveHTTP2(t *testing.T, f *fixture) func(ctx context.Context, path string, hdr ...string) (*sseReader, func()) {
	srv := httptest.NewUnstartedServer(f.api.Handler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := srv.Client()
	return func(ctx context.Context, path string, hdr ...string) (*sseReader, func()) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("proto %s, headers %v", resp.Proto, resp.Header)
		}
		return &sseReader{resp: resp, br: bufio.NewReader(resp.Body)}, func() { resp.Body.Close() }
	}
}

// TestStreamOverHTTP2ResumesAndFrames: HTTP/2 streams (written through
// the ResponseWriter, since an HTTP/2 connection cannot be taken over) have
// the same framing and resume exactly.
func TestStreamOverHTTP2ResumesAndFrames(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 2)
	open := serveHTTP2(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, done := open(ctx, "/v1/stream?symbols=A,B")
	if ev, _ := r.next(); ev.Retry != "2000" {
		t.Fatalf("first %+v", ev)
	}
	var lastID string
	var lastN uint64
	for range 10 {
		ev, err := r.nextQuote()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := relay.ParseEventID(ev.ID)
		lastID, lastN = ev.ID, id.N
	}
	done()
	r, done = open(ctx, "/v1/stream?symbols=A,B", "Last-Event-ID", lastID)
	defer done()
	ev, err := r.nextQuote()
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := relay.ParseEventID(ev.ID); id.N != lastN+1 {
		t.Fatalf("resumed at %d after %d", id.N, lastN)
	}
}

// TestStreamOverHTTP2StaysOpenWhenIdle: an HTTP/2 stream's write deadline
// fires even while nothing is written, so each write clears it: a quiet
// stream gets its keepalives long past the write timeout and is not reset.
func TestStreamOverHTTP2StaysOpenWhenIdle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{rate: -1, edit: func(c *Config) {
		c.SSE.Heartbeat = 400 * time.Millisecond
		c.SSE.WriteTimeout = 100 * time.Millisecond
	}})
	open := serveHTTP2(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, done := open(ctx, "/v1/quotes/A/stream")
	defer done()
	r.next() // retry:
	for keepalives := 0; keepalives < 3; {
		ev, err := r.next()
		if err != nil {
			f.logCuts(t)
			t.Fatalf("after %d keepalives: %v", keepalives, err)
		}
		if ev.Comment == "keepalive" {
			keepalives++
		}
	}
	if v := f.cut(reasonWriteTimeout); v != 0 {
		t.Fatalf("%v write timeouts", v)
	}
}
