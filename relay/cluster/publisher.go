package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

var _ relay.Sink = (*Publisher)(nil)

// errFenced means another ingest wrote the symbol's subject: this one must
// stop publishing (two writers never interleave one symbol).
var errFenced = errors.New("another ingest publishes this symbol")

// publishTimeout bounds one publish round trip; a timed-out publish is
// retried with the same message ID and expected sequence, so it is stored
// once whatever happened to the first attempt.
const publishTimeout = 2 * time.Second

type publisherConfig struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	names  names
	// buffer bounds each symbol's unpublished quotes (the history size):
	// past it the oldest is dropped and the next published quote says how
	// many were lost (Wsrelay-Lost), so edges reset their clients instead
	// of leaving a silent gap.
	buffer int
	// writer identifies this process in message IDs.
	writer   string
	log      *slog.Logger
	metrics  *ingestMetrics
	onStatus func(symbol string, state relay.State, reason string, at time.Time)
	// onFenced is called once when a lane finds another writer.
	onFenced func(symbol string, err error)
}

// Publisher publishes an upstream engine's quotes into the quote stream,
// one goroutine ("lane") per symbol so that each symbol has one publish in
// flight, in order, guarded by expected-last-sequence-per-subject (fencing)
// and a message ID (idempotent retries). Publish never blocks: while the
// publisher is inactive (no lease, NATS unreachable) quotes wait in the
// lane's bounded buffer. All methods are safe for concurrent use.
type Publisher struct {
	cfg    publisherConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	maxAck atomic.Uint64 // highest stream sequence acknowledged

	mu     sync.Mutex
	lanes  map[string]*lane
	gen    uint64
	on     chan struct{} // closed while active
	closed bool
	fenced bool
}

func newPublisher(cfg publisherConfig) *Publisher {
	p := &Publisher{cfg: cfg, lanes: map[string]*lane{}, on: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// setActive lets the lanes publish (true) or makes them buffer (false).
func (p *Publisher) setActive(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.on:
		if !on {
			p.on = make(chan struct{})
		}
	default:
		if on {
			close(p.on)
		}
	}
}

func (p *Publisher) activeCh() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.on
}

// AddSymbol starts the symbol's lane; its position in the stream is read
// before its first publish.
func (p *Publisher) AddSymbol(symbol string) (bool, error) {
	if err := relay.CheckSymbol(symbol); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, relay.ErrClosed
	}
	if _, ok := p.lanes[symbol]; ok {
		return false, nil
	}
	p.gen++
	l := &lane{
		p: p, symbol: symbol, subject: p.cfg.names.subject(symbol),
		idPrefix: p.cfg.writer + "-" + strconv.FormatUint(p.gen, 36) + "-" + Token(symbol) + "-",
		wake:     make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	p.lanes[symbol] = l
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		l.run()
	}()
	return true, nil
}

// RemoveSymbol stops the symbol's lane and drops what it had not
// published (the symbol is going away; its subject is purged).
func (p *Publisher) RemoveSymbol(symbol string) error {
	p.mu.Lock()
	l, ok := p.lanes[symbol]
	delete(p.lanes, symbol)
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", relay.ErrUnknownSymbol, symbol)
	}
	close(l.stop)
	<-l.done
	p.cfg.metrics.buffered.Add(-l.pending.Load())
	return nil
}

// Publish queues a quote of symbol; it never blocks and returns a nil
// event (the quote gets its ID when the stream stores it).
func (p *Publisher) Publish(symbol string, data []byte, receivedAt time.Time) (*relay.Event, error) {
	p.mu.Lock()
	l, closed := p.lanes[symbol], p.closed
	p.mu.Unlock()
	if closed {
		return nil, relay.ErrClosed
	}
	if l == nil {
		return nil, fmt.Errorf("%w: %q", relay.ErrUnknownSymbol, symbol)
	}
	l.enqueue(bytes.Clone(data), receivedAt)
	return nil, nil
}

// PublishStatus forwards a state change to the status reports.
func (p *Publisher) PublishStatus(symbol string, state relay.State, reason string, at time.Time) {
	if p.cfg.onStatus != nil {
		p.cfg.onStatus(symbol, state, reason, at)
	}
}

// pending returns the number of quotes not yet acknowledged.
func (p *Publisher) pending() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, l := range p.lanes {
		n += l.pending.Load()
	}
	return n
}

// flush waits until every queued quote is acknowledged or ctx ends.
func (p *Publisher) flush(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for p.pending() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d quotes not published: %w", p.pending(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Close stops every lane and drops what they had not published; call
// flush first to publish it. It is idempotent.
func (p *Publisher) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.closed = true
	lanes := p.lanes
	p.lanes = map[string]*lane{}
	p.mu.Unlock()
	p.cancel()
	for _, l := range lanes {
		close(l.stop)
	}
	p.wg.Wait()
	for _, l := range lanes {
		p.cfg.metrics.buffered.Add(-l.pending.Load())
	}
}

func (p *Publisher) fence(symbol string, err error) {
	p.mu.Lock()
	first := !p.fenced
	p.fenced = true
	p.mu.Unlock()
	if first && p.cfg.onFenced != nil {
		p.cfg.onFenced(symbol, err)
	}
}

// lane publishes one symbol's quotes in order.
type lane struct {
	p                         *Publisher
	symbol, subject, idPrefix string
	wake, stop, done          chan struct{}
	pending                   atomic.Int64 // queued or in flight

	mu    sync.Mutex
	q     []item
	carry uint64 // quotes dropped with no queued successor to tell

	// Owned by run.
	inited    bool
	seq, prev uint64
}

type item struct {
	data []byte
	at   time.Time
	lost uint64 // quotes dropped just before this one
}

func (l *lane) enqueue(data []byte, at time.Time) {
	m := l.p.cfg.metrics
	l.mu.Lock()
	if len(l.q) >= l.p.cfg.buffer {
		dropped := l.q[0]
		l.q[0] = item{}
		l.q = l.q[1:]
		carry := dropped.lost + 1
		if len(l.q) > 0 {
			l.q[0].lost += carry
		} else {
			l.carry += carry
		}
		l.pending.Add(-1)
		m.buffered.Add(-1)
		m.dropped.Add(1)
	}
	if len(l.q) == 0 && cap(l.q) > 4*l.p.cfg.buffer {
		l.q = nil // let a long-grown backing array go
	}
	l.q = append(l.q, item{data: data, at: at, lost: l.carry})
	l.carry = 0
	l.mu.Unlock()
	l.pending.Add(1)
	m.buffered.Add(1)
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *lane) take() (item, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.q) == 0 {
		return item{}, false
	}
	it := l.q[0]
	l.q[0] = item{}
	l.q = l.q[1:]
	return it, true
}

func (l *lane) run() {
	defer close(l.done)
	var (
		cur     item
		have    bool
		backoff time.Duration
	)
	for {
		if !have {
			// Take nothing while inactive: a quote held here would sit
			// outside the buffer's bound and escape its overflow rule.
			select {
			case <-l.p.activeCh():
			case <-l.stop:
				return
			}
			if cur, have = l.take(); !have {
				select {
				case <-l.wake:
					continue
				case <-l.stop:
					return
				}
			}
		}
		select {
		case <-l.p.activeCh():
		case <-l.stop:
			return
		}
		err := l.publish(&cur)
		if err == nil {
			have, backoff = false, 0
			l.pending.Add(-1)
			l.p.cfg.metrics.buffered.Add(-1)
			continue
		}
		if errors.Is(err, errFenced) {
			l.p.fence(l.symbol, err)
			<-l.stop // the ingest ends its term and closes the publisher
			return
		}
		l.p.cfg.metrics.publishErrors.Add(1)
		if backoff == 0 {
			l.p.cfg.log.Warn("publish failed; retrying", "symbol", l.symbol, "err", err)
		}
		backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.stop:
			t.Stop()
			return
		}
	}
}

// init reads the symbol's last message: its seq goes on from there and the
// first publish expects that message to be the subject's last.
func (l *lane) init() error {
	ctx, cancel := context.WithTimeout(l.p.ctx, publishTimeout)
	defer cancel()
	m, err := l.p.cfg.stream.GetLastMsgForSubject(ctx, l.subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		l.seq, l.prev = 0, 0
	case err != nil:
		return fmt.Errorf("read the last quote: %w", err)
	default:
		l.seq, _ = strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
		l.prev = m.Sequence
	}
	l.inited = true
	return nil
}

// publish stores it once. The message ID (prefix + seq) is the same on
// every retry of it; the expected last subject sequence is the stream
// sequence of the symbol's previous message, so nothing is stored out of
// order or by two writers.
func (l *lane) publish(it *item) error {
	if !l.inited {
		if err := l.init(); err != nil {
			return err
		}
	}
	seq := l.seq + 1
	id := l.idPrefix + strconv.FormatUint(seq, 10)
	msg := nats.NewMsg(l.subject)
	msg.Data = it.data
	msg.Header.Set(HeaderSeq, strconv.FormatUint(seq, 10))
	msg.Header.Set(HeaderPrev, strconv.FormatUint(l.prev, 10))
	msg.Header.Set(HeaderReceived, it.at.UTC().Format(time.RFC3339Nano))
	if it.lost > 0 {
		msg.Header.Set(HeaderLost, strconv.FormatUint(it.lost, 10))
	}
	ctx, cancel := context.WithTimeout(l.p.ctx, publishTimeout)
	defer cancel()
	ack, err := l.p.cfg.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(id), jetstream.WithExpectLastSequencePerSubject(l.prev), jetstream.WithRetryAttempts(0))
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		if ack.Stream != l.p.cfg.names.stream {
			return fmt.Errorf("%s stored in stream %s, not %s", l.subject, ack.Stream, l.p.cfg.names.stream)
		}
		l.stored(seq, ack.Sequence)
		if !ack.Duplicate {
			l.p.cfg.metrics.published.Add(1)
		}
		return nil
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
		// The expected-sequence check runs before deduplication, so a
		// retry of a message that was stored (its ack lost) lands here
		// too: the subject's last message tells which case this is.
		return l.reconcile(ctx, id, seq)
	}
	return err
}

func (l *lane) stored(seq, streamSeq uint64) {
	l.seq, l.prev = seq, streamSeq
	for {
		cur := l.p.maxAck.Load()
		if streamSeq <= cur || l.p.maxAck.CompareAndSwap(cur, streamSeq) {
			return
		}
	}
}

func (l *lane) reconcile(ctx context.Context, id string, seq uint64) error {
	m, err := l.p.cfg.stream.GetLastMsgForSubject(ctx, l.subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		// The subject was emptied (the symbol was deleted on an edge
		// and purged, or the stream was recreated): go on from nothing.
		l.prev = 0
		return fmt.Errorf("%s: subject emptied under the publisher; starting it again", l.subject)
	case err != nil:
		return fmt.Errorf("reconcile: %w", err)
	case m.Header.Get(headerMsgID) == id:
		l.stored(seq, m.Sequence) // our earlier attempt was stored
		return nil
	}
	return fmt.Errorf("%w: %s holds message %s at %d", errFenced, l.subject, m.Header.Get(headerMsgID), m.Sequence)
}
