package relay

import (
	"bytes"
	"errors"
	"hash/maphash"
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

	// active is the session whose quotes of this symbol are published.
	// A handover moves it to the new session once the old one has handed
	// over what it had received (see offer): nothing is lost.
	active  atomic.Pointer[session]
	removed atomic.Bool

	swMu        sync.Mutex
	switching   atomic.Bool // a handover is under way: quotes go through swMu
	next        *session    // the handover session whose quotes are held
	held        []heldQuote
	old         *session  // the replaced session, heard until lingerUntil
	lingerUntil time.Time // (receive time)
	seen        seenSet   // payloads published since the first held quote

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

// offer publishes a quote of this symbol read on sess, or holds or drops
// it. The active session publishes. A handover's session (one whose prev
// is the active session) does not publish at once: its quotes are held
// until the old session has handed over every quote it had received
// before (a ping on it answered: see conn.syncHandover), because the old
// reader may still have quotes in its socket when the new one delivers
// its first; then finishSwitch publishes the held quotes and makes sess
// active. The old session is still heard for a linger after that (a
// venue may queue quotes behind its pong), and from the first held quote
// to the linger's end a quote whose payload was already published is
// dropped: both connections carry the same messages, so nothing is lost
// and, for byte-identical payloads, nothing repeats. Other sessions'
// quotes are dropped. A session takes over at once from no session or an
// ended one. startSync is true for the first quote held on sess.
func (s *symbol) offer(sess *session, data []byte, at time.Time) (published, startSync bool, err error) {
	if !s.switching.Load() && s.active.Load() == sess {
		return true, false, s.publish(data, at)
	}
	s.swMu.Lock()
	defer s.swMu.Unlock()
	if s.next != nil && s.next != sess && s.next.ended.Load() {
		// A handover session that ended before it synced (refused,
		// cut): what it held, the active session delivers too.
		s.next, s.held = nil, nil
		s.settleLocked()
	}
	a := s.active.Load()
	switch {
	case a == sess:
		// The old session while a switch waits for it (under the lock,
		// its quotes stay before the held ones), or the new one.
		if s.old != nil && !at.Before(s.lingerUntil) {
			s.old = nil
			s.settleLocked()
		}
		ok, err := s.publishOnce(data, at)
		return ok, false, err
	case sess == s.old && at.Before(s.lingerUntil):
		ok, err := s.publishOnce(data, at)
		return ok, false, err
	case a == nil || a.ended.Load():
		if err := s.switchLocked(sess, 0); err != nil {
			return false, false, err
		}
		ok, err := s.publishOnce(data, at)
		return ok, false, err
	case sess.prev == a && (s.next == nil || s.next == sess):
		startSync = s.next == nil
		s.next = sess
		s.switching.Store(true)
		if len(s.held) >= maxHeld {
			// The old session takes too long to answer: switch now
			// rather than hold without bound.
			if err := s.switchLocked(sess, s.up.handoverLinger()); err != nil {
				return false, false, err
			}
			ok, err := s.publishOnce(data, at)
			return ok, false, err
		}
		s.held = append(s.held, heldQuote{data: bytes.Clone(data), at: at})
		return true, startSync, nil
	default:
		return false, false, nil // sess is the older of two live sessions
	}
}

// maxHeld bounds the quotes a handover holds per symbol while the old
// session is being synced.
const maxHeld = 4096

type heldQuote struct {
	data []byte
	at   time.Time
}

// finishSwitch makes next the symbol's active session once the old one
// was synced, publishing the quotes held on next first; it does nothing
// unless next holds quotes of the symbol. forced switches to next in any
// case (the handover completes without waiting for quiet symbols, or the
// old session ended).
func (s *symbol) finishSwitch(next *session, forced bool) error {
	s.swMu.Lock()
	defer s.swMu.Unlock()
	if s.active.Load() == next && s.next == nil || !forced && s.next != next {
		return nil
	}
	return s.switchLocked(next, s.up.handoverLinger())
}

// switchLocked makes sess active after publishing the held quotes (of
// whichever session they were held on: they were all received); the
// session it replaces, if still open, is heard for linger more.
func (s *symbol) switchLocked(sess *session, linger time.Duration) error {
	held := s.held
	s.held, s.next = nil, nil
	prev := s.active.Swap(sess)
	var err error
	for i, h := range held {
		if _, err = s.publishOnce(h.data, h.at); err != nil {
			s.log.Warn("held quotes not published at a handover", "count", len(held)-i, "err", err)
			break
		}
	}
	if prev != nil && prev != sess && !prev.ended.Load() && linger > 0 && s.switching.Load() {
		s.old, s.lingerUntil = prev, time.Now().Add(linger)
	} else {
		s.old = nil
		s.settleLocked()
	}
	return err
}

// settleLocked ends the handover's bookkeeping once nothing is held and
// no old session is heard.
func (s *symbol) settleLocked() {
	if s.next == nil && s.old == nil {
		s.switching.Store(false)
		s.seen.reset()
	}
}

// publishOnce publishes a quote, except during a handover one whose
// payload was published already (by the other session).
func (s *symbol) publishOnce(data []byte, at time.Time) (bool, error) {
	if s.switching.Load() && !s.seen.add(data) {
		return false, nil
	}
	return true, s.publish(data, at)
}

// seenSet remembers the payloads published during a handover (the last
// seenMax of them, by hash).
type seenSet struct {
	set  map[uint64]struct{}
	ring []uint64
	pos  int
}

const seenMax = 1024

var seenSeed = maphash.MakeSeed()

// add records data and reports whether it was new.
func (ss *seenSet) add(data []byte) bool {
	h := maphash.Bytes(seenSeed, data)
	if _, ok := ss.set[h]; ok {
		return false
	}
	if ss.set == nil {
		ss.set = make(map[uint64]struct{}, 64)
	}
	if len(ss.ring) < seenMax {
		ss.ring = append(ss.ring, h)
	} else {
		delete(ss.set, ss.ring[ss.pos])
		ss.ring[ss.pos] = h
		ss.pos = (ss.pos + 1) % seenMax
	}
	ss.set[h] = struct{}{}
	return true
}

func (ss *seenSet) reset() { *ss = seenSet{} }

// pendingOn reports whether the symbol holds quotes of sess.
func (s *symbol) pendingOn(sess *session) bool {
	s.swMu.Lock()
	defer s.swMu.Unlock()
	return s.next == sess
}

// publish hands a quote to the sink; a symbol removed meanwhile is not
// an error.
func (s *symbol) publish(data []byte, at time.Time) error {
	if s.removed.Load() {
		return nil
	}
	if _, err := s.r.sink.Publish(s.sym.Name, data, at); err != nil && !errors.Is(err, ErrUnknownSymbol) {
		return err
	}
	return nil
}
