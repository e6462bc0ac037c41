package relay

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// symbol is one subscribed symbol: its place on a connection, its state
// and its counters. The connection's owner and its sessions' readers
// update it; status reads it from any goroutine.
type symbol struct {
	r   *Relay
	up  *upstream
	sym Symbol
	log *slog.Logger
	c   *conn // set once by Relay.Add

	// active is the session whose quotes of this symbol are published:
	// a handover moves it to the new session with the new session's first
	// quote, so nothing is lost or published twice.
	active  atomic.Pointer[session]
	removed atomic.Bool

	state     atomic.Pointer[State]
	lastQuote atomic.Int64 // Unix ns
	frames    atomic.Uint64
	quotes    atomic.Uint64
	ignored   atomic.Uint64
	reconns   atomic.Uint64
	drops     atomic.Uint64
	connected atomic.Bool
	everLive  atomic.Bool

	mu          sync.Mutex // orders state changes; guards the last error
	lastErr     string
	lastErrTime time.Time
}

func newSymbol(r *Relay, up *upstream, sym Symbol) *symbol {
	s := &symbol{r: r, up: up, sym: sym}
	s.log = r.log.With("upstream", up.cfg.Name, "symbol", sym.Name)
	st := StateConnecting
	s.state.Store(&st)
	return s
}

func (s *symbol) ref() string { return s.sym.RefOrName() }

func (s *symbol) stateNow() State { return *s.state.Load() }

// setState records a state change and sends it to the sink as a status
// event; setting the current state again does nothing.
func (s *symbol) setState(st State, reason string) {
	s.mu.Lock()
	if *s.state.Load() == st {
		s.mu.Unlock()
		return
	}
	s.state.Store(&st)
	if st == StateLive {
		s.everLive.Store(true)
	}
	s.mu.Unlock()
	s.log.Debug("state", "state", st, "reason", reason)
	s.r.sink.PublishStatus(s.sym.Name, st, reason, time.Now())
}

func (s *symbol) setErr(msg string) {
	s.mu.Lock()
	s.lastErr = msg
	s.lastErrTime = time.Now()
	s.mu.Unlock()
}

func (s *symbol) status() SymbolStatus {
	s.mu.Lock()
	le, let := s.lastErr, s.lastErrTime
	s.mu.Unlock()
	var lq time.Time
	if ns := s.lastQuote.Load(); ns != 0 {
		lq = time.Unix(0, ns)
	}
	cfg := &s.up.cfg
	return SymbolStatus{
		Symbol: s.sym.Name, Upstream: cfg.Name, State: s.stateNow(),
		Connected: s.connected.Load(), EverLive: s.everLive.Load(), LastQuoteAt: lq,
		Frames: s.frames.Load(), Quotes: s.quotes.Load(), Ignored: s.ignored.Load(),
		Reconnects: s.reconns.Load(), Drops: s.drops.Load(),
		LastError: le, LastErrorAt: let,
		Preset: cfg.Preset, Channel: cfg.Channel, Fields: cfg.Fields,
	}
}

// claim reports whether quotes of this symbol read on sess are to be
// published, moving the symbol to sess when sess takes over: from no
// session, from one that has ended, or from the session sess replaces in a
// handover. switched is true when it moved.
func (s *symbol) claim(sess *session) (ok, switched bool) {
	for {
		a := s.active.Load()
		if a == sess {
			return true, false
		}
		if a != nil && !a.ended.Load() && sess.prev != a {
			return false, false // sess is the older of two live sessions
		}
		if s.active.CompareAndSwap(a, sess) {
			return true, a != nil
		}
	}
}
