package relay

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SubscribeOptions says where a subscription starts and how it is served.
type SubscribeOptions struct {
	// After is the last event ID the subscriber has seen (SSE
	// Last-Event-ID). When set, the subscription starts with every retained
	// quote after it, or with a reset event and a snapshot when it cannot be
	// honoured. A malformed ID is treated as foreign.
	After string
	// Snapshot, when After is empty, starts the subscription with the latest
	// quote of each symbol.
	Snapshot bool
	// Queue is how many events the subscriber may fall behind before it
	// is cut off with ErrSlowConsumer. Default DefaultQueue.
	Queue int
	// MaxRate > 0 conflates: at most MaxRate quotes per second per symbol,
	// always the newest one. Status and reset events are never conflated.
	MaxRate float64
	// All subscribes to every symbol known at that moment (the symbols
	// argument is then ignored): no symbol removed meanwhile can make it
	// fail.
	All bool
}

// Subscription yields the events of a set of symbols, in one of two ways:
// Next waits for them (one consumer goroutine), or SetNotify says when there
// are some and TryNext takes them without waiting (the api package's writer
// pool). Close may be called from any goroutine.
type Subscription struct {
	b     *Broker
	queue int

	mu      sync.Mutex
	topics  []*topic
	pending []*Event
	limit   int         // cut-off threshold for pending
	err     error       // why the subscription ended
	drain   bool        // deliver pending before err
	conf    []confState // conflation state, one per symbol
	rate    time.Duration

	notify  chan struct{} // capacity 1: "something changed"
	done    chan struct{} // closed when err is set
	ended   atomic.Bool   // err is set (Ended, without a channel operation)
	onReady func()        // replaces notify when set (SetNotify)
}

type confState struct {
	symbol string
	latest *Event
	next   time.Time
}

// Subscribe starts a subscription to symbols (which must all be known).
func (b *Broker) Subscribe(symbols []string, opt SubscribeOptions) (*Subscription, error) {
	s := &Subscription{
		b:      b,
		queue:  opt.Queue,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if s.queue <= 0 {
		s.queue = DefaultQueue
	}
	if id, err := ParseEventID(opt.After); err == nil {
		b.waitMirror(id, true)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if opt.All {
		symbols = slices.Sorted(maps.Keys(b.topics))
	}
	for _, name := range symbols {
		t, ok := b.topics[name]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownSymbol, name)
		}
		if !slices.Contains(s.topics, t) {
			s.topics = append(s.topics, t)
		}
	}
	if opt.MaxRate > 0 {
		s.rate = time.Duration(float64(time.Second) / opt.MaxRate)
		for _, t := range s.topics {
			s.conf = append(s.conf, confState{symbol: t.name})
		}
	}

	var backlog []*Event
	reset := ""
	if opt.After != "" {
		id, err := ParseEventID(opt.After)
		switch {
		case err != nil:
			reset = ResetInvalidID
		case id.Epoch != b.epoch || id.N > b.n:
			reset = ResetForeignEpoch
		default:
			for _, t := range s.topics {
				if !t.honours(id.N) {
					reset = ResetHistoryExhausted
					break
				}
				for i := t.firstAfter(id.N); i < t.size; i++ {
					backlog = append(backlog, t.at(i))
				}
			}
		}
		if reset != "" {
			backlog = append(backlog[:0], resetEvent(reset))
		}
	}
	if reset != "" || (opt.After == "" && opt.Snapshot) {
		for _, t := range s.topics {
			if ev := t.latest(); ev != nil {
				backlog = append(backlog, ev)
			}
		}
	}
	if len(s.topics) > 1 {
		slices.SortStableFunc(backlog, func(a, c *Event) int {
			// The reset event (N 0) stays first; quotes by N.
			switch {
			case a.ID.N < c.ID.N:
				return -1
			case a.ID.N > c.ID.N:
				return 1
			}
			return 0
		})
	}
	s.limit = s.queue + len(backlog)
	for _, ev := range backlog {
		s.push(ev)
	}
	s.limit = s.queue + len(s.pending)
	for _, t := range s.topics {
		t.subs = append(t.subs, s)
	}
	b.subs[s] = struct{}{}
	return s, nil
}

// push queues ev; it reports false when the subscription is (now) cut off.
// Called with b.mu held.
func (s *Subscription) push(ev *Event) bool {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false
	}
	if s.rate > 0 && ev.Kind == KindQuote {
		for i := range s.conf {
			if s.conf[i].symbol == ev.Symbol {
				s.conf[i].latest = ev
				break
			}
		}
	} else if len(s.pending) >= s.limit {
		s.setErr(ErrSlowConsumer, false)
		s.mu.Unlock()
		return false
	} else {
		s.pending = append(s.pending, ev)
	}
	f := s.onReady
	s.mu.Unlock()
	if f != nil {
		f()
		return true
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return true
}

// SetNotify makes the subscription call f, instead of waking Next, each
// time an event is queued or the subscription ends. f runs on the
// publisher's goroutine with the broker's lock held (so that publishing
// allocates nothing per subscriber): it must be quick, must not block and
// must not call back into the broker or the subscription. A consumer driven
// this way collects events with TryNext. f is called once at once, so that
// events queued before SetNotify are not missed.
func (s *Subscription) SetNotify(f func()) {
	s.mu.Lock()
	s.onReady = f
	s.mu.Unlock()
	f()
}

func (s *Subscription) setErr(err error, drain bool) {
	if s.err != nil {
		return
	}
	s.err, s.drain = err, drain
	if !drain {
		clear(s.pending)
		s.pending = nil
	}
	s.ended.Store(true)
	close(s.done)
	if s.onReady != nil {
		s.onReady()
	}
}

func (s *Subscription) isCut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}

// cut ends the subscription with err. Called with b.mu held.
func (s *Subscription) cut(err error, drain bool) {
	s.mu.Lock()
	s.setErr(err, drain)
	s.mu.Unlock()
}

// dropTopic removes a removed symbol from s. Called with b.mu held.
func (s *Subscription) dropTopic(t *topic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topics = slices.DeleteFunc(s.topics, func(x *topic) bool { return x == t })
	s.conf = slices.DeleteFunc(s.conf, func(c confState) bool { return c.symbol == t.name })
	if len(s.topics) == 0 {
		s.setErr(ErrSymbolRemoved, true)
		delete(s.b.subs, s)
	}
}

// detachLocked removes s from the broker except from t, whose subscriber
// list the caller is rewriting. Called with b.mu held.
func (s *Subscription) detachLocked(except *topic) {
	s.mu.Lock()
	topics := s.topics
	s.topics = nil
	s.mu.Unlock()
	for _, t := range topics {
		if t != except {
			t.subs = slices.DeleteFunc(t.subs, func(x *Subscription) bool { return x == s })
		}
	}
	delete(s.b.subs, s)
}

// Done is closed when the subscription has ended (cut off, closed, or every
// symbol removed); Err then tells why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Ended reports whether the subscription has ended (Done is closed); it
// is cheap enough to ask after every batch.
func (s *Subscription) Ended() bool { return s.ended.Load() }

// Err returns why the subscription ended, or nil while it runs.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Next waits for at least one event and returns every pending one, oldest
// first, in a slice that reuses spare's storage (pass the previous batch
// once done with it). It returns an error when ctx ends or the subscription
// ends; a slow consumer's pending events are dropped (it resumes by ID).
func (s *Subscription) Next(ctx context.Context, spare []*Event) ([]*Event, error) {
	clear(spare)
	spare = spare[:0]
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		out, wait, err := s.take(spare)
		if len(out) > 0 || err != nil {
			return out, err
		}
		var due <-chan time.Time // a conflated quote becomes due
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return spare, ctx.Err()
		case <-s.notify:
		case <-s.done:
		case <-due:
		}
	}
}

// TryNext is Next that does not wait: with nothing pending it returns no
// events and no error. wait > 0 says a conflated quote becomes due after
// wait; the consumer should call again then (nothing else will tell it).
// A subscription that ends after its last events (every symbol removed)
// returns them first and its error on the next call: a consumer that got
// events should look at Done before it waits for the next notify.
func (s *Subscription) TryNext(spare []*Event) (batch []*Event, wait time.Duration, err error) {
	clear(spare)
	return s.take(spare[:0])
}

// take returns the pending events (in spare's place), or the error that
// ended the subscription once nothing is left to deliver.
func (s *Subscription) take(spare []*Event) ([]*Event, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var wait time.Duration
	if s.rate > 0 && s.err == nil {
		wait = s.takeConflated()
	}
	if len(s.pending) > 0 {
		out := s.pending
		s.pending = spare
		s.limit = s.queue
		return out, wait, nil
	}
	return spare, wait, s.err
}

// takeConflated moves the conflated quotes that may be sent now into
// pending; it returns how long until the next one may be sent (0: none
// waiting). Called with s.mu held.
func (s *Subscription) takeConflated() time.Duration {
	now := time.Now()
	var wait time.Duration
	start := len(s.pending)
	for i := range s.conf {
		c := &s.conf[i]
		if c.latest == nil {
			continue
		}
		if d := c.next.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		s.pending = append(s.pending, c.latest)
		c.latest = nil
		c.next = now.Add(s.rate)
	}
	if len(s.pending)-start > 1 {
		slices.SortFunc(s.pending[start:], func(a, c *Event) int {
			if a.ID.N < c.ID.N {
				return -1
			}
			return 1
		})
	}
	return wait
}

// Close ends the subscription and detaches it from the broker. It is
// idempotent and safe to call concurrently with Next.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	s.detachLocked(nil)
	s.b.mu.Unlock()
	s.mu.Lock()
	s.setErr(ErrClosed, false)
	s.mu.Unlock()
}
