package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/relaytest"
)

// The writer pool on its own: a broker, a pool and real TCP connections
// over loopback (with kernel buffers, so that a client that stops reading
// fills them as a real one does). Events are written in a line format of
// the test's, not SSE: the pool does not care.

// testPool is a pool and the broker it delivers from.
type testPool struct {
	*pool
	broker *relay.Broker
}

func newTestPool(t *testing.T, cfg poolConfig) *testPool {
	t.Helper()
	b, err := relay.NewBroker(relay.BrokerConfig{History: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if _, err := b.AddSymbol("A"); err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = newMetrics()
	cfg.Keepalive = []byte("keepalive\n")
	cfg.Append = func(dst []byte, batch []*relay.Event) []byte {
		for _, ev := range batch {
			switch ev.Kind {
			case relay.KindQuote:
				dst = fmt.Appendf(dst, "%s %d %s\n", ev.Symbol, ev.Seq, strings.Repeat("x", len(ev.JSON)/4))
			default:
				dst = fmt.Appendf(dst, "%s\n", ev.JSON)
			}
		}
		return dst
	}
	p := &testPool{pool: newPool(cfg), broker: b}
	t.Cleanup(func() {
		if err := p.close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return p
}

// client is the client end of a stream.
type client struct {
	conn     *net.TCPConn
	r        *bufio.Reader
	released atomic.Bool
	sub      *relay.Subscription
}

// open connects a client over loopback and adds its server end to the
// pool with a subscription to A; first is what the pool writes first.
// readBuf and sendBuf (0 = the kernel's) size the kernel buffers.
func (p *testPool) open(t *testing.T, queue, readBuf, sendBuf int) *client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	c := &client{conn: cc.(*net.TCPConn)}
	t.Cleanup(func() { c.conn.Close() })
	if readBuf > 0 {
		c.conn.SetReadBuffer(readBuf)
	}
	if sendBuf > 0 {
		sc.(*net.TCPConn).SetWriteBuffer(sendBuf)
	}
	c.r = bufio.NewReader(c.conn)
	c.sub, err = p.broker.Subscribe([]string{"A"}, relay.SubscribeOptions{Queue: queue})
	if err != nil {
		t.Fatal(err)
	}
	p.add(newHijackedConn(sc), c.sub, "test", func() {
		if c.released.Swap(true) {
			t.Error("released twice")
		}
	}, []byte("hello\n"))
	return c
}

// line reads one line, failing the test after 10 s.
func (c *client) line(t *testing.T) string {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSuffix(l, "\n")
}

// end reads until the server closes the connection.
func (c *client) end(t *testing.T) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c.r); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
}

func (p *testPool) publish(t *testing.T, n, size int) {
	t.Helper()
	data := []byte(`"` + strings.Repeat("x", size) + `"`)
	for range n {
		if _, err := p.broker.Publish("A", data, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

func (p *testPool) cut(r disconnectReason) float64 { return testutil.ToFloat64(p.metrics.cuts[r]) }

// TestPoolDeliversEveryEventInOrder: each stream gets its first bytes,
// then every event in order; close ends every stream cleanly, counted as
// shutdown, releases each once and leaves no goroutine (goleak).
func TestPoolDeliversEveryEventInOrder(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, poolConfig{Heartbeat: time.Hour})
	clients := []*client{p.open(t, 1<<14, 0, 0), p.open(t, 1<<14, 0, 0), p.open(t, 1<<14, 0, 0)}
	const n = 3000
	p.publish(t, n, 40)
	for i, c := range clients {
		if l := c.line(t); l != "hello" {
			t.Fatalf("client %d began with %q", i, l)
		}
		for seq := 1; seq <= n; seq++ {
			if l := c.line(t); !strings.HasPrefix(l, "A "+strconv.Itoa(seq)+" ") {
				t.Fatalf("client %d: %q, want seq %d", i, l, seq)
			}
		}
	}
	if p.len() != 3 {
		t.Fatalf("%d streams, want 3", p.len())
	}
	if err := p.close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.end(t)
		if !c.released.Load() || !errors.Is(c.sub.Err(), relay.ErrClosed) {
			t.Fatalf("after close: released %v, subscription %v", c.released.Load(), c.sub.Err())
		}
	}
	if p.len() != 0 || p.cut(reasonShutdown) != 3 || testutil.ToFloat64(p.metrics.sseClients) != 0 {
		t.Fatalf("after close: %d streams, %v shutdowns, gauge %v", p.len(), p.cut(reasonShutdown), testutil.ToFloat64(p.metrics.sseClients))
	}
	if p.spawn(func() {}) {
		t.Fatal("a closed pool started a goroutine")
	}
}

// TestPoolCutsAStalledClientAndServesTheOthers: a client that stops
// reading fills its socket; its stream is written by a goroutine of its
// own and cut by the write timeout, while another client gets every event.
func TestPoolCutsAStalledClientAndServesTheOthers(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, poolConfig{Heartbeat: time.Hour, WriteTimeout: 300 * time.Millisecond})
	stalled := p.open(t, 1<<16, 4096, 4096)
	healthy := p.open(t, 1<<16, 0, 0)
	const n = 2000
	done := make(chan error, 1)
	go func() {
		c := healthy
		c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		c.r.ReadString('\n') // hello
		for seq := 1; seq <= n; seq++ {
			l, err := c.r.ReadString('\n')
			if err != nil || !strings.HasPrefix(l, "A "+strconv.Itoa(seq)+" ") {
				done <- fmt.Errorf("healthy client: %q %v, want seq %d", l, err, seq)
				return
			}
		}
		done <- nil
	}()
	p.publish(t, n, 400)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	relaytest.Eventually(t, "the stalled client cut by the write timeout", func() bool { return p.cut(reasonWriteTimeout) == 1 })
	if !stalled.released.Load() || testutil.ToFloat64(p.metrics.sseBlocked) < 1 || p.len() != 1 {
		t.Fatalf("released %v, blocked writes %v, streams %d", stalled.released.Load(), testutil.ToFloat64(p.metrics.sseBlocked), p.len())
	}
}

// TestPoolCutsAClientThatFellQueueBehind: while a stream's socket is full
// its events wait in the subscription; past its queue the subscription is
// cut, and once the client reads again the stream ends as queue_full.
func TestPoolCutsAClientThatFellQueueBehind(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, poolConfig{Heartbeat: time.Hour, WriteTimeout: time.Minute})
	c := p.open(t, 8, 4096, 4096)
	relaytest.Eventually(t, "a blocked write", func() bool {
		p.publish(t, 1, 400)
		return testutil.ToFloat64(p.metrics.sseBlocked) >= 1
	})
	p.publish(t, 20, 400) // more than the queue of 8, while the write waits
	if !errors.Is(c.sub.Err(), relay.ErrSlowConsumer) {
		t.Fatalf("subscription: %v", c.sub.Err())
	}
	c.end(t) // reading again lets the blocked write finish
	relaytest.Eventually(t, "the stream ended", func() bool { return c.released.Load() })
	if p.cut(reasonQueueFull) != 1 {
		p.logCuts(t)
		t.Fatal("not counted as queue_full")
	}
}

// TestPoolKeepsIdleStreamsAlive: an idle stream gets a keepalive every
// heartbeat.
func TestPoolKeepsIdleStreamsAlive(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, poolConfig{Heartbeat: 50 * time.Millisecond})
	c := p.open(t, 0, 0, 0)
	if l := c.line(t); l != "hello" {
		t.Fatalf("first %q", l)
	}
	for range 3 {
		if l := c.line(t); l != "keepalive" {
			t.Fatalf("got %q, want a keepalive", l)
		}
	}
}

// TestPoolNoticesAClientThatLeftAnIdleStream: nobody reads a stream's
// connection, so housekeeping peeks at quiet ones: a client that left is
// noticed within a sweep, not at the next heartbeat.
func TestPoolNoticesAClientThatLeftAnIdleStream(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, poolConfig{Heartbeat: time.Hour})
	c := p.open(t, 0, 0, 0)
	c.line(t)
	c.conn.Close()
	relaytest.Eventually(t, "the gone client noticed", func() bool { return c.released.Load() })
	if p.cut(reasonClientGone) != 1 {
		p.logCuts(t)
		t.Fatal("not counted as client_gone")
	}
}

// TestPoolEndsAStreamWhoseSymbolsWereRemoved: the removal's status event
// is delivered, then the stream ends as symbols_removed.
func TestPoolEndsAStreamWhoseSymbolsWereRemoved(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, poolConfig{Heartbeat: time.Hour})
	c := p.open(t, 0, 0, 0)
	c.line(t)
	if err := p.broker.RemoveSymbol("A"); err != nil {
		t.Fatal(err)
	}
	if l := c.line(t); !strings.Contains(l, `"state":"removed"`) {
		t.Fatalf("got %q, want the removal's status", l)
	}
	c.end(t)
	relaytest.Eventually(t, "the stream counted", func() bool { return p.cut(reasonSymbolsRemoved) == 1 })
}

// TestPoolRefusesStreamsOnceClosing: a stream added after close is ended
// at once, its subscription closed and its admission released.
func TestPoolRefusesStreamsOnceClosing(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, poolConfig{})
	if err := p.close(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := p.open(t, 0, 0, 0)
	c.end(t)
	if !c.released.Load() || !errors.Is(c.sub.Err(), relay.ErrClosed) || p.len() != 0 || p.cut(reasonShutdown) != 1 {
		t.Fatalf("released %v, subscription %v, streams %d, shutdowns %v", c.released.Load(), c.sub.Err(), p.len(), p.cut(reasonShutdown))
	}
}

func (p *testPool) logCuts(t *testing.T) {
	t.Helper()
	for _, r := range disconnectReasons {
		t.Logf("%s=%v", r, p.cut(r))
	}
}
