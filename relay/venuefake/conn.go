package venuefake

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// queueLen bounds a connection's outbound queue. A client that lets it
// fill is closed ("slow consumer"), as venues cut consumers that cannot
// keep up (Gate.io maintainer, EXCHANGES.md §9.6); the exact bound of each
// venue is not published, this one is generous.
const queueLen = 4096

// writeTimeout bounds one frame's write.
const writeTimeout = 5 * time.Second

// outFrame is one entry of the outbound queue: a frame, or the close.
type outFrame struct {
	b      []byte
	close  bool
	code   websocket.StatusCode
	reason string
}

// conn is one client connection. Its read goroutine (Server.ServeHTTP)
// owns it; the writer and the keepalive goroutines belong to its wg and
// end with ctx. send and close are safe from any goroutine.
type conn struct {
	s     *Server
	ws    *websocket.Conn
	ip    string
	state any // the venue's per-connection state, from handshake

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	out    chan outFrame
	opened time.Time

	mu         sync.Mutex
	subs       map[streamKey]struct{}
	subscribed bool // a subscription succeeded at least once
	in         rateCounter

	closeOnce sync.Once
	closing   atomic.Bool
	lastOut   atomic.Int64 // unix ns of the last frame written
	lastIn    atomic.Int64 // unix ns of the last client frame (data, ping or pong)
}

// newConn prepares a connection; it is usable (send, close) before run.
func newConn(s *Server, ws *websocket.Conn, ip string, state any) *conn {
	c := &conn{s: s, ws: ws, ip: ip, state: state, subs: map[streamKey]struct{}{}}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.out = make(chan outFrame, queueLen)
	c.opened = time.Now()
	c.lastOut.Store(c.opened.UnixNano())
	c.lastIn.Store(c.opened.UnixNano())
	c.in = rateCounter{n: s.set.inLimit, w: s.set.inWindow}
	ws.SetReadLimit(s.set.readLimit)
	return c
}

// run serves the connection until it ends, then releases everything it
// holds.
func (c *conn) run() {
	s := c.s
	defer func() {
		c.cancel()
		c.wg.Wait()
		s.unsubscribeAll(c)
		c.ws.CloseNow()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.goConn(c.writer)
	c.startRules()
	s.v.opened(c)
	for {
		typ, p, err := c.ws.Read(s.ctx)
		if err != nil {
			return
		}
		if c.closing.Load() {
			continue // draining until the peer answers our close
		}
		c.lastIn.Store(time.Now().UnixNano())
		s.logRecord(&s.received, string(p))
		if !c.countIn() {
			continue
		}
		s.v.message(c, typ, p)
	}
}

// goConn runs fn on a goroutine owned by the connection.
func (c *conn) goConn(fn func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.ctx)
	}()
}

// after runs fn once, d after now, unless the connection ends first.
func (c *conn) after(d time.Duration, fn func()) {
	c.goConn(func(ctx context.Context) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			fn()
		}
	})
}

// every runs fn every d until the connection ends.
func (c *conn) every(d time.Duration, fn func()) {
	c.goConn(func(ctx context.Context) {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if c.closing.Load() {
					return
				}
				fn()
			}
		}
	})
}

// writer writes the queue in order; the venue's compression happens here.
func (c *conn) writer(ctx context.Context) {
	typ := websocket.MessageText
	if c.s.set.gzip {
		typ = websocket.MessageBinary
	}
	for {
		var f outFrame
		select {
		case <-ctx.Done():
			return
		case f = <-c.out:
		}
		if f.close {
			// Close writes the close frame and waits (bounded) for the
			// peer's; the read loop then ends.
			_ = c.ws.Close(f.code, f.reason)
			return
		}
		b := f.b
		if c.s.set.gzip {
			b = gzipped(b)
		}
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := c.ws.Write(wctx, typ, b)
		cancel()
		if err != nil {
			c.ws.CloseNow()
			return
		}
		c.lastOut.Store(time.Now().UnixNano())
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// send queues one frame (nil is ignored). A full queue closes the
// connection: the fake never blocks on a client.
func (c *conn) send(b []byte) { c.trySend(b) }

// trySend is send reporting whether b was queued.
func (c *conn) trySend(b []byte) bool {
	if b == nil || c.closing.Load() {
		return false
	}
	select {
	case c.out <- outFrame{b: b}:
		return true
	default:
		c.closeNow("slow consumer")
		return false
	}
}

// sendJSON queues v marshalled (struct field order is the wire order).
func (c *conn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.s.log.Error("marshal", "venue", c.s.name, "err", err)
		return
	}
	c.send(b)
}

// close ends the connection with a close frame after the frames already
// queued (an error frame sent just before reaches the client first). The
// first reason wins and is recorded in Server.Closes.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.s.logRecord(&c.s.closes, reason)
		c.closing.Store(true)
		select {
		case c.out <- outFrame{close: true, code: code, reason: reason}:
		default:
			c.ws.CloseNow()
		}
	})
}

// closeNow drops the connection without a close frame (what a venue's
// load balancer does to a dead or slow peer).
func (c *conn) closeNow(reason string) {
	c.closeOnce.Do(func() {
		c.s.logRecord(&c.s.closes, reason)
		c.closing.Store(true)
		c.ws.CloseNow()
	})
}

// touch counts as server activity for the idle rule, without a frame.
func (c *conn) touch() { c.lastOut.Store(time.Now().UnixNano()) }

// control is called for every ping or pong frame the client sends.
func (c *conn) control() {
	c.lastIn.Store(time.Now().UnixNano())
	if c.s.set.inControl {
		c.countIn()
	}
}

// countIn counts one client message toward the inbound rate and closes
// the connection past it; it reports whether the message may be handled.
func (c *conn) countIn() bool {
	if c.s.set.inLimit <= 0 {
		return true
	}
	c.mu.Lock()
	ok := c.in.add(time.Now())
	c.mu.Unlock()
	if !ok {
		c.close(c.s.set.inCode, c.s.set.inReason)
	}
	return ok
}

// markSubscribed counts a subscription without a stream (Coinbase's
// heartbeat channel) for the subscribe deadline.
func (c *conn) markSubscribed() {
	c.mu.Lock()
	c.subscribed = true
	c.mu.Unlock()
}

// hasSubscribed reports whether a subscription ever succeeded on c.
func (c *conn) hasSubscribed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subscribed
}

// subscriptions returns the streams c subscribes to now.
func (c *conn) subscriptions() []streamKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]streamKey, 0, len(c.subs))
	for k := range c.subs {
		out = append(out, k)
	}
	return out
}

// startRules starts the generic keepalive rules of the venue's settings.
func (c *conn) startRules() {
	set := c.s.set
	if set.wsPing > 0 {
		// Server WebSocket pings; each must be answered within the
		// deadline by a pong with the same payload (coder/websocket's
		// Ping matches the payload: an unsolicited pong does not count).
		c.every(set.wsPing, func() {
			c.goConn(func(ctx context.Context) {
				pctx, cancel := context.WithTimeout(ctx, set.wsPongDeadline)
				defer cancel()
				if err := c.ws.Ping(pctx); err != nil && ctx.Err() == nil {
					c.close(websocket.StatusPolicyViolation, "pong timeout")
				}
			})
		})
	}
	if set.idle > 0 {
		c.goConn(func(ctx context.Context) {
			t := time.NewTimer(set.idle)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				left := set.idle - time.Since(time.Unix(0, c.lastOut.Load()))
				if left <= 0 {
					c.close(c.s.set.idleCode, c.s.set.idleReason)
					return
				}
				t.Reset(left)
			}
		})
	}
	if set.subscribeBy > 0 {
		c.after(set.subscribeBy, func() {
			if !c.hasSubscribed() {
				c.close(websocket.StatusPolicyViolation, "no subscription")
			}
		})
	}
	if set.maxAge > 0 {
		c.after(set.maxAge, func() { c.close(websocket.StatusGoingAway, "connection age") })
	}
}
