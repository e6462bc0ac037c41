package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wsrelay/wsrelay/relay/relaytest"
)

// TestStalledClientIsCutAndOthersGetEveryQuote: a client that never reads is cut off and the
// 100 others get every quote.
// TestStalledClientIsCutAndOthersGetEveryQuote: a client that sends its
// request and never reads is cut off, and 100 others beside it get every
// quote in order.
func TestStalledClientIsCutAndOthersGetEveryQuote(t *testing.T) {
	// The write timeout is far above any scheduling delay of a healthy
	// reader on a loaded machine; the stalled client exceeds it anyway.
	// The queue is deep enough for a healthy reader starved of CPU (every
	// package's tests race on two cores, and these readers share the
	// relay's process): the stalled client is cut by the write timeout.
	f := newFixture(t, opts{rate: 500, smallSendBuffers: true, edit: func(c *Config) {
		c.SSE.WriteTimeout = 2 * time.Second
		c.SSE.Queue = 1 << 14
	}})
	f.WaitQuotes(t, 1)
	// The stalled client: sends its request and never reads a byte, with a
	// tiny receive buffer so that the server's writes block soon.
	conn, err := net.Dial("tcp", f.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /v1/stream?symbols=A,B HTTP/1.1\r\nHost: x\r\n\r\n")

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
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
			r := openSSE(t, ctx, f.URL+"/v1/stream?symbols=A,B&snapshot=false")
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
		f.logCuts(t)
		t.Fatal(err)
	}
	relaytest.Eventually(t, "the stalled client cut off",
		func() bool { return f.cut(reasonQueueFull)+f.cut(reasonWriteTimeout) >= 1 })
	t.Logf("100 readers got %d quotes each beside a stalled client; worst relay→reader lag %s", want, maxLag)
}

// TestVanishedIdleClientIsNoticedWithinASweep: nobody reads a hijacked
// stream's connection, so the pool's housekeeping peeks at it and notices
// a client that left an idle stream within about a second, long before the
// next heartbeat (an hour here).
func TestVanishedIdleClientIsNoticedWithinASweep(t *testing.T) {
	f := newFixture(t, opts{rate: -1, edit: func(c *Config) { c.SSE.Heartbeat = time.Hour }})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for range 5 {
		r := openSSE(t, ctx, f.URL+"/v1/stream?symbols=A")
		r.Close()
	}
	relaytest.Eventually(t, "every stream ended after its client left", func() bool { return f.api.Clients() == 0 },
		func() string { return fmt.Sprintf("%d streams open", f.api.Clients()) })
	if v := f.cut(reasonClientGone); v != 5 {
		t.Fatalf("client_gone = %v", v)
	}
}

// TestReaderBackFromSlowPathIsNotCut: a reader that pauses until the server's
// socket is full is written by its own goroutine with the write timeout,
// then handed back to the pool's writers; long after that deadline would
// have expired it still gets every quote, in order, and is not cut.
func TestReaderBackFromSlowPathIsNotCut(t *testing.T) {
	const timeout = time.Second
	f := newFixture(t, opts{rate: 2000, smallSendBuffers: true, edit: func(c *Config) {
		c.SSE.WriteTimeout = timeout
		c.SSE.Queue = 1 << 16
	}})
	f.WaitQuotes(t, 1)
	conn, err := net.Dial("tcp", f.Addr)
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
				f.logCuts(t)
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
	for _, r := range []disconnectReason{reasonQueueFull, reasonWriteTimeout, reasonClientGone} {
		if v := f.cut(r); v != 0 {
			t.Fatalf("%s cuts: %v", r, v)
		}
	}
	t.Logf("%d quotes in order across a blocked write; %v blocked writes", n, testutil.ToFloat64(f.api.metrics.sseBlocked))
}
