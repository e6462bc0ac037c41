package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wsrelay/wsrelay/relay/relaytest"
)

func long() bool { return os.Getenv("WSRELAY_LONG") != "" }

// rawStream opens an SSE stream on a bare TCP connection (so that the test
// can cut it at any byte) and returns the connection and a reader positioned
// after the response headers.
func rawStream(addr, path string, hdr ...string) (net.Conn, *bufio.Reader, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\n"
	for i := 0; i+1 < len(hdr); i += 2 {
		req += hdr[i] + ": " + hdr[i+1] + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	c.SetReadDeadline(time.Time{})
	return c, br, nil
}

// TestChurningClientsLeaveNothingBehind opens and drops streams over and
// over (some cut while the server writes) and checks that no stream or
// goroutine is left behind.
func TestChurningClientsLeaveNothingBehind(t *testing.T) {
	cycles := 2000
	if long() {
		cycles = 10000
	}
	f := newFixture(t, opts{rate: 400})
	f.WaitQuotes(t, 2)
	addr := f.Addr
	baseG := runtime.NumGoroutine()
	var next, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(cycles) {
				c, br, err := rawStream(addr, "/v1/stream?symbols=A,B")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				switch rand.IntN(3) {
				case 0: // gone at once, while the snapshot is being written
				case 1: // a few events, then a hard reset mid-stream
					for range rand.IntN(20) {
						br.ReadString('\n')
					}
					c.(*net.TCPConn).SetLinger(0)
				default: // a few events, then a clean close
					for range rand.IntN(20) {
						br.ReadString('\n')
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("%d of %d connects failed, the first with %v", failed.Load(), cycles, *firstErr.Load())
	}
	relaytest.Eventually(t, "no stream or goroutine left after the churn",
		func() bool { return f.api.Clients() == 0 && runtime.NumGoroutine() <= baseG+2 },
		func() string {
			return fmt.Sprintf("%d streams open, %d goroutines (baseline %d)", f.api.Clients(), runtime.NumGoroutine(), baseG)
		})
	t.Logf("%d connect/disconnect cycles in %s; streams 0, goroutines %d (baseline %d)", cycles, took.Round(time.Millisecond), runtime.NumGoroutine(), baseG)
}

// TestClientsCutAtOnceAllResumeExactly: many clients lose their streams at
// once and all resume concurrently with Last-Event-ID; every one continues
// exactly where it stopped.
func TestClientsCutAtOnceAllResumeExactly(t *testing.T) {
	n := 300
	if long() {
		n = 1000
	}
	f := newFixture(t, opts{rate: 200})
	f.WaitQuotes(t, 2)
	addr := f.Addr
	type state struct {
		lastID  string
		lastSeq map[string]uint64
	}
	states := make([]*state, n)
	readQuotes := func(br *bufio.Reader, st *state, k int) error {
		var id string
		for got := 0; got < k; {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if v, ok := cutPrefix(line, "id: "); ok {
				id = v
			}
			if v, ok := cutPrefix(line, "data: "); ok {
				var q quoteBody
				if json.Unmarshal([]byte(v), &q) != nil || q.Seq == 0 {
					continue
				}
				if l, ok := st.lastSeq[q.Symbol]; ok && q.Seq != l+1 {
					return fmt.Errorf("%s seq %d after %d", q.Symbol, q.Seq, l)
				}
				st.lastSeq[q.Symbol] = q.Seq
				st.lastID = id
				got++
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	conns := make([]net.Conn, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, br, err := rawStream(addr, "/v1/stream?symbols=A,B")
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			states[i] = &state{lastSeq: map[string]uint64{}}
			if err := readQuotes(br, states[i], 3); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cut := f.Listener.CutAll() // the mass disconnect, from the server side
	time.Sleep(100 * time.Millisecond)
	errs = make(chan error, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, br, err := rawStream(addr, "/v1/stream?symbols=A,B", "Last-Event-ID", states[i].lastID)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := readQuotes(br, states[i], 30); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d streams cut at once (%d connections); %d concurrent resumes, each continued exactly (%s)", n, cut, n, time.Since(start).Round(time.Millisecond))
	if v := testutil.ToFloat64(f.api.metrics.sseResets); v != 0 {
		t.Fatalf("%v resets", v)
	}
}

func cutPrefix(line, p string) (string, bool) {
	if len(line) >= len(p) && line[:len(p)] == p {
		return line[len(p) : len(line)-1], true
	}
	return "", false
}

// TestSlowReadersOfEveryKindAreCut: a client that never reads, one that
// reads a byte a second and one that reads in bursts are each cut off with
// a counted reason; 50 normal readers get every quote meanwhile.
func TestSlowReadersOfEveryKindAreCut(t *testing.T) {
	f := newFixture(t, opts{rate: 300, smallSendBuffers: true, edit: func(c *Config) {
		// Margins far above scheduling delays of the 50 healthy readers
		// (a 2-core machine under 4x CPU oversubscription starved one for
		// over a second); the slow ones exceed them by design (bursts
		// pause 3 s, the queue holds 3.4 s of quotes).
		c.SSE.WriteTimeout = 2 * time.Second
		c.SSE.Queue = 2048
	}})
	f.WaitQuotes(t, 2)
	addr := f.Addr
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var slow sync.WaitGroup
	slowReader := func(name string, read func(c net.Conn, br *bufio.Reader)) {
		c, br, err := rawStream(addr, "/v1/stream?symbols=A,B")
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(4096)
		slow.Add(1)
		go func() {
			defer slow.Done()
			defer c.Close()
			read(c, br)
		}()
	}
	slowReader("never", func(c net.Conn, _ *bufio.Reader) { <-ctx.Done() })
	slowReader("trickle", func(c net.Conn, br *bufio.Reader) {
		for ctx.Err() == nil {
			if _, err := br.ReadByte(); err != nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	})
	slowReader("bursts", func(c net.Conn, br *bufio.Reader) {
		buf := make([]byte, 8192)
		for ctx.Err() == nil {
			if _, err := br.Read(buf); err != nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(3 * time.Second):
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, br, err := rawStream(addr, "/v1/stream?symbols=A,B&snapshot=false")
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			last := map[string]uint64{}
			for got := 0; got < 600; {
				line, err := br.ReadString('\n')
				if err != nil {
					errs <- err
					return
				}
				if v, ok := cutPrefix(line, "data: "); ok {
					var q quoteBody
					json.Unmarshal([]byte(v), &q)
					if l, ok := last[q.Symbol]; ok && q.Seq != l+1 {
						errs <- fmt.Errorf("%s seq %d after %d", q.Symbol, q.Seq, l)
						return
					}
					last[q.Symbol] = q.Seq
					got++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cuts := func() float64 { return f.cut(reasonWriteTimeout) + f.cut(reasonQueueFull) }
	relaytest.Eventually(t, "the 3 slow readers cut off", func() bool { return cuts() >= 3 },
		func() string { return fmt.Sprintf("%v cut", cuts()) })
	t.Logf("slow readers cut: write_timeout=%v queue_full=%v", f.cut(reasonWriteTimeout), f.cut(reasonQueueFull))
	cancel()
	slow.Wait()
}
