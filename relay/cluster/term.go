package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

// lead runs one leadership term: the engine holds the upstream sockets,
// the publisher stores their quotes, the reporter their states, and the
// symbol set drives the engine. The lease is renewed every third of its
// TTL; the first failed renewal stops publishing (quotes are buffered)
// until a renewal succeeds again. The term ends when the lease is taken
// by another ingest or a lane finds another writer (buffers are dropped:
// the other ingest publishes), or at Close (buffers are published within
// Drain and the lease is given up at once).
func (in *Ingest) lead(js jetstream.JetStream, st jetstream.Stream, syms, status jetstream.KeyValue, ls *lease) error {
	in.metrics.leader.Store(true)
	in.metrics.terms.Add(1)
	defer in.metrics.leader.Store(false)
	in.log.Info("leading: this ingest holds the lease and publishes", "holder", in.cfg.ID)

	fenced := make(chan error, 1)
	rep := newReporter(status, in.cfg.ID, in.cfg.ReportEvery, in.log)
	pub := newPublisher(publisherConfig{
		js: js, stream: st, names: in.names, buffer: in.cfg.NATS.History, writer: in.cfg.ID,
		log: in.log, metrics: &in.metrics, onStatus: rep.changed,
		onFenced: func(_ string, err error) {
			select {
			case fenced <- err:
			default:
			}
		},
	})
	pub.setActive(true)
	eng, err := in.cfg.NewEngine(pub)
	if err != nil {
		pub.Close()
		rep.close()
		in.release(ls)
		return err
	}
	in.mu.Lock()
	in.engine = eng
	in.mu.Unlock()
	rep.start(eng.Status, eng.Statuses)
	wctx, wcancel := context.WithCancel(in.ctx)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		in.watchSymbols(wctx, syms, eng, st, rep)
	}()

	end := func(graceful bool) {
		wcancel()
		<-wdone
		in.mu.Lock()
		in.engine = nil
		in.mu.Unlock()
		eng.Close()
		if graceful {
			ctx, cancel := context.WithTimeout(context.Background(), in.cfg.Drain)
			if err := pub.flush(ctx); err != nil {
				in.log.Warn("shutdown: quotes left unpublished", "err", err)
			}
			cancel()
		}
		pub.Close()
		rep.close()
		if graceful {
			in.release(ls)
		}
	}

	renew := time.NewTicker(in.cfg.LeaseTTL / 3)
	defer renew.Stop()
	check := time.NewTicker(in.cfg.CheckEvery)
	defer check.Stop()
	failing := false
	for {
		select {
		case <-in.ctx.Done():
			end(true)
			return nil
		case err := <-fenced:
			in.metrics.fenced.Add(1)
			in.log.Warn("stepping down: another ingest publishes", "err", err)
			end(false)
			return nil
		case <-renew.C:
			ctx, cancel := context.WithTimeout(in.ctx, in.cfg.LeaseTTL/3)
			err := ls.renew(ctx)
			cancel()
			switch {
			case err == nil:
				if failing {
					in.log.Info("lease renewed again; publishing what was buffered")
				}
				failing = false
				pub.setActive(true)
			case errors.Is(err, errLeaseLost):
				in.log.Warn("stepping down: the lease expired and another ingest took it")
				end(false)
				return nil
			default:
				if !failing {
					in.log.Warn("lease renewal failed; buffering quotes until it succeeds", "err", err)
				}
				failing = true
				pub.setActive(false)
			}
		case <-check.C:
			in.checkStream(js, st, pub)
		}
	}
}

func (in *Ingest) release(ls *lease) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := ls.release(ctx); err != nil {
		in.log.Debug("lease release", "err", err)
	}
}

// checkStream notices a deleted stream (recreates it: a new epoch), a
// recreated one, and data loss (the last sequence went below one already
// acknowledged: a new epoch is written so IDs are never reused).
func (in *Ingest) checkStream(js jetstream.JetStream, st jetstream.Stream, pub *Publisher) {
	ctx, cancel := context.WithTimeout(in.ctx, publishTimeout)
	defer cancel()
	acked := pub.maxAck.Load() // before Info: every ack up to it is stored
	info, err := st.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err := ensureStream(ctx, js, in.names, in.cfg.NATS, true)
		if err != nil {
			in.setProblem(err)
			return
		}
		info = s.CachedInfo()
		in.log.Warn("the stream was deleted; created it again (a new epoch: clients get a reset)", "stream", in.names.stream)
	} else if err != nil {
		return
	}
	in.mu.Lock()
	old := in.epoch
	in.mu.Unlock()
	e := epochOf(info)
	switch {
	case e != old:
		in.log.Warn("the stream has a new epoch", "epoch", e, "was", old)
		pub.maxAck.Store(0)
	case info.State.LastSeq < acked:
		in.log.Error("the stream lost data: its last sequence is below one already stored; writing a new epoch", "last", info.State.LastSeq, "stored", acked)
		ne, err := bumpEpoch(ctx, js, in.names.stream, old)
		if err != nil {
			in.log.Error("could not write a new epoch", "err", err)
			return
		}
		in.metrics.epochBumps.Add(1)
		e = ne
		pub.maxAck.Store(0)
	}
	in.mu.Lock()
	in.epoch = e
	in.mu.Unlock()
}

// watchSymbols applies the symbol set to the engine: a put adds (or moves)
// a symbol, a delete removes it, purges its subject and its report.
func (in *Ingest) watchSymbols(ctx context.Context, syms jetstream.KeyValue, eng Engine, st jetstream.Stream, rep *reporter) {
	for ctx.Err() == nil {
		w, err := syms.WatchAll(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		in.applySymbols(ctx, w, eng, st, rep)
		w.Stop()
	}
}

func (in *Ingest) applySymbols(ctx context.Context, w jetstream.KeyWatcher, eng Engine, st jetstream.Stream, rep *reporter) {
	initial := map[string]bool{}
	loading := true
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case e, ok = <-w.Updates():
			if !ok {
				return
			}
		}
		if e == nil {
			// Initial values done: symbols deleted while no watcher ran go.
			loading = false
			for _, s := range eng.Statuses() {
				if !initial[s.Symbol] {
					in.removeSymbol(ctx, eng, st, rep, s.Symbol)
				}
			}
			continue
		}
		sym, err := Symbol(e.Key())
		if err != nil {
			in.log.Warn("symbol set: ignoring a bad key", "err", err)
			continue
		}
		if e.Operation() != jetstream.KeyValuePut {
			in.removeSymbol(ctx, eng, st, rep, sym)
			continue
		}
		var v symbolValue
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			in.log.Warn("symbol set: ignoring a bad value", "symbol", sym, "err", err)
			continue
		}
		if loading {
			initial[sym] = true
		}
		_, err = eng.Add(v.Upstream, relay.Symbol{Name: sym, Ref: v.Ref})
		if errors.Is(err, relay.ErrSymbolExists) {
			_ = eng.Remove(sym) // moved to another upstream
			_, err = eng.Add(v.Upstream, relay.Symbol{Name: sym, Ref: v.Ref})
		}
		if err != nil {
			in.log.Warn("symbol set: cannot subscribe", "symbol", sym, "upstream", v.Upstream, "err", err)
			rep.changed(sym, relay.StateRejected, err.Error(), time.Now())
		}
	}
}

func (in *Ingest) removeSymbol(ctx context.Context, eng Engine, st jetstream.Stream, rep *reporter, sym string) {
	if err := eng.Remove(sym); err != nil && !errors.Is(err, relay.ErrUnknownSymbol) {
		in.log.Warn("symbol set: remove", "symbol", sym, "err", err)
	}
	rep.forget(sym)
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := st.Purge(pctx, jetstream.WithPurgeSubject(in.names.subject(sym))); err != nil {
		in.log.Warn("symbol set: purge the removed symbol's quotes", "symbol", sym, "err", err)
	}
}
