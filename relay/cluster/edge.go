package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

// EdgeConfig configures an Edge. A zero field means its default.
type EdgeConfig struct {
	NATS Config
	// Broker is the edge's in-memory broker (the API serves it); required,
	// with History equal to NATS.History. NewEdge makes it a mirror.
	Broker *relay.Broker
	// CheckEvery is how often the stream's identity and last sequence are
	// checked (besides on every consumer error and reconnect); default 2s.
	CheckEvery time.Duration
}

// Edge mirrors the quote stream into its broker with one ordered consumer,
// and serves the symbol set and the ingest's status reports from the KV
// buckets; it implements what the API needs of upstreams (api.Upstreams).
// It owns its goroutines; Close stops them and is idempotent. All methods
// are safe for concurrent use.
type Edge struct {
	cfg     EdgeConfig
	names   names
	log     *slog.Logger
	nc      *nats.Conn
	broker  *relay.Broker
	metrics edgeMetrics

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	up     chan struct{} // (re)connected
	down   chan struct{} // disconnected
	kick   chan struct{} // check the stream now
	loaded chan struct{} // closed once the symbol set is read

	// applyMu serialises everything that feeds the broker quotes: the
	// consumer's handler and consumer restarts.
	applyMu sync.Mutex
	gen     uint64 // consumer generation; older deliveries are ignored
	halted  bool   // a message could not be handled: restart from it
	// consumed is the stream sequence of the last message handled
	// (written under applyMu).
	consumed atomic.Uint64

	mu         sync.Mutex
	session    *edgeSession
	problem    error
	conflict   bool // problem is a config conflict (reported even when ready)
	ready      bool
	target     uint64 // the stream's last sequence as of the edge's start
	targetSet  bool
	syms       map[string]symbolValue
	symsLoaded bool
	symsRev    uint64
	reports    map[string]report
	upstreams  []upstreamInfo
	emitted    map[string]relay.State
	held       map[string]bool // the edge itself marks the symbol stale
	holdReason string
	heldAt     time.Time
	holder     string
}

// NewEdge validates cfg, connects (in the background when NATS is not
// reachable yet) and starts mirroring.
func NewEdge(cfg EdgeConfig) (*Edge, error) {
	if err := cfg.NATS.Validate(); err != nil {
		return nil, err
	}
	if cfg.Broker == nil {
		return nil, errors.New("edge: Broker is required")
	}
	cfg.NATS = cfg.NATS.withDefaults()
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 2 * time.Second
	}
	n, _ := newNames(cfg.NATS.Stream)
	e := &Edge{
		cfg: cfg, names: n, log: cfg.NATS.Logger.With("role", "edge"), broker: cfg.Broker,
		done: make(chan struct{}), up: make(chan struct{}, 1), down: make(chan struct{}, 1), kick: make(chan struct{}, 1),
		loaded:  make(chan struct{}),
		problem: errors.New("connecting to NATS"),
		syms:    map[string]symbolValue{}, reports: map[string]report{}, emitted: map[string]relay.State{}, held: map[string]bool{},
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.broker.EnableMirror(func() { signal(e.kick) })
	nc, err := connect(cfg.NATS, connHooks{
		up: func() {
			e.metrics.connected.Store(true)
			signal(e.up)
		},
		down: func(error) {
			e.metrics.connected.Store(false)
			signal(e.down)
		},
	})
	if err != nil {
		return nil, err
	}
	e.nc = nc
	go e.run()
	return e, nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Collector returns the edge's Prometheus metrics.
func (e *Edge) Collector() *edgeMetrics { return &e.metrics }

// Ready returns nil once the edge has read the symbol set and applied the
// stream up to its last sequence as of the edge's start, and while nothing
// in NATS conflicts with the config; otherwise the problem, in words.
// After that, a NATS outage does not make the edge unready: it keeps
// serving what it has, marked stale.
func (e *Edge) Ready() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.conflict:
		return e.problem
	case e.ready:
		return nil
	case e.problem != nil:
		return e.problem
	case !e.symsLoaded:
		return errors.New("reading the symbol set")
	}
	_, applied, _ := e.broker.Applied()
	return fmt.Errorf("catching up with the stream: at %d of %d", max(applied, e.consumed.Load()), e.target)
}

// WaitSymbols waits up to d until the edge has read the symbol set
// (before, no symbol can be called unknown); it reports whether it has.
func (e *Edge) WaitSymbols(ctx context.Context, d time.Duration) bool {
	select {
	case <-e.loaded:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.loaded:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// Upstreams returns the upstream names the leader ingest reported.
func (e *Edge) Upstreams() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.upstreams))
	for i, u := range e.upstreams {
		out[i] = u.Name
	}
	return out
}

// Statuses returns every symbol of the set with the ingest's report, sorted.
func (e *Edge) Statuses() []relay.SymbolStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]relay.SymbolStatus, 0, len(e.syms))
	for sym := range e.syms {
		out = append(out, e.statusLocked(sym))
	}
	slices.SortFunc(out, func(a, b relay.SymbolStatus) int {
		switch {
		case a.Symbol < b.Symbol:
			return -1
		case a.Symbol > b.Symbol:
			return 1
		}
		return 0
	})
	return out
}

// Status returns one symbol's status.
func (e *Edge) Status(symbol string) (relay.SymbolStatus, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.syms[symbol]; !ok {
		return relay.SymbolStatus{}, false
	}
	return e.statusLocked(symbol), true
}

func (e *Edge) statusLocked(sym string) relay.SymbolStatus {
	rep, ok := e.reports[sym]
	if !ok {
		rep = report{Symbol: sym, Upstream: e.syms[sym].Upstream, State: relay.StateConnecting}
		for _, u := range e.upstreams {
			if u.Name == rep.Upstream {
				rep.Preset, rep.Channel = u.Preset, u.Channel
			}
		}
	}
	st := rep.status()
	if e.held[sym] {
		st.State, st.LastError, st.LastErrorAt = relay.StateStale, e.holdReason, e.heldAt
	}
	return st
}

// Add puts the symbol into the set (any edge: the leader ingest
// subscribes). It reports false when the symbol is already there on that
// upstream.
func (e *Edge) Add(upstream string, sym relay.Symbol) (bool, error) {
	if err := relay.CheckSymbol(sym.Name); err != nil {
		return false, err
	}
	e.mu.Lock()
	known := slices.ContainsFunc(e.upstreams, func(u upstreamInfo) bool { return u.Name == upstream })
	s := e.session
	e.mu.Unlock()
	if !known {
		return false, fmt.Errorf("%w: %q (the leader ingest reports %v)", relay.ErrUnknownUpstream, upstream, e.Upstreams())
	}
	if s == nil {
		return false, fmt.Errorf("%w: NATS is not reachable, the symbol set cannot be changed now", relay.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(e.ctx, publishTimeout)
	defer cancel()
	val, _ := json.Marshal(symbolValue{Upstream: upstream, Ref: sym.Ref})
	for range 3 {
		cur, err := s.symKV.Get(ctx, Token(sym.Name))
		if err == nil {
			var v symbolValue
			_ = json.Unmarshal(cur.Value(), &v)
			if v.Upstream != upstream {
				return false, fmt.Errorf("%w: %q is on upstream %q", relay.ErrSymbolExists, sym.Name, v.Upstream)
			}
			e.learnSymbol(sym.Name, v, 0)
			return false, nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
			return false, fmt.Errorf("%w: symbol set: %v", relay.ErrUnavailable, err)
		}
		_, err = s.symKV.Create(ctx, Token(sym.Name), val)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // someone was faster: look again
		}
		if err != nil {
			return false, fmt.Errorf("%w: symbol set: %v", relay.ErrUnavailable, err)
		}
		e.learnSymbol(sym.Name, symbolValue{Upstream: upstream, Ref: sym.Ref}, 0)
		return true, nil
	}
	return false, errors.New("symbol set: changing too fast, try again")
}

// Remove deletes the symbol from the set and purges its quotes (the
// leader ingest unsubscribes and purges again after its last quote).
func (e *Edge) Remove(symbol string) error {
	e.mu.Lock()
	_, known := e.syms[symbol]
	s := e.session
	e.mu.Unlock()
	if !known {
		return fmt.Errorf("%w: %q", relay.ErrUnknownSymbol, symbol)
	}
	if s == nil {
		return fmt.Errorf("%w: NATS is not reachable, the symbol set cannot be changed now", relay.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(e.ctx, publishTimeout)
	defer cancel()
	if err := s.symKV.Delete(ctx, Token(symbol)); err != nil {
		return fmt.Errorf("%w: symbol set: %v", relay.ErrUnavailable, err)
	}
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(e.names.subject(symbol))); err != nil {
		e.log.Warn("purge the removed symbol's quotes", "symbol", symbol, "err", err)
	}
	e.forgetSymbol(symbol, 0)
	return nil
}

// learnSymbol records a symbol of the set and makes it known to the
// broker (rev: the set's revision that said so, 0 when unknown).
func (e *Edge) learnSymbol(sym string, v symbolValue, rev uint64) {
	e.mu.Lock()
	e.syms[sym] = v
	e.symsRev = max(e.symsRev, rev)
	e.mu.Unlock()
	if _, err := e.broker.AddMirrorSymbol(sym); err != nil && !errors.Is(err, relay.ErrClosed) {
		e.log.Warn("symbol set: add", "symbol", sym, "err", err)
	}
}

func (e *Edge) forgetSymbol(sym string, rev uint64) {
	e.mu.Lock()
	_, had := e.syms[sym]
	delete(e.syms, sym)
	delete(e.emitted, sym)
	delete(e.held, sym)
	e.symsRev = max(e.symsRev, rev)
	e.mu.Unlock()
	if had {
		_ = e.broker.RemoveSymbol(sym) // subscribers get "removed"
	}
}

// Close stops mirroring and closes the NATS connection. Idempotent.
func (e *Edge) Close() {
	e.cancel()
	<-e.done
	e.nc.Close()
}
