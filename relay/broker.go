package relay

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Default sizes: quotes kept per symbol, and events a subscriber may fall
// behind (SubscribeOptions.Queue).
const (
	DefaultHistory = 1024
	DefaultQueue   = 1024
)

// ErrSymbolRemoved ends a subscription whose every symbol was removed.
var ErrSymbolRemoved = errors.New("every symbol of the subscription was removed")

// Reset reasons carried by KindReset events.
const (
	ResetForeignEpoch     = "foreign_epoch"
	ResetHistoryExhausted = "history_exhausted"
	ResetInvalidID        = "invalid_id"
)

// BrokerConfig configures a Broker. A zero field means its default.
type BrokerConfig struct {
	// History is the number of quotes kept per symbol for resume and
	// history lookups. Default DefaultHistory.
	History int
	// Epoch overrides the broker's epoch (Unix milliseconds); default now.
	Epoch int64
}

// Broker keeps, per symbol, the latest quote, a ring of the last History
// quotes and the symbol's subscribers, and assigns event IDs that order
// quotes across all symbols.
//
// Publishing never blocks on a subscriber: each subscriber has a bounded
// queue and is cut off when it falls behind. All methods are safe for
// concurrent use.
type Broker struct {
	epoch   int64
	history int

	mu     sync.Mutex
	n      uint64
	topics map[string]*topic
	subs   map[*Subscription]struct{}
	closed bool
	mirror *mirrorState // non-nil when IDs come from a log (broker_mirror.go)
}

type topic struct {
	name     string
	seq      uint64
	ring     []*Event // circular, oldest at (head-size) mod cap
	head     int      // next write position
	size     int
	evicted  uint64 // N of the newest quote dropped from the ring
	createdN uint64 // broker's n when the topic was created
	stale    bool   // the last status event said "stale"
	subs     []*Subscription
}

// NewBroker returns a broker with no symbols.
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.History < 0 {
		return nil, fmt.Errorf("broker: history must not be negative")
	}
	if cfg.History == 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Epoch == 0 {
		cfg.Epoch = time.Now().UnixMilli()
	}
	return &Broker{
		epoch:   cfg.Epoch,
		history: cfg.History,
		topics:  make(map[string]*topic),
		subs:    make(map[*Subscription]struct{}),
	}, nil
}

// AddSymbol makes symbol known to the broker; it reports whether it was new.
func (b *Broker) AddSymbol(symbol string) (bool, error) {
	if err := CheckSymbol(symbol); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false, ErrClosed
	}
	if _, ok := b.topics[symbol]; ok {
		return false, nil
	}
	b.topics[symbol] = &topic{name: symbol, ring: make([]*Event, b.history), createdN: b.n}
	return true, nil
}

// RemoveSymbol forgets symbol and its history. Its subscribers get a status
// event with state "removed"; a subscription left with no symbol ends with
// ErrSymbolRemoved after its queue is drained.
func (b *Broker) RemoveSymbol(symbol string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[symbol]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSymbol, symbol)
	}
	delete(b.topics, symbol)
	ev := b.statusEvent(symbol, StateRemoved, "symbol removed", time.Now())
	for _, s := range t.subs {
		s.push(ev)
		s.dropTopic(t)
	}
	return nil
}

// Symbols returns the known symbols, sorted.
func (b *Broker) Symbols() []string {
	b.mu.Lock()
	out := make([]string, 0, len(b.topics))
	for name := range b.topics {
		out = append(out, name)
	}
	b.mu.Unlock()
	slices.Sort(out)
	return out
}

// Has reports whether symbol is known.
func (b *Broker) Has(symbol string) bool {
	b.mu.Lock()
	_, ok := b.topics[symbol]
	b.mu.Unlock()
	return ok
}

// Publish records a quote of symbol whose data is compact JSON (no newline)
// and fans it out. data is copied.
func (b *Broker) Publish(symbol string, data []byte, receivedAt time.Time) (*Event, error) {
	buf := make([]byte, 0, len(data)+len(symbol)+112)
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[symbol]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSymbol, symbol)
	}
	if b.closed {
		return nil, ErrClosed
	}
	b.n++
	t.seq++
	ev := &Event{Kind: KindQuote, Symbol: symbol, ID: EventID{Epoch: b.epoch, N: b.n}, Seq: t.seq, ReceivedAt: receivedAt}
	ev.JSON = encodeQuote(buf, symbol, ev.ID, ev.Seq, receivedAt, false, data)
	b.appendLocked(t, ev)
	return ev, nil
}

// appendLocked keeps ev in t's ring and fans it out. Called with b.mu held.
func (b *Broker) appendLocked(t *topic, ev *Event) {
	if old := t.ring[t.head]; old != nil {
		t.evicted = old.ID.N
	}
	t.ring[t.head] = ev
	t.head = (t.head + 1) % len(t.ring)
	if t.size < len(t.ring) {
		t.size++
	}
	cut := false
	for _, s := range t.subs {
		if !s.push(ev) {
			cut = true
		}
	}
	if cut {
		t.subs = slices.DeleteFunc(t.subs, func(s *Subscription) bool {
			if s.isCut() {
				s.detachLocked(t)
				return true
			}
			return false
		})
	}
}

// PublishStatus sends a status event for symbol to its subscribers. Status
// events have no ID and are not kept in history.
func (b *Broker) PublishStatus(symbol string, state State, reason string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[symbol]
	if !ok || b.closed {
		return
	}
	t.stale = state == StateStale
	ev := b.statusEvent(symbol, state, reason, at)
	for _, s := range t.subs {
		s.push(ev)
	}
}

func (b *Broker) statusEvent(symbol string, state State, reason string, at time.Time) *Event {
	j := make([]byte, 0, 96+len(reason))
	j = append(j, `{"symbol":`...)
	j = appendJSONString(j, symbol)
	j = append(j, `,"state":`...)
	j = appendJSONString(j, string(state))
	j = append(j, `,"reason":`...)
	j = appendJSONString(j, reason)
	j = append(j, `,"at":"`...)
	j = at.UTC().AppendFormat(j, time.RFC3339Nano)
	j = append(j, `"}`...)
	return &Event{Kind: KindStatus, Symbol: symbol, ReceivedAt: at, JSON: j}
}

func resetEvent(reason string) *Event {
	j := appendJSONString(append(make([]byte, 0, 16+len(reason)), `{"reason":`...), reason)
	return &Event{Kind: KindReset, ReceivedAt: time.Now(), JSON: append(j, '}')}
}

// Latest returns the newest quote of symbol.
func (b *Broker) Latest(symbol string) (*Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[symbol]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSymbol, symbol)
	}
	if ev := t.latest(); ev != nil {
		return ev, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoData, symbol)
}

// LatestStale returns the newest quote of symbol and whether the symbol's
// upstream is stale now (as the last status event said).
func (b *Broker) LatestStale(symbol string) (*Event, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[symbol]
	if !ok {
		return nil, false, fmt.Errorf("%w: %q", ErrUnknownSymbol, symbol)
	}
	if ev := t.latest(); ev != nil {
		return ev, t.stale, nil
	}
	return nil, false, fmt.Errorf("%w: %q", ErrNoData, symbol)
}

func (t *topic) latest() *Event {
	if t.size == 0 {
		return nil
	}
	return t.ring[(t.head-1+len(t.ring))%len(t.ring)]
}

// at returns the i-th retained quote, oldest first.
func (t *topic) at(i int) *Event {
	return t.ring[(t.head-t.size+i+2*len(t.ring))%len(t.ring)]
}

// firstAfter returns the index of the first retained quote with N > n
// (t.size if none): a binary search of the ring, whose Ns grow.
func (t *topic) firstAfter(n uint64) int {
	lo, hi := 0, t.size
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if t.at(mid).ID.N > n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// honours reports whether every quote of t after n is still retained.
func (t *topic) honours(n uint64) bool {
	return t.evicted <= n && t.createdN <= n
}

// History returns retained quotes of symbol after the event ID after, oldest
// first, at most limit. Without after it returns the newest limit quotes.
// reset is true when after is from another epoch or older than the kept
// history; the oldest kept quotes are returned then.
func (b *Broker) History(symbol, after string, limit int) (quotes []*Event, reset bool, err error) {
	var id EventID
	if after != "" {
		if id, err = ParseEventID(after); err != nil {
			return nil, false, err
		}
	}
	if limit <= 0 {
		return nil, false, fmt.Errorf("history: limit must be positive")
	}
	b.waitMirror(id, after != "")
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[symbol]
	if !ok {
		return nil, false, fmt.Errorf("%w: %q", ErrUnknownSymbol, symbol)
	}
	start := 0
	switch {
	case after == "":
		start = max(0, t.size-limit)
	case id.Epoch != b.epoch || id.N > b.n || !t.honours(id.N):
		reset = true
	default:
		start = t.firstAfter(id.N)
	}
	end := min(t.size, start+limit)
	quotes = make([]*Event, 0, end-start)
	for i := start; i < end; i++ {
		quotes = append(quotes, t.at(i))
	}
	return quotes, reset, nil
}

// Close cuts every subscription with ErrClosed; later publishes fail.
// Close is idempotent.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for s := range b.subs {
		s.cut(ErrClosed, false)
	}
	for _, t := range b.topics {
		t.subs = nil
	}
	clear(b.subs)
}
