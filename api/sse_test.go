package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/wsrelay/wsrelay/relay"
)

func TestSSEHeadersRetrySnapshotLive(t *testing.T) {
	f := newFixture(t, opts{})
	f.waitQuotes(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.url+"/v1/stream?symbols=A,B")
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
	latest, _ := f.broker.Latest("A")
	r2 := openSSE(t, ctx, f.url+"/v1/quotes/A/stream?snapshot=false")
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

func TestSSEManyClientsInOrderAcrossCuts(t *testing.T) {
	f := newFixture(t, opts{rate: 200, history: 8192})
	f.waitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const clients, want = 40, 600
	checks := make([]*seqChecker, clients)
	var wg sync.WaitGroup
	for i := range clients {
		checks[i] = &seqChecker{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(ctx, newSSEClient(ctx, f.url+"/v1/stream?symbols=A,B"), func(q quoteBody) bool {
				checks[i].add(q)
				return checks[i].n < want
			})
		}()
	}
	// Cut every stream from the server side three times while they run.
	for range 3 {
		time.Sleep(400 * time.Millisecond)
		f.ln.CutAll()
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

func TestSSEResumeExactRaw(t *testing.T) {
	f := newFixture(t, opts{rate: 300, history: 8192})
	f.waitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var lastID string
	var lastN uint64
	total := 0
	for cut := 0; cut < 15; cut++ {
		url := f.url + "/v1/stream?symbols=A,B"
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

func TestSSEResetOnForeignID(t *testing.T) {
	f := newFixture(t, opts{})
	f.waitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range []string{"1-1", "garbage"} {
		r := openSSE(t, ctx, f.url+"/v1/stream?symbols=A,B", "Last-Event-ID", id)
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

// TestSSESlowClientIsolated: a client that never reads is cut off and the
// 100 others get every quote.
func TestSSESlowClientIsolated(t *testing.T) {
	// The write timeout is far above any scheduling delay of a healthy
	// reader on a loaded machine; the stalled client exceeds it anyway.
	// The queue is deep enough for a healthy reader starved of CPU (every
	// package's tests race on two cores, and these readers share the
	// relay's process): the stalled client is cut by the write timeout.
	f := newFixture(t, opts{rate: 500, smallSendBuffers: true, edit: func(c *Config) {
		c.SSE.WriteTimeout = 2 * time.Second
		c.SSE.Queue = 1 << 14
	}})
	f.waitQuotes(t, 1)
	// The stalled client: sends its request and never reads a byte, with a
	// tiny receive buffer so that the server's writes block soon.
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /v1/stream?symbols=A,B HTTP/1.1\r\nHost: x\r\n\r\n")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const clients, want = 100, 400
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	var maxLag time.Duration
	var mu sync.Mutex
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := openSSE(t, ctx, f.url+"/v1/stream?symbols=A,B&snapshot=false")
			defer r.Close()
			c := &seqChecker{}
			for c.n < want {
				ev, err := r.nextQuote()
				if err != nil {
					errs <- err
					return
				}
				var q quoteBody
				json.Unmarshal([]byte(ev.Data), &q)
				c.add(q)
				lag := time.Since(q.ReceivedAt)
				mu.Lock()
				maxLag = max(maxLag, lag)
				mu.Unlock()
			}
			if c.err != nil {
				errs <- c.err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		for _, r := range []string{"queue_full", "write_timeout", "client_gone", "shutdown", "write_error"} {
			t.Logf("%s=%v", r, testutil.ToFloat64(f.api.metrics.sseCut.WithLabelValues(r)))
		}
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cut := testutil.ToFloat64(f.api.metrics.sseCut.WithLabelValues("queue_full")) + testutil.ToFloat64(f.api.metrics.sseCut.WithLabelValues("write_timeout"))
		if cut >= 1 {
			break
		}
		if time.Now().After(deadline) {
			for _, r := range []string{"queue_full", "write_timeout", "client_gone", "shutdown", "write_error"} {
				t.Logf("%s=%v", r, testutil.ToFloat64(f.api.metrics.sseCut.WithLabelValues(r)))
			}
			t.Fatal("the stalled client was never cut off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("100 readers got %d quotes each beside a stalled client; worst relay→reader lag %s", want, maxLag)
}

func TestSSEHeartbeatOnIdleStream(t *testing.T) {
	f := newFixture(t, opts{rate: -1, edit: func(c *Config) { c.SSE.Heartbeat = 40 * time.Millisecond }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.url+"/v1/stream?symbols=A")
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

func TestSSEStatusEvents(t *testing.T) {
	f := newFixture(t, opts{})
	f.waitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.url+"/v1/stream?symbols=A,B")
	defer r.Close()
	f.feed.Drop("A")
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

func TestSSELimits(t *testing.T) {
	f := newFixture(t, opts{edit: func(c *Config) { c.SSE.MaxClients = 2; c.SSE.MaxPerIP = 1 }})
	f.waitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.url+"/v1/stream?symbols=A")
	resp, body := get(t, f.url+"/v1/stream?symbols=A")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), CodeTooManyClients) {
		t.Fatalf("per-IP limit: %d %s", resp.StatusCode, body)
	}
	r.Close()
	f.api.perIPMu.Lock()
	f.api.sse.MaxPerIP = 10
	f.api.perIPMu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for f.api.Clients() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r1 := openSSE(t, ctx, f.url+"/v1/stream?symbols=A")
	defer r1.Close()
	r2 := openSSE(t, ctx, f.url+"/v1/stream?symbols=A")
	defer r2.Close()
	resp, body = get(t, f.url+"/v1/stream?symbols=A")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), CodeTooManyClients) {
		t.Fatalf("max_clients: %d %s", resp.StatusCode, body)
	}
}

// TestSSEMaxRateConflates: a conflated stream gets at most max_rate quotes
// per second, always newer ones; the hub's timer delivers a held-back
// quote when nothing else wakes the stream.
func TestSSEMaxRateConflates(t *testing.T) {
	f := newFixture(t, opts{rate: 200})
	f.waitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.url+"/v1/quotes/A/stream?max_rate=5&snapshot=false")
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

func TestSSEShutdownEndsStreams(t *testing.T) {
	f := newFixture(t, opts{})
	f.waitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var readers []*sseReader
	for range 50 {
		readers = append(readers, openSSE(t, ctx, f.url+"/v1/stream"))
	}
	f.api.Shutdown()
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
	if resp, _ := get(t, f.url+"/v1/stream"); resp.StatusCode != 503 {
		t.Fatalf("new stream during shutdown: %d", resp.StatusCode)
	}
}

func TestEncodeSSEFraming(t *testing.T) {
	for _, data := range []string{`{"a":1}`, "a\nb", "a\r\nb\rc", "\n", "", ":colon", "nul\x00byte", "bad\xffutf8"} {
		ev := &relay.Event{Kind: relay.KindStatus, JSON: []byte(data)}
		checkFraming(t, EncodeSSE(ev), "status", data)
	}
	q := &relay.Event{Kind: relay.KindQuote, ID: relay.EventID{Epoch: 5, N: 9}, JSON: []byte(`{}`)}
	if got := string(EncodeSSE(q)); got != "id: 5-9\nevent: quote\ndata: {}\n\n" {
		t.Fatalf("quote frame %q", got)
	}
}

// checkFraming parses frame as a browser would: it must be exactly one
// event of the given type whose data is the input with line breaks
// normalised to \n.
func checkFraming(t *testing.T, frame []byte, event, data string) {
	t.Helper()
	if !bytes.HasSuffix(frame, []byte("\n\n")) || bytes.Contains(frame[:len(frame)-2], []byte("\n\n")) {
		t.Fatalf("frame %q is not exactly one event", frame)
	}
	r := &sseReader{br: bufio.NewReader(bytes.NewReader(frame))}
	ev, err := r.next()
	if err != nil {
		t.Fatalf("frame %q: %v", frame, err)
	}
	want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)
	if ev.Event != event || ev.Data != want {
		t.Fatalf("frame %q parsed as %+v, want data %q", frame, ev, want)
	}
}

func FuzzEncodeSSE(f *testing.F) {
	for _, s := range []string{`{"a":1}`, "a\nb", "a\r\nb\rc", "\r", ":x", "\x00", "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFraming(t, EncodeSSE(&relay.Event{Kind: relay.KindReset, JSON: data}), "reset", string(data))
	})
}

// TestSSEOverHTTP2 exercises the ResponseWriter path (HTTP/2 connections
// cannot be hijacked): resume and framing work there too.
func TestSSEOverHTTP2(t *testing.T) {
	f := newFixture(t, opts{})
	f.waitQuotes(t, 2)
	srv := httptest.NewUnstartedServer(f.api.Handler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := func(hdr ...string) (*sseReader, func()) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/stream?symbols=A,B", nil)
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
	r, done := read()
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
	r, done = read("Last-Event-ID", lastID)
	defer done()
	ev, err := r.nextQuote()
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := relay.ParseEventID(ev.ID); id.N != lastN+1 {
		t.Fatalf("resumed at %d after %d", id.N, lastN)
	}
}

// TestSSEVanishedIdleClientNoticed: nobody reads a hijacked stream's
// connection, so the hub's housekeeping notices a client that left an idle stream
// within about a second, long before the next heartbeat.
func TestSSEVanishedIdleClientNoticed(t *testing.T) {
	f := newFixture(t, opts{rate: -1, edit: func(c *Config) { c.SSE.Heartbeat = time.Hour }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 5 {
		r := openSSE(t, ctx, f.url+"/v1/stream?symbols=A")
		r.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.api.Clients() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still open after their clients left", f.api.Clients())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := testutil.ToFloat64(f.api.metrics.sseCut.WithLabelValues("client_gone")); v != 5 {
		t.Fatalf("client_gone = %v", v)
	}
}

// TestSSEStreamBackFromSlowPath: a reader that pauses until the server's
// socket is full is written by its own goroutine with the write timeout,
// then handed back to the hub's writers; long after that deadline would
// have expired it still gets every quote, in order, and is not cut.
func TestSSEStreamBackFromSlowPath(t *testing.T) {
	const timeout = time.Second
	f := newFixture(t, opts{rate: 2000, smallSendBuffers: true, edit: func(c *Config) {
		c.SSE.WriteTimeout = timeout
		c.SSE.Queue = 1 << 16
	}})
	f.waitQuotes(t, 1)
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(64 << 10) // fixed: no autotuning
	fmt.Fprintf(conn, "GET /v1/stream?symbols=A,B&snapshot=false HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(conn, 64<<10)
	last := map[string]int64{}
	n := 0
	readFor := func(d time.Duration) {
		t.Helper()
		for start := time.Now(); time.Since(start) < d; {
			line, err := br.ReadSlice('\n')
			if err != nil {
				for _, r := range []string{"queue_full", "write_timeout", "client_gone"} {
					t.Logf("%s cuts: %v", r, testutil.ToFloat64(f.api.metrics.sseCut.WithLabelValues(r)))
				}
				t.Fatalf("after %d quotes: %v", n, err)
			}
			if !bytes.HasPrefix(line, []byte("data: {")) {
				continue
			}
			sym := string(line[len(`data: {"symbol":"`):][:1])
			i := bytes.Index(line, []byte(`"seq":`))
			if i < 0 {
				continue
			}
			seq, _ := strconv.ParseInt(string(bytes.TrimRight(line[i+6:][:bytes.IndexAny(line[i+6:], ",}")], " ")), 10, 64)
			if l, ok := last[sym]; ok && seq != l+1 {
				t.Fatalf("%s seq %d after %d", sym, seq, l)
			}
			last[sym] = seq
			n++
		}
	}
	readFor(200 * time.Millisecond)
	// Pause: 4000 quotes/s fill the 16 KiB send buffer and the 128 KiB
	// receive buffer well within the pause, so the stream's writes block.
	time.Sleep(timeout / 2)
	if v := testutil.ToFloat64(f.api.metrics.sseBlocked); v < 1 {
		t.Fatalf("no write blocked during the pause (%v)", v)
	}
	// Read on for several write timeouts: the deadline the blocked write
	// set must not cut the stream once it is back on the fast path.
	readFor(3 * timeout)
	for _, r := range []string{"queue_full", "write_timeout", "client_gone"} {
		if v := testutil.ToFloat64(f.api.metrics.sseCut.WithLabelValues(r)); v != 0 {
			t.Fatalf("%s cuts: %v", r, v)
		}
	}
	t.Logf("%d quotes in order across a blocked write; %v blocked writes", n, testutil.ToFloat64(f.api.metrics.sseBlocked))
}
