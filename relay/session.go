package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// closeWait bounds a graceful close handshake with the upstream.
const closeWait = 2 * time.Second

// session is one WebSocket connection of a conn: dialled (after the gate
// and the resolve call), opened by its framing, read by its own reader
// goroutine and written (queued subscribes, pings) by its writer
// goroutine. The conn's owner subscribes and closes it.
type session struct {
	c     *conn
	ws    *websocket.Conn
	fr    framing
	url   string // what was dialled (secrets inside: log RedactURL of it)
	prev  *session
	ids   atomic.Uint64 // {id}
	since time.Time     // when the handshake completed

	pingInterval time.Duration
	readIdle     time.Duration
	release      func() // frees the gate's connection slot

	ready     chan struct{} // closed when the ready frame has arrived
	readyOnce sync.Once
	ended     atomic.Bool // the reader has returned
	quit      chan struct{}
	quitOnce  sync.Once
	cause     atomic.Pointer[error] // why the session was failed from outside the reader
	done      chan struct{}         // closed when reader and writer have returned
	quotes    atomic.Uint64         // quotes published from this session

	// The outbox: subscribe and unsubscribe frames the owner queued,
	// written in order by the session's writer within subscribe_rate.
	outMu   sync.Mutex
	outQ    [][]byte
	outWake chan struct{} // capacity 1

	// Owned by the conn's owner goroutine.
	idSyms       map[uint64]*symbol
	subscribedAt map[*symbol]time.Time
	announced    bool // the venue announced its end: redial without backoff
	syncing      bool // a ping syncing the handover from prev is in flight (owner's)
	retired      bool // closing or closed: its end needs nothing more
}

// dialResult is what a dial goroutine hands the owner.
type dialResult struct {
	s        *session
	err      error
	handover bool
	gateWait time.Duration
}

// dial connects a new session: the gate, the resolve call, the framing's
// negotiation, the handshake, the framing's open, the ready frame. The
// session's reader and writer run once it returns without error.
func (c *conn) dial(ctx context.Context, prev *session, handover bool) dialResult {
	up := c.up
	cfg := &up.cfg
	res := dialResult{handover: handover}
	var release, dialed func()
	if handover {
		var ok bool
		var err error
		release, dialed, ok, err = up.gate.tryAcquire(ctx)
		if err != nil {
			res.err = err
			return res
		}
		if !ok {
			res.err = fmt.Errorf("no free connection within max_connections %d for the handover", cfg.MaxConnections)
			return res
		}
	} else {
		var err error
		release, dialed, res.gateWait, err = up.gate.acquire(ctx)
		if err != nil {
			res.err = err
			return res
		}
	}
	s, err := c.connect(ctx, prev, release, dialed)
	if err != nil {
		release()
		res.err = err
		return res
	}
	res.s = s
	return res
}

func (c *conn) connect(ctx context.Context, prev *session, release, dialed func()) (*session, error) {
	up := c.up
	cfg := &up.cfg
	fr, err := newFraming(cfg)
	if err != nil {
		return nil, err
	}
	s := &session{
		c: c, fr: fr, prev: prev, release: release, pingInterval: cfg.PingInterval,
		ready: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{}), outWake: make(chan struct{}, 1),
		idSyms: map[uint64]*symbol{}, subscribedAt: map[*symbol]time.Time{},
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	target := up.tmpl.url.renderString(c.urlRef(), escURL)
	if cfg.Resolve != nil {
		var ping time.Duration
		if target, ping, err = up.resolve(dctx); err != nil {
			dialed()
			return nil, err
		}
		if ping > 0 {
			s.pingInterval = ping
		}
	}
	if s.url, err = fr.dialURL(dctx, up.client, up.header, target); err != nil {
		dialed()
		return nil, redactErr(err, target)
	}
	ws, _, err := websocket.Dial(dctx, s.url, &websocket.DialOptions{HTTPClient: up.client, HTTPHeader: up.header})
	dialed()
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("dial %s: %w", RedactURL(s.url), redactErr(err, s.url))
	}
	ws.SetReadLimit(cfg.ReadLimit)
	s.ws, s.since = ws, time.Now()
	info, err := fr.open(dctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%s handshake: %w", cfg.Framing, redactErr(err, s.url))
	}
	s.readIdle = info.readIdle
	if info.pingInterval > 0 {
		s.pingInterval = info.pingInterval
	}
	rules, err := cfg.FrameRules()
	if err != nil {
		ws.CloseNow()
		return nil, err // validated at start; unreachable
	}
	rules.nextID = s.nextID
	if cfg.Ready == nil {
		s.readyOnce.Do(func() { close(s.ready) })
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.read(rules)
	}()
	go func() {
		s.writeLoop()
		<-readDone
		close(s.done)
	}()
	if cfg.Ready != nil {
		t := time.NewTimer(cfg.Ready.Timeout)
		defer t.Stop()
		select {
		case <-s.ready:
		case <-t.C:
			s.fail(fmt.Errorf("no ready frame within %s", cfg.Ready.Timeout))
			<-s.done
			return nil, *s.cause.Load()
		case <-s.done:
			return nil, s.err(errors.New("connection ended before the ready frame"))
		case <-ctx.Done():
			s.closeNow()
			<-s.done
			return nil, context.Cause(ctx)
		}
	}
	return s, nil
}

// urlRef is the ref a per-symbol URL names: the connection's only symbol.
func (c *conn) urlRef() string {
	if m := c.members1(); m != nil {
		return m.ref()
	}
	return ""
}

func (s *session) nextID() uint64 { return s.ids.Add(1) }

// resolve makes the upstream's resolve call and returns the WebSocket URL
// and, when the response says so, the ping interval.
func (up *upstream) resolve(ctx context.Context) (string, time.Duration, error) {
	rc := up.cfg.Resolve
	var body io.Reader
	if rc.Body != "" {
		body = strings.NewReader(rc.Body)
	}
	req, err := http.NewRequestWithContext(ctx, rc.Method, rc.URL, body)
	if err != nil {
		return "", 0, fmt.Errorf("resolve: %w", redactErr(err, rc.URL))
	}
	for k, v := range up.header {
		req.Header[k] = v
	}
	if rc.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := up.client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("resolve %s: %w", RedactURL(rc.URL), redactErr(err, rc.URL))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("resolve %s: reading the response: %w", RedactURL(rc.URL), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", 0, fmt.Errorf("resolve %s: HTTP %s", RedactURL(rc.URL), resp.Status)
	}
	var doc bytes.Buffer
	if err := json.Compact(&doc, raw); err != nil {
		return "", 0, fmt.Errorf("resolve %s: the response is not JSON", RedactURL(rc.URL))
	}
	u, err := up.tmpl.resolve.render(doc.Bytes())
	if err != nil {
		return "", 0, fmt.Errorf("resolve %s: ws_url: %w", RedactURL(rc.URL), err)
	}
	var ping time.Duration
	if up.tmpl.resolvePing != nil {
		if v, ok := lookup(doc.Bytes(), up.tmpl.resolvePing); ok {
			if ms, err := strconv.ParseFloat(strings.Trim(string(v), `"`), 64); err == nil && ms >= 1 && ms < 1e9 {
				ping = time.Duration(ms * float64(time.Millisecond))
			}
		}
	}
	return u, ping, nil
}

// fail ends the session because of err, found outside the reader (a
// missed pong, the ready timeout): the reader then returns err.
func (s *session) fail(err error) {
	s.cause.CompareAndSwap(nil, &err)
	s.closeNow()
}

// err returns why the session failed from outside, or readErr.
func (s *session) err(readErr error) error {
	if c := s.cause.Load(); c != nil {
		return *c
	}
	return readErr
}

// closeNow drops the connection without a close handshake.
func (s *session) closeNow() {
	s.quitOnce.Do(func() { close(s.quit) })
	s.ws.CloseNow()
}

// close ends the session with a close handshake (bounded by closeWait),
// after sending frames (unsubscribes), and waits for its goroutines.
func (s *session) close(code websocket.StatusCode, reason string, frames [][]byte) {
	for _, f := range frames {
		wctx, cancel := context.WithTimeout(context.Background(), closeWait)
		_ = s.ws.Write(wctx, websocket.MessageText, f)
		cancel()
	}
	s.quitOnce.Do(func() { close(s.quit) })
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = s.ws.Close(code, reason)
	}()
	t := time.NewTimer(closeWait)
	select {
	case <-closed:
	case <-t.C:
		s.ws.CloseNow()
		<-closed
	}
	t.Stop()
	<-s.done
}

// enqueue queues a frame for the writer; it never blocks.
func (s *session) enqueue(frame []byte) {
	s.outMu.Lock()
	s.outQ = append(s.outQ, frame)
	s.outMu.Unlock()
	select {
	case s.outWake <- struct{}{}:
	default:
	}
}

// writeLoop is the session's writer: it sends the queued frames in order,
// at most subscribe_rate of them per window (Deribit cuts a connection
// that subscribes faster), and every ping interval the app ping, the
// framing's keepalive and a WebSocket ping (no pong within ping_timeout
// fails the session), until the session ends.
func (s *session) writeLoop() {
	cfg := &s.c.up.cfg
	ping := time.NewTicker(s.pingInterval)
	defer ping.Stop()
	var pace *time.Timer
	var paceC <-chan time.Time
	defer func() {
		if pace != nil {
			pace.Stop()
		}
	}()
	var sent []time.Time // the last subscribe_rate.N writes
	var buf []byte
	for {
		select {
		case <-s.quit:
			return
		case <-s.outWake:
		case <-paceC:
			paceC = nil
		case <-ping.C:
			if !s.pingOnce(&buf) {
				return
			}
			continue
		}
		for paceC == nil {
			s.outMu.Lock()
			if len(s.outQ) == 0 {
				s.outMu.Unlock()
				break
			}
			if rate := cfg.SubscribeRate; rate.N > 0 && len(sent) == rate.N {
				if d := time.Until(sent[0].Add(rate.Per)); d > 0 {
					s.outMu.Unlock()
					if pace == nil {
						pace = time.NewTimer(d)
					} else {
						pace.Reset(d)
					}
					paceC = pace.C
					break
				}
				sent = sent[1:]
			}
			f := s.outQ[0]
			s.outQ[0] = nil
			s.outQ = s.outQ[1:]
			s.outMu.Unlock()
			if err := s.write(f); err != nil {
				s.fail(fmt.Errorf("subscribe: %w", err))
				return
			}
			if cfg.SubscribeRate.N > 0 {
				// Stamped once the frame is out, not before: a slow
				// write must not shorten the wait of the frame N later.
				sent = append(sent, time.Now())
			}
		}
	}
}

// write sends one rendered frame through the framing. A session that is
// dropped meanwhile fails the write at once.
func (s *session) write(payload []byte) error {
	wctx, cancel := context.WithTimeout(context.Background(), s.c.up.cfg.PingTimeout)
	defer cancel()
	return s.ws.Write(wctx, websocket.MessageText, s.fr.encode(nil, payload))
}

// pingOnce sends the app ping, the framing's keepalive and a WebSocket
// ping, and waits for its pong; it fails the session and reports false
// when one of them fails.
func (s *session) pingOnce(buf *[]byte) bool {
	cfg := &s.c.up.cfg
	if cfg.AppPing != "" {
		*buf = s.c.up.tmpl.appPing.render((*buf)[:0], &tmplArgs{nextID: s.nextID}, escJSON)
		if err := s.write(*buf); err != nil {
			s.fail(fmt.Errorf("app ping: %w", err))
			return false
		}
	}
	if ka := s.fr.keepalive(); ka != nil {
		if err := s.write(ka); err != nil {
			s.fail(fmt.Errorf("keepalive: %w", err))
			return false
		}
	}
	pctx, cancel := context.WithTimeout(context.Background(), cfg.PingTimeout)
	err := s.ws.Ping(pctx) // returns at once when the connection closes
	cancel()
	select {
	case <-s.quit:
		return false
	default:
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			s.fail(fmt.Errorf("no pong within %s", cfg.PingTimeout))
		} else {
			s.fail(fmt.Errorf("ping: %w", err))
		}
		return false
	}
	return true
}
