// Package simfeed is a simulated exchange: a real WebSocket server speaking
// wsrelay's seed protocol. Clients subscribe with
//
//	{"action":"subscribe","args":["QuoteBin5m:<symbol>"]}
//
// and receive random-walk quotes for every subscribed symbol at a fixed
// rate, each carrying its send time (sent_ns) so latency can be measured end
// to end. It is the demo's upstream and the upstream of tests and
// benchmarks, and it can be scripted to misbehave: drop connections, stall,
// send garbage, oversized or compressed frames, app-level pings, or close
// with a chosen status.
package simfeed

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Prefix is the channel prefix of the seed protocol.
const Prefix = "QuoteBin5m:"

// The seed protocol as an upstream config sees it: the subscribe and
// unsubscribe templates ({symbol} marks the symbol) and the JSON pointer
// that only quote frames have. The demo, the tests and the load tool use
// these instead of spelling them out.
const (
	Subscribe   = `{"action":"subscribe","args":["` + Prefix + `{symbol}"]}`
	Unsubscribe = `{"action":"unsubscribe","args":["` + Prefix + `{symbol}"]}`
	Accept      = "/data"
)

// Config configures a Feed. A zero field means its default.
type Config struct {
	// Rate is frames per second per subscribed symbol; default 5. A negative
	// rate sends nothing until Push is called.
	Rate float64
	// Pad adds a filler field so that frames reach about this many bytes.
	Pad int
	// Logger; default discards.
	Logger *slog.Logger
}

// Feed is the simulated exchange. It is an http.Handler; all methods are
// safe for concurrent use. Close ends every connection and waits for them.
type Feed struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[*conn]struct{}
	prices   map[string]float64
	received []string
	headers  http.Header
	closes   []websocket.StatusCode
	paused   bool
	stalled  bool
	stallCh  chan struct{} // closed when the stall ends

	accepted atomic.Int64
	sent     atomic.Int64
	rate     atomic.Uint64 // float64 bits
}

// New returns a feed; serve it with an http.Server or httptest.Server.
func New(cfg Config) *Feed {
	if cfg.Rate == 0 {
		cfg.Rate = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Feed{cfg: cfg, log: cfg.Logger, conns: map[*conn]struct{}{}, prices: map[string]float64{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.SetRate(cfg.Rate)
	return f
}

type conn struct {
	ws   *websocket.Conn
	mu   sync.Mutex
	syms map[string]context.CancelFunc
	n    map[string]uint64
}

// ServeHTTP accepts a WebSocket connection and serves it until it ends.
func (f *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true,
		// A stalled feed answers no ping: the relay must notice by itself.
		OnPingReceived: func(context.Context, []byte) bool { return !f.isStalled() },
	})
	if err != nil {
		return
	}
	f.mu.Lock()
	if f.ctx.Err() != nil {
		f.mu.Unlock()
		ws.CloseNow()
		return
	}
	c := &conn{ws: ws, syms: map[string]context.CancelFunc{}, n: map[string]uint64{}}
	f.conns[c] = struct{}{}
	f.headers = r.Header.Clone()
	f.wg.Add(1)
	f.mu.Unlock()
	f.accepted.Add(1)
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		c.mu.Lock()
		for _, stop := range c.syms {
			stop()
		}
		c.mu.Unlock()
		ws.CloseNow()
	}()
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(f.ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // stops the pushers first, then waits for them
		wg.Wait()
	}()
	for {
		f.waitStall(ctx)
		typ, p, err := ws.Read(ctx)
		if err != nil {
			f.mu.Lock()
			f.closes = append(f.closes, websocket.CloseStatus(err))
			f.mu.Unlock()
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		f.mu.Lock()
		f.received = append(f.received, string(p))
		f.mu.Unlock()
		var msg struct {
			Action string   `json:"action"`
			Args   []string `json:"args"`
		}
		if json.Unmarshal(p, &msg) != nil {
			continue // app pongs and garbage are only recorded
		}
		for _, arg := range msg.Args {
			sym, ok := strings.CutPrefix(arg, Prefix)
			if !ok || sym == "" {
				f.writeJSON(ctx, c, map[string]any{"event": "error", "message": "unknown channel " + arg})
				continue
			}
			switch msg.Action {
			case "subscribe":
				c.mu.Lock()
				if _, dup := c.syms[sym]; !dup {
					sctx, stop := context.WithCancel(ctx)
					c.syms[sym] = stop
					wg.Add(1)
					go func() {
						defer wg.Done()
						f.push(sctx, ctx, c, sym)
					}()
				}
				c.mu.Unlock()
				f.writeJSON(ctx, c, map[string]any{"event": "subscribed", "channel": arg})
			case "unsubscribe":
				c.mu.Lock()
				if stop, ok := c.syms[sym]; ok {
					stop()
					delete(c.syms, sym)
				}
				c.mu.Unlock()
				f.writeJSON(ctx, c, map[string]any{"event": "unsubscribed", "channel": arg})
			default:
				f.writeJSON(ctx, c, map[string]any{"event": "error", "message": "unknown action"})
			}
		}
	}
}

func (f *Feed) writeJSON(ctx context.Context, c *conn, v any) {
	b, _ := json.Marshal(v)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = c.ws.Write(wctx, websocket.MessageText, b)
}

// push sends quotes of sym on c at the feed's rate until ctx (the
// subscription) ends. Writes run under connCtx: cancelling a write's
// context in the middle of a frame closes the whole WebSocket, so an
// unsubscribe must not do that. It
// keeps an absolute schedule (frame k at start + k/rate), so a late frame is
// caught up rather than the rate silently drifting; a stall of more than a
// second restarts the schedule instead of bursting.
func (f *Feed) push(ctx, connCtx context.Context, c *conn, sym string) {
	buf := make([]byte, 0, 512)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	start, k, rate := time.Now(), int64(0), f.Rate()
	for {
		if r := f.Rate(); r != rate {
			start, k, rate = time.Now(), 0, r
		}
		if rate <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
				continue
			}
		}
		next := start.Add(time.Duration(float64(k+1) * float64(time.Second) / rate))
		if d := time.Until(next); d > 0 {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if d < -time.Second {
			start, k = time.Now(), 0
			continue
		}
		if f.Rate() != rate {
			continue // changed while waiting: restart the schedule first
		}
		k++
		f.waitStall(ctx)
		if f.isPaused() || ctx.Err() != nil {
			continue
		}
		buf = f.frame(buf[:0], c, sym)
		wctx, cancel := context.WithTimeout(connCtx, 5*time.Second)
		err := c.ws.Write(wctx, websocket.MessageText, buf)
		cancel()
		if err != nil {
			return
		}
		f.sent.Add(1)
	}
}

// Rate returns the current frames per second per symbol.
func (f *Feed) Rate() float64 {
	return math.Float64frombits(f.rate.Load())
}

// SetRate changes the rate of every running and future push; a rate of 0
// or less sends nothing until it is raised again.
func (f *Feed) SetRate(r float64) {
	f.rate.Store(math.Float64bits(r))
}

func (f *Feed) isPaused() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused
}

// frame appends the next quote frame of sym on c to b.
func (f *Feed) frame(b []byte, c *conn, sym string) []byte {
	f.mu.Lock()
	p, ok := f.prices[sym]
	if !ok {
		p = basePrice(sym)
	}
	open := p
	p *= math.Exp(rand.NormFloat64() * 0.0008)
	f.prices[sym] = p
	f.mu.Unlock()
	var n uint64
	if c != nil {
		c.mu.Lock()
		c.n[sym]++
		n = c.n[sym]
		c.mu.Unlock()
	}
	now := time.Now()
	lo, hi := math.Min(open, p), math.Max(open, p)
	b = append(b, `{"group":"`+Prefix...)
	b = append(b, sym...)
	b = append(b, `","data":[{"low":"`...)
	b = strconv.AppendFloat(b, lo*(1-rand.Float64()*0.0004), 'f', decimals(p), 64)
	b = append(b, `","high":"`...)
	b = strconv.AppendFloat(b, hi*(1+rand.Float64()*0.0004), 'f', decimals(p), 64)
	b = append(b, `","open":"`...)
	b = strconv.AppendFloat(b, open, 'f', decimals(p), 64)
	b = append(b, `","close":"`...)
	b = strconv.AppendFloat(b, p, 'f', decimals(p), 64)
	b = append(b, `","last_price":"`...)
	b = strconv.AppendFloat(b, p, 'f', decimals(p), 64)
	b = append(b, `","volume":"`...)
	b = strconv.AppendInt(b, 1000+rand.Int64N(90000), 10)
	b = append(b, `","timestamp":`...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, `,"sent_ns":`...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	if pad := f.cfg.Pad - len(b) - len(`,"pad":""}]}`); pad > 0 {
		b = append(b, `,"pad":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	return append(b, `}]}`...)
}

func basePrice(sym string) float64 {
	switch strings.ToUpper(sym) {
	case "BTCUSDT":
		return 97000
	case "ETHUSDT":
		return 3600
	case "LTCUSDT":
		return 102
	}
	h := 0
	for _, c := range sym {
		h = h*31 + int(c)
	}
	return 10 + float64(h%9000)/10
}

func decimals(p float64) int {
	switch {
	case p >= 1000:
		return 2
	case p >= 1:
		return 4
	}
	return 6
}

func (f *Feed) isStalled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stalled
}

func (f *Feed) waitStall(ctx context.Context) {
	f.mu.Lock()
	ch := f.stallCh
	stalled := f.stalled
	f.mu.Unlock()
	if !stalled {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// Close ends every connection and waits for their goroutines. It is
// idempotent.
func (f *Feed) Close() {
	f.mu.Lock()
	f.cancel()
	if f.stalled {
		f.stalled = false
		close(f.stallCh)
	}
	f.mu.Unlock()
	for _, c := range f.snapshot() {
		c.ws.CloseNow()
	}
	f.wg.Wait()
}
