package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

// edgeSession is what an edge holds while connected.
type edgeSession struct {
	js                       jetstream.JetStream
	stream                   jetstream.Stream
	symStream                jetstream.Stream // the symbol bucket's stream
	symKV, statusKV, leaseKV jetstream.KeyValue

	cons jetstream.Consumer
	cc   jetstream.ConsumeContext
	errs chan struct{} // the consumer reported an error
}

var errDisconnected = errors.New("NATS not reachable")

const holdNATS = "NATS not reachable: quotes may be missing"

func (e *Edge) run() {
	defer close(e.done)
	for e.ctx.Err() == nil {
		if !e.nc.IsConnected() {
			e.setProblem(errDisconnected, false)
			e.holdAll(holdNATS)
			select {
			case <-e.ctx.Done():
				return
			case <-e.up:
			case <-time.After(time.Second):
			}
			continue
		}
		err := e.runSession()
		if e.ctx.Err() != nil {
			return
		}
		if err != nil {
			var c *conflictError
			e.setProblem(err, errors.As(err, &c))
			if !e.nc.IsConnected() {
				e.holdAll(holdNATS)
			}
		}
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// conflictError is a stream whose settings conflict with the config.
type conflictError struct{ err error }

func (c *conflictError) Error() string { return c.err.Error() }
func (c *conflictError) Unwrap() error { return c.err }

func (e *Edge) setProblem(err error, conflict bool) {
	e.mu.Lock()
	changed := (err == nil) != (e.problem == nil) || (err != nil && e.problem != nil && err.Error() != e.problem.Error())
	e.problem, e.conflict = err, conflict
	e.mu.Unlock()
	if changed && err != nil {
		e.log.Warn("edge: problem", "err", err)
	}
}

// open opens the stream and the buckets; none is created by an edge.
func (e *Edge) open(ctx context.Context) (*edgeSession, error) {
	js, err := jetstream.New(e.nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s := &edgeSession{js: js, errs: make(chan struct{}, 1)}
	if s.stream, err = ensureStream(ctx, js, e.names, e.cfg.NATS, false); err != nil {
		return nil, err
	}
	bucket := func(name string) (jetstream.KeyValue, error) {
		kv, err := js.KeyValue(ctx, name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("bucket %s not found: no ingest has created it yet", name)
		}
		if err != nil {
			return nil, describe("bucket "+name, err)
		}
		return kv, nil
	}
	if s.symKV, err = bucket(e.names.symbols); err != nil {
		return nil, err
	}
	if s.statusKV, err = bucket(e.names.status); err != nil {
		return nil, err
	}
	if s.leaseKV, err = bucket(e.names.lease); err != nil {
		return nil, err
	}
	if s.symStream, err = js.Stream(ctx, "KV_"+e.names.symbols); err != nil {
		return nil, describe("bucket "+e.names.symbols, err)
	}
	return s, nil
}

// runSession mirrors while connected: it checks the epoch, starts the KV
// watchers, waits for the symbol set, then consumes from where it stopped.
func (e *Edge) runSession() error {
	s, err := e.open(e.ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	watchErr := make(chan error, 3)
	loaded := make(chan struct{})
	defer func() {
		e.mu.Lock()
		e.session = nil
		e.mu.Unlock()
		e.stopConsumer(s)
		cancel()
		wg.Wait()
	}()
	from, err := e.check(ctx, s)
	if err != nil {
		return err
	}
	for _, w := range []func(context.Context, *edgeSession, chan struct{}) error{e.watchSymbols, e.watchStatus, e.watchLease} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchErr <- w(ctx, s, loaded)
		}()
	}
	select {
	case <-loaded:
	case err := <-watchErr:
		return err
	case <-ctx.Done():
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the symbol set could not be read within 10s")
	}
	e.mu.Lock()
	e.session = s
	e.mu.Unlock()
	e.setProblem(nil, false)
	if err := e.startConsumer(ctx, s, from); err != nil {
		return err
	}
	tick := time.NewTicker(e.cfg.CheckEvery)
	defer tick.Stop()
	for {
		restart := false
		select {
		case <-ctx.Done():
			return nil
		case <-e.down:
			if !e.nc.IsConnected() {
				e.holdAll(holdNATS)
				return errDisconnected
			}
		case err := <-watchErr:
			return err
		case <-s.errs:
			restart = true
		case <-e.kick:
		case <-e.up:
			restart = true // reconnected: check, and consume from where we are
		case <-tick.C:
			e.checkReady(ctx, s)
		}
		next, err := e.check(ctx, s)
		if err != nil {
			return err
		}
		e.applyMu.Lock()
		halted := e.halted
		e.applyMu.Unlock()
		if restart || halted {
			e.stopConsumer(s)
		}
		if s.cc == nil {
			if err := e.startConsumer(ctx, s, next); err != nil {
				return err
			}
		}
	}
}

// check compares the stream's identity and last sequence with what was
// applied. A new epoch (the stream was recreated or its epoch rewritten)
// or data loss (the last sequence went below what this edge applied: a
// new epoch is written) stops the consumer, resets every client stream
// through the broker and returns 1, the position to consume from;
// otherwise it returns the next position after the last one handled.
func (e *Edge) check(ctx context.Context, s *edgeSession) (uint64, error) {
	cur, applied, synced := e.broker.Applied()
	consumed := e.consumed.Load()
	ictx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	info, err := s.stream.Info(ictx)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, fmt.Errorf("stream %s not found (deleted?): waiting for an ingest to create it", e.names.stream)
		}
		return 0, describe("stream "+e.names.stream, err)
	}
	e.metrics.streamLast.Store(info.State.LastSeq)
	e.mu.Lock()
	if !e.targetSet {
		e.target, e.targetSet = info.State.LastSeq, true
	}
	e.mu.Unlock()
	ep := epochOf(info)
	if synced && ep == cur && info.State.LastSeq < max(applied, consumed) {
		e.log.Error("the stream lost data: its last sequence is below what this edge applied; writing a new epoch", "last", info.State.LastSeq, "applied", max(applied, consumed))
		ne, err := bumpEpoch(ictx, s.js, e.names.stream, ep)
		if err != nil {
			return 0, fmt.Errorf("stream lost data; writing a new epoch: %w", err)
		}
		e.metrics.epochBumps.Add(1)
		ep = ne
	}
	if synced && ep == cur {
		return consumed + 1, nil
	}
	e.stopConsumer(s)
	e.applyMu.Lock()
	if e.broker.SetEpoch(ep) {
		e.metrics.epochs.Add(1)
		e.log.Warn("the stream has a new epoch: every client stream gets a reset", "epoch", ep, "was", cur)
	}
	e.consumed.Store(0)
	e.applyMu.Unlock()
	return 1, nil
}

// startConsumer reads the stream from position from with one ordered
// consumer; deliveries of earlier consumers are ignored from now on.
func (e *Edge) startConsumer(ctx context.Context, s *edgeSession, from uint64) error {
	e.applyMu.Lock()
	e.gen++
	gen := e.gen
	e.halted = false
	e.applyMu.Unlock()
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{e.names.filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := s.stream.OrderedConsumer(cctx, cfg)
	if err != nil {
		return describe("consumer", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { e.handle(s, gen, m) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// Whatever it was (a missed heartbeat, a deleted consumer, a
			// reconnect), the stream is checked before anything more is
			// applied: the ordered consumer alone would resume after its
			// old position even in a recreated stream and skip silently.
			e.log.Debug("consumer error", "err", err)
			e.applyMu.Lock()
			if gen == e.gen {
				e.halted = true
			}
			e.applyMu.Unlock()
			signal(s.errs)
		}))
	if err != nil {
		return describe("consumer", err)
	}
	s.cons, s.cc = cons, cc
	return nil
}

func (e *Edge) stopConsumer(s *edgeSession) {
	if s.cc == nil {
		return
	}
	s.cc.Stop()
	e.applyMu.Lock()
	e.gen++
	e.applyMu.Unlock()
	s.cc, s.cons = nil, nil
}

// handle applies one message of the stream. It runs on the consumer's
// delivery goroutine and never blocks on clients (the broker's publishing
// does not).
func (e *Edge) handle(s *edgeSession, gen uint64, m jetstream.Msg) {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	if gen != e.gen || e.halted {
		return
	}
	md, err := m.Metadata()
	if err != nil {
		e.halted = true
		signal(s.errs)
		return
	}
	n := md.Sequence.Stream
	if n <= e.consumed.Load() {
		return
	}
	e.metrics.lag.Store(md.NumPending)
	sym, err := e.names.symbolOf(m.Subject())
	if err != nil {
		e.log.Warn("stream: skipping a message on a subject that is no symbol", "err", err, "seq", n)
		e.consumed.Store(n)
		return
	}
	q, err := quoteOf(sym, n, m, md.Timestamp)
	if err != nil {
		e.log.Warn("stream: skipping a malformed quote", "symbol", sym, "seq", n, "err", err)
		e.consumed.Store(n)
		return
	}
	_, err = e.broker.ApplyAt(q)
	if errors.Is(err, relay.ErrUnknownSymbol) && e.inSet(s, sym) {
		if _, aerr := e.broker.AddMirrorSymbol(sym); aerr == nil || errors.Is(aerr, relay.ErrClosed) {
			_, err = e.broker.ApplyAt(q)
		}
	}
	switch {
	case err == nil:
		if q.Lost > 0 {
			e.metrics.holes.Add(1)
		}
	case errors.Is(err, relay.ErrUnknownSymbol):
		// Deleted from the set: its subject is (being) purged, so an
		// edge that reads the stream later never sees it either.
	case errors.Is(err, relay.ErrOutOfOrder), errors.Is(err, relay.ErrClosed):
	default:
		e.log.Warn("stream: cannot apply a quote", "symbol", sym, "seq", n, "err", err)
	}
	e.consumed.Store(n)
	e.metrics.applied.Store(n)
	e.afterQuote(sym, n, md.NumPending, err == nil)
}

// quoteOf reads a quote message.
func quoteOf(sym string, n uint64, m jetstream.Msg, stored time.Time) (relay.MirrorQuote, error) {
	h := m.Headers()
	num := func(k string) (uint64, error) {
		v := h.Get(k)
		if v == "" {
			return 0, nil
		}
		return strconv.ParseUint(v, 10, 64)
	}
	q := relay.MirrorQuote{Symbol: sym, N: n, ReceivedAt: stored, Data: m.Data()}
	var err1, err2, err3 error
	q.Seq, err1 = num(HeaderSeq)
	q.Prev, err2 = num(HeaderPrev)
	q.Lost, err3 = num(HeaderLost)
	if err := errors.Join(err1, err2, err3); err != nil {
		return q, fmt.Errorf("headers: %w", err)
	}
	if v := h.Get(HeaderReceived); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			q.ReceivedAt = t
		}
	}
	if !json.Valid(q.Data) {
		return q, errors.New("payload is not JSON")
	}
	if bytes.ContainsAny(q.Data, "\r\n") {
		var b bytes.Buffer
		_ = json.Compact(&b, q.Data)
		q.Data = b.Bytes()
	}
	return q, nil
}

// inSet tells whether sym is in the symbol set, after this edge's watcher
// has caught up with the bucket (a quote can arrive before the set's put
// reached this edge). Called with applyMu held, rarely (new symbols).
func (e *Edge) inSet(s *edgeSession, sym string) bool {
	ctx, cancel := context.WithTimeout(e.ctx, publishTimeout)
	defer cancel()
	if info, err := s.symStream.Info(ctx); err == nil {
		last := info.State.LastSeq
		for deadline := time.Now().Add(publishTimeout); time.Now().Before(deadline); {
			e.mu.Lock()
			rev := e.symsRev
			e.mu.Unlock()
			if rev >= last {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.syms[sym]
	return ok
}

// afterQuote releases a symbol the edge held stale and moves readiness.
func (e *Edge) afterQuote(sym string, n, pending uint64, applied bool) {
	e.mu.Lock()
	var emit bool
	if applied && e.held[sym] {
		delete(e.held, sym)
		emit = true
	}
	if !e.ready && e.symsLoaded && e.targetSet && (n >= e.target || pending == 0) {
		e.markReadyLocked()
	}
	e.mu.Unlock()
	if emit {
		e.emit(sym, relay.StateLive, "quotes flowing", time.Now())
	}
}

func (e *Edge) markReadyLocked() {
	e.ready = true
	e.metrics.ready.Store(true)
	e.log.Info("edge ready: caught up with the stream", "target", e.target)
}

// checkReady marks the edge ready when the consumer has nothing left to
// deliver (the stream's newest messages may belong to purged symbols, so
// the target sequence itself may never be delivered).
func (e *Edge) checkReady(ctx context.Context, s *edgeSession) {
	e.mu.Lock()
	need := !e.ready && e.symsLoaded && e.targetSet
	target := e.target
	e.mu.Unlock()
	if !need || s.cons == nil {
		return
	}
	if e.consumed.Load() >= target {
		e.mu.Lock()
		e.markReadyLocked()
		e.mu.Unlock()
		return
	}
	ictx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	info, err := s.cons.Info(ictx)
	if err == nil && info.NumPending == 0 && info.Delivered.Stream <= e.consumed.Load() {
		e.mu.Lock()
		e.markReadyLocked()
		e.mu.Unlock()
	}
}
