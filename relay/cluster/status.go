package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

// DefaultReportEvery is how often the leader ingest refreshes the counters
// of every symbol's report; state changes are written at once.
const DefaultReportEvery = 5 * time.Second

// report is a symbol's status as the leader ingest writes it (key
// s.<token> of the status bucket); every edge serves it as it is, so
// /v1/symbols and status events are identical on every edge.
type report struct {
	Symbol      string       `json:"symbol"`
	Upstream    string       `json:"upstream"`
	State       relay.State  `json:"state"`
	Reason      string       `json:"reason,omitempty"`
	At          time.Time    `json:"at"`
	Connected   bool         `json:"connected"`
	EverLive    bool         `json:"ever_live"`
	LastQuoteAt time.Time    `json:"last_quote_at"`
	Frames      uint64       `json:"frames"`
	Quotes      uint64       `json:"quotes"`
	Ignored     uint64       `json:"ignored"`
	Reconnects  uint64       `json:"reconnects"`
	Drops       uint64       `json:"drops"`
	LastError   string       `json:"last_error,omitempty"`
	LastErrorAt time.Time    `json:"last_error_at"`
	Preset      string       `json:"preset,omitempty"`
	Channel     string       `json:"channel,omitempty"`
	Fields      relay.Fields `json:"fields"`
	// Holder is the lease holder that wrote the report.
	Holder string `json:"holder"`
}

func reportOf(st relay.SymbolStatus) report {
	return report{
		Symbol: st.Symbol, Upstream: st.Upstream, State: st.State, Connected: st.Connected, EverLive: st.EverLive,
		LastQuoteAt: st.LastQuoteAt, Frames: st.Frames, Quotes: st.Quotes, Ignored: st.Ignored,
		Reconnects: st.Reconnects, Drops: st.Drops, LastError: st.LastError, LastErrorAt: st.LastErrorAt,
		Preset: st.Preset, Channel: st.Channel, Fields: st.Fields,
	}
}

func (r report) status() relay.SymbolStatus {
	return relay.SymbolStatus{
		Symbol: r.Symbol, Upstream: r.Upstream, State: r.State, Connected: r.Connected, EverLive: r.EverLive,
		LastQuoteAt: r.LastQuoteAt, Frames: r.Frames, Quotes: r.Quotes, Ignored: r.Ignored,
		Reconnects: r.Reconnects, Drops: r.Drops, LastError: r.LastError, LastErrorAt: r.LastErrorAt,
		Preset: r.Preset, Channel: r.Channel, Fields: r.Fields,
	}
}

// upstreamInfo is one entry of meta.upstreams: what an edge needs to
// accept PUT /v1/symbols naming an upstream.
type upstreamInfo struct {
	Name    string `json:"name"`
	Preset  string `json:"preset,omitempty"`
	Channel string `json:"channel,omitempty"`
}

// transition is a state change reported by the engine.
type transition struct {
	symbol string
	state  relay.State
	reason string
	at     time.Time
}

// maxTransitions bounds the reporter's queue; past it the oldest changes
// are coalesced into the periodic refresh (the final state is never lost).
const maxTransitions = 4096

// reporter writes the engine's status reports into the status bucket: each
// state change in order, and the counters every ReportEvery. It owns one
// goroutine; close waits for it.
type reporter struct {
	kv     jetstream.KeyValue
	holder string
	every  time.Duration
	log    *slog.Logger
	status func(symbol string) (relay.SymbolStatus, bool)
	all    func() []relay.SymbolStatus

	mu      sync.Mutex
	queue   []transition
	removed map[string]bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	// Owned by run.
	last map[string]report
}

func newReporter(kv jetstream.KeyValue, holder string, every time.Duration, log *slog.Logger) *reporter {
	return &reporter{
		kv: kv, holder: holder, every: every, log: log, removed: map[string]bool{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), last: map[string]report{},
	}
}

// start runs the reporter on the engine's status functions.
func (r *reporter) start(status func(string) (relay.SymbolStatus, bool), all func() []relay.SymbolStatus) {
	r.status, r.all = status, all
	go r.run()
}

// changed queues a state change; it never blocks.
func (r *reporter) changed(symbol string, state relay.State, reason string, at time.Time) {
	r.mu.Lock()
	if len(r.queue) >= maxTransitions {
		r.queue = r.queue[1:]
	}
	r.queue = append(r.queue, transition{symbol, state, reason, at})
	delete(r.removed, symbol)
	r.mu.Unlock()
	r.kick()
}

// forget deletes a removed symbol's report.
func (r *reporter) forget(symbol string) {
	r.mu.Lock()
	r.removed[symbol] = true
	r.mu.Unlock()
	r.kick()
}

func (r *reporter) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *reporter) close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	if r.status != nil {
		<-r.done
	}
}

func (r *reporter) run() {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			r.drain()
			return
		case <-r.wake:
			r.drain()
		case <-t.C:
			r.drain()
			r.refresh()
		}
	}
}

// drain writes the queued changes and deletions.
func (r *reporter) drain() {
	r.mu.Lock()
	q := r.queue
	r.queue = nil
	removed := r.removed
	r.removed = map[string]bool{}
	r.mu.Unlock()
	for _, tr := range q {
		if removed[tr.symbol] {
			continue
		}
		rep := report{Symbol: tr.symbol, State: tr.state}
		if st, ok := r.status(tr.symbol); ok {
			rep = reportOf(st)
		}
		rep.State, rep.Reason, rep.At = tr.state, tr.reason, tr.at.UTC()
		r.put(rep)
	}
	for sym := range removed {
		delete(r.last, sym)
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		if err := r.kv.Purge(ctx, statusKey(sym)); err != nil {
			r.log.Debug("status: delete report", "symbol", sym, "err", err)
		}
		cancel()
	}
}

// refresh rewrites the reports whose counters moved.
func (r *reporter) refresh() {
	for _, st := range r.all() {
		rep := reportOf(st)
		if prev, ok := r.last[st.Symbol]; ok {
			rep.Reason, rep.At = prev.Reason, prev.At
			if prev.State != rep.State {
				// A change not queued (the queue overflowed): write it.
				rep.At = time.Now().UTC()
			}
		} else {
			rep.At = time.Now().UTC()
		}
		r.put(rep)
	}
}

func (r *reporter) put(rep report) {
	rep.Holder = r.holder
	if prev, ok := r.last[rep.Symbol]; ok && prev == rep {
		return
	}
	b, _ := json.Marshal(rep)
	if prev, ok := r.last[rep.Symbol]; ok {
		pb, _ := json.Marshal(prev)
		if bytes.Equal(pb, b) {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if _, err := r.kv.Put(ctx, statusKey(rep.Symbol), b); err != nil {
		// Not kept as written: the next refresh tries again.
		r.log.Debug("status: write report", "symbol", rep.Symbol, "err", err)
		return
	}
	r.last[rep.Symbol] = rep
}
