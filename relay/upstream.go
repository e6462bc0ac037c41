package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// closeWait bounds a graceful close handshake with the upstream.
const closeWait = 2 * time.Second

// symConn owns the upstream connection of one symbol: one goroutine runs
// dial → subscribe → read/ping → backoff until stopped; a reader goroutine
// per connection reads every frame.
type symConn struct {
	r   *Relay
	up  *upstream
	sym Symbol
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	state     atomic.Pointer[State]
	lastQuote atomic.Int64 // Unix ns
	frames    atomic.Uint64
	quotes    atomic.Uint64
	ignored   atomic.Uint64
	reconns   atomic.Uint64
	drops     atomic.Uint64
	connected atomic.Bool
	everLive  atomic.Bool

	mu          sync.Mutex // guards state changes and the last error
	lastErr     string
	lastErrTime time.Time
}

func newSymConn(r *Relay, up *upstream, sym Symbol) *symConn {
	c := &symConn{r: r, up: up, sym: sym, done: make(chan struct{})}
	c.log = r.log.With("upstream", up.cfg.Name, "symbol", sym.Name)
	c.ctx, c.cancel = context.WithCancelCause(r.ctx)
	st := StateConnecting
	c.state.Store(&st)
	return c
}

func (c *symConn) stop(cause error) { c.cancel(cause) }

func (c *symConn) status() SymbolStatus {
	c.mu.Lock()
	le, let := c.lastErr, c.lastErrTime
	c.mu.Unlock()
	var lq time.Time
	if ns := c.lastQuote.Load(); ns != 0 {
		lq = time.Unix(0, ns)
	}
	return SymbolStatus{
		Symbol: c.sym.Name, Upstream: c.up.cfg.Name, State: *c.state.Load(),
		Connected: c.connected.Load(), EverLive: c.everLive.Load(), LastQuoteAt: lq,
		Frames: c.frames.Load(), Quotes: c.quotes.Load(), Ignored: c.ignored.Load(),
		Reconnects: c.reconns.Load(), Drops: c.drops.Load(),
		LastError: le, LastErrorAt: let,
		Preset: c.up.cfg.Preset, Channel: c.up.cfg.Channel, Fields: c.up.cfg.Fields,
	}
}

// setState records a state change and publishes it as a status event.
func (c *symConn) setState(s State, reason string) {
	c.mu.Lock()
	if *c.state.Load() == s {
		c.mu.Unlock()
		return
	}
	c.state.Store(&s)
	c.mu.Unlock()
	if s == StateLive {
		c.everLive.Store(true)
	}
	c.log.Debug("state", "state", s, "reason", reason)
	c.r.b.PublishStatus(c.sym.Name, s, reason, time.Now())
}

func (c *symConn) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err.Error()
	c.lastErrTime = time.Now()
	c.mu.Unlock()
}

// BackoffDelay returns the delay before reconnect attempt n (0-based): drawn
// uniformly (full jitter) from [min, min(max, min·2ⁿ)]. rnd(k) must return a
// value in [0, k).
func BackoffDelay(min, max time.Duration, n int, rnd func(int64) int64) time.Duration {
	if min <= 0 {
		min = time.Millisecond
	}
	if max < min {
		max = min
	}
	ceil := max
	if n < 62 && min<<n > 0 && min<<n < max {
		ceil = min << n
	}
	if ceil <= min {
		return min
	}
	return min + time.Duration(rnd(int64(ceil-min)+1))
}

// run is the connection's owner loop.
func (c *symConn) run() {
	defer close(c.done)
	cfg := &c.up.cfg
	attempt := 0
	sessions := 0
	for {
		c.setState(StateConnecting, "dialling")
		connectedAt, err := c.session(sessions)
		if !connectedAt.IsZero() {
			sessions++
			c.drops.Add(1)
			if time.Since(connectedAt) >= StableAfter {
				attempt = 0
			}
		}
		if c.ctx.Err() != nil {
			return
		}
		c.setErr(err)
		delay := BackoffDelay(cfg.Backoff.Min, cfg.Backoff.Max, attempt, rand.Int64N)
		attempt++
		level := slog.LevelInfo
		if code := websocket.CloseStatus(err); code == websocket.StatusUnsupportedData || code == websocket.StatusPolicyViolation {
			level = slog.LevelWarn
			err = fmt.Errorf("upstream refused the subscription: %w", err)
		}
		c.log.Log(c.ctx, level, "upstream connection ended; reconnecting", "err", err, "backoff", delay, "attempt", attempt)
		c.setState(StateBackoff, err.Error())
		t := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session runs one connection: dial, subscribe, read until it ends. It
// returns when the connection was established (zero if never) and why it
// ended.
func (c *symConn) session(prior int) (time.Time, error) {
	cfg := &c.up.cfg
	dctx, cancel := context.WithTimeout(c.ctx, cfg.DialTimeout)
	ws, _, err := websocket.Dial(dctx, cfg.URL, &websocket.DialOptions{
		HTTPClient: c.up.client,
		HTTPHeader: c.up.header,
	})
	cancel()
	if err != nil {
		if c.ctx.Err() != nil {
			return time.Time{}, context.Cause(c.ctx)
		}
		return time.Time{}, fmt.Errorf("dial %s: %w", RedactURL(cfg.URL), redactErr(err, cfg.URL))
	}
	connectedAt := time.Now()
	if prior > 0 {
		c.reconns.Add(1)
	}
	c.connected.Store(true)
	defer c.connected.Store(false)
	ws.SetReadLimit(cfg.ReadLimit)

	wctx, cancel := context.WithTimeout(c.ctx, cfg.PingTimeout)
	err = ws.Write(wctx, websocket.MessageText, []byte(ExpandTemplate(cfg.Subscribe, c.sym.RefOrName())))
	cancel()
	if err != nil {
		ws.CloseNow()
		return connectedAt, fmt.Errorf("subscribe: %w", err)
	}
	c.log.Debug("subscribed")
	subscribedAt := time.Now()

	readErr := make(chan error, 1)
	go func() { readErr <- c.read(ws) }()

	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	staleEvery := min(max(cfg.StaleAfter/10, 10*time.Millisecond), time.Second)
	staleTick := time.NewTicker(staleEvery)
	defer staleTick.Stop()

	for {
		select {
		case <-c.ctx.Done():
			c.closeGracefully(ws, readErr)
			return connectedAt, context.Cause(c.ctx)
		case err := <-readErr:
			ws.CloseNow()
			return connectedAt, err
		case <-ping.C:
			if cfg.AppPing != "" {
				wctx, cancel := context.WithTimeout(c.ctx, cfg.PingTimeout)
				err := ws.Write(wctx, websocket.MessageText, []byte(cfg.AppPing))
				cancel()
				if err != nil && c.ctx.Err() == nil {
					ws.CloseNow()
					<-readErr
					return connectedAt, fmt.Errorf("app ping: %w", err)
				}
			}
			pctx, cancel := context.WithTimeout(c.ctx, cfg.PingTimeout)
			err := ws.Ping(pctx)
			cancel()
			if err != nil && c.ctx.Err() == nil {
				ws.CloseNow()
				rerr := <-readErr
				if errors.Is(err, context.DeadlineExceeded) {
					return connectedAt, fmt.Errorf("no pong within %s", cfg.PingTimeout)
				}
				return connectedAt, fmt.Errorf("ping: %w (read: %v)", err, rerr)
			}
		case now := <-staleTick.C:
			last := subscribedAt
			if ns := c.lastQuote.Load(); ns > subscribedAt.UnixNano() {
				last = time.Unix(0, ns)
			}
			if quiet := now.Sub(last); quiet >= cfg.StaleAfter {
				if st := *c.state.Load(); st != StateStale {
					reason := fmt.Sprintf("no quote for %s", quiet.Truncate(time.Millisecond))
					c.setState(StateStale, reason)
					if cfg.ReconnectOnStale {
						ws.CloseNow()
						<-readErr
						return connectedAt, errors.New(reason)
					}
				}
			}
		}
	}
}

// closeGracefully ends the connection with 1000 (symbol removed, after the
// unsubscribe frame) or 1001 (shutdown), bounded by closeWait.
func (c *symConn) closeGracefully(ws *websocket.Conn, readErr <-chan error) {
	cfg := &c.up.cfg
	code, reason := websocket.StatusGoingAway, "relay shutting down"
	if errors.Is(context.Cause(c.ctx), errRemoved) {
		code, reason = websocket.StatusNormalClosure, "unsubscribed"
		if cfg.Unsubscribe != "" {
			wctx, cancel := context.WithTimeout(context.Background(), closeWait)
			_ = ws.Write(wctx, websocket.MessageText, []byte(ExpandTemplate(cfg.Unsubscribe, c.sym.RefOrName())))
			cancel()
		}
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = ws.Close(code, reason)
	}()
	t := time.NewTimer(closeWait)
	select {
	case <-closed:
	case <-t.C:
		ws.CloseNow()
		<-closed
	}
	t.Stop()
	<-readErr
}

// read reads frames until the connection fails; it publishes quotes and
// answers app-level pings. It returns why reading stopped.
func (c *symConn) read(ws *websocket.Conn) error {
	cfg := &c.up.cfg
	rules, err := NewFrameRules(cfg.frameConfig())
	if err != nil {
		return err // validated at start; unreachable
	}
	ctx := context.WithoutCancel(c.ctx)
	var buf bytes.Buffer
	quotesHere := 0
	for {
		typ, rd, err := ws.Reader(ctx)
		if err != nil {
			return readError(err, cfg.ReadLimit)
		}
		buf.Reset()
		if _, err := buf.ReadFrom(rd); err != nil {
			return readError(err, cfg.ReadLimit)
		}
		now := time.Now()
		c.frames.Add(1)
		res, err := rules.Handle(typ == websocket.MessageBinary, buf.Bytes())
		if err != nil {
			c.ignored.Add(1)
			c.log.Debug("frame ignored", "err", err, "bytes", buf.Len())
			if errors.Is(err, ErrInflatedTooLarge) {
				c.setErr(err)
			}
			continue
		}
		switch res.Kind {
		case FrameQuote:
			if _, err := c.r.b.Publish(c.sym.Name, res.Data, now); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			c.quotes.Add(1)
			c.lastQuote.Store(now.UnixNano())
			quotesHere++
			if *c.state.Load() != StateLive {
				c.setState(StateLive, "quotes flowing")
			}
		case FramePing:
			c.ignored.Add(1)
			wctx, cancel := context.WithTimeout(ctx, cfg.PingTimeout)
			err := ws.Write(wctx, websocket.MessageText, res.Reply)
			cancel()
			if err != nil {
				return fmt.Errorf("app pong: %w", err)
			}
		case FrameError:
			c.ignored.Add(1)
			msg := string(res.Data)
			err := fmt.Errorf("upstream error frame: %s", truncate(msg, 256))
			c.setErr(err)
			c.log.Warn("upstream sent an error frame", "frame", truncate(msg, 256))
			if quotesHere == 0 {
				return err
			}
		default:
			c.ignored.Add(1)
			c.log.Debug("frame ignored", "bytes", buf.Len())
		}
	}
}

func readError(err error, limit int64) error {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		return fmt.Errorf("frame exceeds read_limit of %d bytes (closed with 1009): %w", limit, err)
	}
	if code := websocket.CloseStatus(err); code != -1 {
		return fmt.Errorf("upstream closed: %d: %w", code, err)
	}
	return fmt.Errorf("read: %w", err)
}
