package relay

import (
	"errors"
	"fmt"
	"time"
)

// A mirror broker does not number quotes itself: it applies the quotes of
// an external log (an edge fed by NATS JetStream, relay/cluster), whose
// sequence is the ID's n and whose identity is the epoch. Every mirror of
// the same log then gives a quote the same ID, history and seq, so a client
// may resume on any of them. Three things differ from a broker that numbers
// its own quotes:
//
//   - history validity per symbol comes from the log's evidence (the log
//     position of each quote's predecessor, ApplyAt's Prev), never from when
//     this broker happened to learn a symbol, so every mirror decides alike;
//   - the epoch can change (the log was recreated or lost data): every
//     subscriber gets a reset event and the rings are cleared, never a
//     silent gap;
//   - a client may bring an ID this mirror has not applied yet (it comes
//     from a mirror that is further along): Subscribe and History wait up to
//     MirrorWait for it instead of answering reset at once.

// MirrorWait bounds how long Subscribe and History wait for a mirror to
// apply an ID a client brings.
const MirrorWait = 2 * time.Second

// ResetEpochChanged is the reason of the reset event sent to every
// subscriber when a mirror's log changes identity.
const ResetEpochChanged = "epoch_changed"

// ErrOutOfOrder means ApplyAt was given a position at or below one already
// applied.
var ErrOutOfOrder = errors.New("log position out of order")

// mirrorState is a mirror broker's extra state, guarded by Broker.mu.
type mirrorState struct {
	synced bool          // the log's epoch is known
	wait   chan struct{} // closed when the applied position moves; nil without waiters
	kick   func()        // asks the log reader to check the epoch now; must not block
}

// EnableMirror makes b a mirror of an external log: from now on quotes
// enter only through ApplyAt, and the epoch is unknown until SetEpoch.
// kick (may be nil) is called, without b's lock, when a client brings an
// ID from a newer epoch than b's, so that the reader checks the log at once
// rather than at its next periodic check; it must not block. Call it before
// b is used.
func (b *Broker) EnableMirror(kick func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mirror = &mirrorState{kick: kick}
}

// MirrorQuote is one quote of the log, as ApplyAt takes it.
type MirrorQuote struct {
	Symbol string
	// N is the quote's log position: its ID is <epoch>-<N>. It must grow.
	N uint64
	// Seq is the symbol's quote counter as the log's writer numbered it.
	Seq uint64
	// Prev is the log position of the symbol's previous quote (0: none).
	// When this mirror did not apply that quote (it was evicted from the
	// log before the mirror read it, or the mirror missed it), history
	// before Prev is incomplete for this symbol and resuming from an ID
	// before it answers reset.
	Prev uint64
	// Lost counts quotes the writer dropped just before this one (its
	// buffer overflowed while the log was unreachable): resuming from any
	// ID before this quote answers reset, and live subscribers of the
	// symbol get a reset event before it.
	Lost       uint64
	ReceivedAt time.Time
	// Data is the compact JSON published as the quote's data (copied).
	Data []byte
}

// AddMirrorSymbol is AddSymbol for a mirror: the new symbol's history is
// judged only by the log's evidence, not by the position at which this
// broker learned of it.
func (b *Broker) AddMirrorSymbol(symbol string) (bool, error) {
	added, err := b.AddSymbol(symbol)
	if added {
		b.mu.Lock()
		if t := b.topics[symbol]; t != nil && t.size == 0 {
			t.createdN = 0
		}
		b.mu.Unlock()
	}
	return added, err
}

// ApplyAt records a quote of the log with the ID <epoch>-<q.N> and the
// seq q.Seq, and fans it out. It fails with ErrUnknownSymbol when the
// symbol is not known, ErrOutOfOrder when q.N is not above every position
// applied in this epoch, and ErrClosed after Close.
func (b *Broker) ApplyAt(q MirrorQuote) (*Event, error) {
	buf := make([]byte, 0, len(q.Data)+len(q.Symbol)+112)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.mirror == nil || !b.mirror.synced {
		return nil, errors.New("apply: the broker is not a mirror with a known epoch")
	}
	t, ok := b.topics[q.Symbol]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSymbol, q.Symbol)
	}
	if q.N <= b.n {
		return nil, fmt.Errorf("%w: %d after %d", ErrOutOfOrder, q.N, b.n)
	}
	b.n = q.N
	t.seq = q.Seq
	ev := &Event{Kind: KindQuote, Symbol: q.Symbol, ID: EventID{Epoch: b.epoch, N: q.N}, Seq: q.Seq, ReceivedAt: q.ReceivedAt}
	ev.JSON = encodeQuote(buf, q.Symbol, ev.ID, ev.Seq, q.ReceivedAt, false, q.Data)
	// The evidence: every quote of the symbol after `boundary` is kept
	// here. Each rule depends only on the log, so every mirror that read
	// the same log decides the same way.
	var boundary uint64
	broken := false
	switch last := t.latest(); {
	case q.Lost > 0:
		// The writer lost quotes right before this one.
		boundary, broken = q.N-1, true
	case last == nil:
		// The first quote this mirror has of the symbol: whatever came
		// before it in the log (Prev) is not here.
		boundary = q.Prev
	case last.ID.N != q.Prev:
		// This mirror missed the symbol's quotes up to Prev.
		boundary, broken = max(q.Prev, last.ID.N), true
	}
	if boundary > t.evicted {
		t.evicted = boundary
	}
	if broken && len(t.subs) > 0 {
		// Live subscribers have the quotes before the hole and are about
		// to get the one after it: say so, never a silent gap.
		reset := resetEvent(ResetHistoryExhausted)
		for _, s := range t.subs {
			s.push(reset)
		}
	}
	b.appendLocked(t, ev)
	b.wakeMirrorLocked()
	return ev, nil
}

// SetEpoch sets the epoch of a mirror's log. When the epoch changes after
// quotes were applied, every subscriber gets a reset event (reason
// ResetEpochChanged), every ring is cleared and positions start again; a
// first SetEpoch on an empty broker only records the epoch. It reports
// whether subscribers were reset.
func (b *Broker) SetEpoch(epoch int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mirror == nil || b.closed {
		return false
	}
	if b.mirror.synced && epoch == b.epoch {
		return false
	}
	wasSynced := b.mirror.synced
	b.mirror.synced = true
	changed := wasSynced || b.n > 0
	b.epoch = epoch
	b.n = 0
	b.wakeMirrorLocked()
	if !changed {
		return false
	}
	for _, t := range b.topics {
		clear(t.ring)
		t.head, t.size, t.seq, t.evicted, t.createdN = 0, 0, 0, 0, 0
	}
	reset := resetEvent(ResetEpochChanged)
	for s := range b.subs {
		s.mu.Lock()
		for i := range s.conf {
			s.conf[i].latest = nil // a quote of the old epoch
		}
		s.mu.Unlock()
		s.push(reset)
	}
	return true
}

// Applied returns a mirror's epoch, the highest log position applied in
// it, and whether the epoch is known yet.
func (b *Broker) Applied() (epoch int64, n uint64, synced bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.epoch, b.n, b.mirror != nil && b.mirror.synced
}

// wakeMirrorLocked releases the waiters of waitMirror. Called with b.mu held.
func (b *Broker) wakeMirrorLocked() {
	if m := b.mirror; m != nil && m.wait != nil {
		close(m.wait)
		m.wait = nil
	}
}

// waitMirror waits, up to MirrorWait, until a mirror has applied id (or
// learned its epoch, or moved to id's newer epoch), so that a client coming
// from a mirror that is further along is served rather than reset. It
// returns at once for a broker that is not a mirror or when has is false.
func (b *Broker) waitMirror(id EventID, has bool) {
	if !has {
		return
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	kicked := false
	for {
		b.mu.Lock()
		m := b.mirror
		if m == nil || b.closed {
			b.mu.Unlock()
			return
		}
		newer := m.synced && id.Epoch > b.epoch
		if m.synced && !newer && (id.Epoch != b.epoch || id.N <= b.n) {
			b.mu.Unlock()
			return
		}
		if m.wait == nil {
			m.wait = make(chan struct{})
		}
		ch, kick := m.wait, m.kick
		b.mu.Unlock()
		if newer && !kicked && kick != nil {
			kick()
			kicked = true
		}
		if timer == nil {
			timer = time.NewTimer(MirrorWait)
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		}
	}
}
