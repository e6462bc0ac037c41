package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

// The edge's three KV watchers. Each runs until its context ends (nil) or
// its watch breaks (an error: the session starts again).

// watchSymbols keeps the symbol set and the broker's symbols in step;
// loaded is closed once the initial values are in.
func (e *Edge) watchSymbols(ctx context.Context, s *edgeSession, loaded chan struct{}) error {
	w, err := s.symKV.WatchAll(ctx)
	if err != nil {
		return describe("watch "+e.names.symbols, err)
	}
	defer w.Stop()
	initial := map[string]bool{}
	loading := true
	for {
		var ent jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ent, ok = <-w.Updates():
			if !ok {
				return errors.New("the symbol set's watch ended")
			}
		}
		if ent == nil {
			loading = false
			e.mu.Lock()
			var gone []string
			for sym := range e.syms {
				if !initial[sym] {
					gone = append(gone, sym)
				}
			}
			if !e.symsLoaded {
				close(e.loaded)
			}
			e.symsLoaded = true
			e.mu.Unlock()
			for _, sym := range gone {
				e.forgetSymbol(sym, 0)
			}
			close(loaded)
			continue
		}
		sym, err := Symbol(ent.Key())
		if err != nil {
			e.log.Warn("symbol set: ignoring a bad key", "err", err)
			continue
		}
		if ent.Operation() != jetstream.KeyValuePut {
			e.forgetSymbol(sym, ent.Revision())
			continue
		}
		var v symbolValue
		if err := json.Unmarshal(ent.Value(), &v); err != nil {
			e.log.Warn("symbol set: ignoring a bad value", "symbol", sym, "err", err)
			continue
		}
		if loading {
			initial[sym] = true
		}
		e.learnSymbol(sym, v, ent.Revision())
		e.mu.Lock()
		rep, has := e.reports[sym]
		e.mu.Unlock()
		if has {
			e.emit(sym, rep.State, rep.Reason, rep.At)
		}
	}
}

// watchStatus follows the leader ingest's reports.
func (e *Edge) watchStatus(ctx context.Context, s *edgeSession, _ chan struct{}) error {
	w, err := s.statusKV.WatchAll(ctx)
	if err != nil {
		return describe("watch "+e.names.status, err)
	}
	defer w.Stop()
	for {
		var ent jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ent, ok = <-w.Updates():
			if !ok {
				return errors.New("the status reports' watch ended")
			}
		}
		if ent == nil {
			continue
		}
		put := ent.Operation() == jetstream.KeyValuePut
		if ent.Key() == upstreamsKey {
			var ups []upstreamInfo
			if put && json.Unmarshal(ent.Value(), &ups) == nil {
				e.mu.Lock()
				e.upstreams = ups
				e.mu.Unlock()
			}
			continue
		}
		tok, isSym := strings.CutPrefix(ent.Key(), "s.")
		sym, err := Symbol(tok)
		if !isSym || err != nil {
			continue
		}
		if !put {
			e.mu.Lock()
			delete(e.reports, sym)
			e.mu.Unlock()
			continue
		}
		var rep report
		if err := json.Unmarshal(ent.Value(), &rep); err != nil || rep.Symbol != sym {
			e.log.Warn("status: ignoring a bad report", "symbol", sym)
			continue
		}
		e.mu.Lock()
		e.reports[sym] = rep
		emit := !e.held[sym]
		if !emit && rep.At.After(e.heldAt) {
			// Newer than the hold: a (new) leader reports.
			delete(e.held, sym)
			emit = true
		}
		e.mu.Unlock()
		if emit {
			e.emit(sym, rep.State, rep.Reason, rep.At)
		}
	}
}

// watchLease follows the lease: while no ingest holds it, nothing is
// published and every symbol is marked stale until its next quote or a
// newer report.
func (e *Edge) watchLease(ctx context.Context, s *edgeSession, _ chan struct{}) error {
	w, err := s.leaseKV.Watch(ctx, leaseKey)
	if err != nil {
		return describe("watch "+e.names.lease, err)
	}
	defer w.Stop()
	sawValue := false
	for {
		var ent jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ent, ok = <-w.Updates():
			if !ok {
				return errors.New("the lease's watch ended")
			}
		}
		if ent == nil {
			if !sawValue {
				e.setHolder("")
				e.holdAll("no ingest publishes (no lease holder)")
			}
			continue
		}
		sawValue = true
		if ent.Operation() != jetstream.KeyValuePut {
			e.setHolder("")
			e.holdAll("no ingest publishes (the lease expired or was given up)")
			continue
		}
		var v leaseValue
		_ = json.Unmarshal(ent.Value(), &v)
		e.setHolder(v.Holder)
		e.releaseHolds(holdNATS)
	}
}

func (e *Edge) setHolder(h string) {
	e.mu.Lock()
	changed := e.holder != h
	e.holder = h
	e.mu.Unlock()
	e.metrics.setHolder(h)
	if changed && h != "" {
		e.log.Info("lease holder", "holder", h)
	}
}

// holdAll marks every symbol stale for reason (NATS unreachable, no
// ingest), with a status event each.
func (e *Edge) holdAll(reason string) {
	now := time.Now()
	e.mu.Lock()
	var syms []string
	for sym := range e.syms {
		e.held[sym] = true
		syms = append(syms, sym)
	}
	e.holdReason, e.heldAt = reason, now
	e.mu.Unlock()
	for _, sym := range syms {
		e.emit(sym, relay.StateStale, reason, now)
	}
}

// releaseHolds ends the holds made for reason, back to the reports' states.
func (e *Edge) releaseHolds(reason string) {
	e.mu.Lock()
	if e.holdReason != reason || len(e.held) == 0 {
		e.mu.Unlock()
		return
	}
	type st struct {
		sym string
		rep report
	}
	var back []st
	for sym := range e.held {
		back = append(back, st{sym, e.reports[sym]})
	}
	clear(e.held)
	e.mu.Unlock()
	for _, b := range back {
		if b.rep.State != "" {
			e.emit(b.sym, b.rep.State, b.rep.Reason, time.Now())
		}
	}
}

// emit sends a status event when sym's state differs from the last one
// sent (the broker also flags its REST quotes stale from it).
func (e *Edge) emit(sym string, state relay.State, reason string, at time.Time) {
	if !e.broker.Has(sym) {
		return
	}
	e.mu.Lock()
	if e.emitted[sym] == state {
		e.mu.Unlock()
		return
	}
	e.emitted[sym] = state
	e.mu.Unlock()
	e.broker.PublishStatus(sym, state, reason, at)
}
