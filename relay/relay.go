package relay

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Sink is where a Relay sends what its upstreams produce: the Broker, or
// the JetStream publisher of an ingest. Publish must not block on
// consumers.
type Sink interface {
	AddSymbol(symbol string) (bool, error)
	RemoveSymbol(symbol string) error
	// Publish records a quote; data is compact JSON and is copied. A sink
	// that keeps no events (an ingest) returns a nil *Event.
	Publish(symbol string, data []byte, receivedAt time.Time) (*Event, error)
	PublishStatus(symbol string, state State, reason string, at time.Time)
}

var _ Sink = (*Broker)(nil)

// Config configures a Relay.
type Config struct {
	Upstreams []UpstreamConfig
	// Logger receives connection events; default discards.
	Logger *slog.Logger
}

// Relay holds the upstream connections of its symbols (one per symbol by
// default, several symbols per connection where an upstream says so) and
// sends their quotes and state changes to a Sink. All methods are safe for
// concurrent use.
type Relay struct {
	sink Sink
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	ups     map[string]*upstream
	upNames []string
	syms    map[string]*symbol
	closed  bool
	wg      sync.WaitGroup // connection owners
}

// upstream is one configured endpoint: its settings, the HTTP client that
// dials it, its connection budget and, with several symbols per
// connection, the connections that have room.
type upstream struct {
	cfg    UpstreamConfig
	client *http.Client
	header http.Header
	gate   *gate
	tmpl   upstreamTemplates
	conns  []*conn // shared connections (SymbolsPerConnection > 1); guarded by Relay.mu
}

// upstreamTemplates are an upstream's templates, parsed once.
type upstreamTemplates struct {
	url         template
	subscribe   []template
	unsubscribe []template
	appPing     template
	route       template
	resolve     pointerTemplate
	resolvePing []string
}

var (
	errRemoved  = errors.New("symbol removed")
	errShutdown = errors.New("relay shutting down")
)

// ErrUpstreamFull means an upstream has no room for another symbol within
// its max_connections.
var ErrUpstreamFull = errors.New("upstream is full")

// New validates cfg, registers every configured symbol with sink and starts
// connecting them. Close stops everything it started.
func New(cfg Config, sink Sink) (*Relay, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{sink: sink, log: log, ups: map[string]*upstream{}, syms: map[string]*symbol{}}
	for _, uc := range cfg.Upstreams {
		r.ups[uc.Name] = newUpstream(uc.withDefaults())
		r.upNames = append(r.upNames, uc.Name)
	}
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	for _, name := range r.upNames {
		for _, s := range r.ups[name].cfg.Symbols {
			if _, err := r.Add(name, s); err != nil {
				r.Close()
				return nil, err
			}
		}
	}
	return r, nil
}

// Validate checks every upstream and that names and symbols are unique;
// errors are *FieldError with keys as in the config file
// ("upstreams[1].symbols[0]").
func (cfg Config) Validate() error {
	names := map[string]bool{}
	seen := map[string]string{}
	for i, uc := range cfg.Upstreams {
		key := fmt.Sprintf("upstreams[%d]", i)
		if err := uc.Validate(); err != nil {
			return fieldErr(key, err)
		}
		if names[uc.Name] {
			return fieldErrf(key+".name", "duplicate upstream %q", uc.Name)
		}
		names[uc.Name] = true
		for j, s := range uc.Symbols {
			if other, dup := seen[s.Name]; dup {
				return fieldErrf(fmt.Sprintf("%s.symbols[%d]", key, j), "symbol %q is already on upstream %q", s.Name, other)
			}
			seen[s.Name] = uc.Name
		}
	}
	return nil
}

func newUpstream(uc UpstreamConfig) *upstream {
	up := &upstream{cfg: uc, client: uc.HTTPClient, header: http.Header{}, gate: newGate(uc.DialRate, uc.MaxConnections)}
	for k, v := range uc.Headers {
		up.header.Set(k, v)
	}
	if up.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if uc.InsecureSkipVerify {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opt-in by configuration
		}
		up.client = &http.Client{Transport: tr}
	}
	t := &up.tmpl
	t.url = parseTemplate(uc.URL)
	for _, s := range uc.Subscribe {
		t.subscribe = append(t.subscribe, parseTemplate(s))
	}
	for _, s := range uc.Unsubscribe {
		t.unsubscribe = append(t.unsubscribe, parseTemplate(s))
	}
	t.appPing = parseTemplate(uc.AppPing)
	if uc.Route != nil {
		t.route = parseTemplate(uc.Route.Value)
	}
	if uc.Resolve != nil {
		t.resolve, _ = parsePointerTemplate(uc.Resolve.WSURL) // validated
		t.resolvePing, _ = parsePointer(uc.Resolve.PingInterval)
	}
	return up
}

// Upstreams returns the configured upstream names in config order.
func (r *Relay) Upstreams() []string { return slices.Clone(r.upNames) }

// Add subscribes sym on the named upstream and connects it. It reports
// false when the symbol already runs on that upstream; the symbol name is
// validated before anything is sent.
func (r *Relay) Add(upstreamName string, sym Symbol) (bool, error) {
	if err := CheckSymbol(sym.Name); err != nil {
		return false, err
	}
	if len(sym.Ref) > 256 {
		return false, fmt.Errorf("%w: ref longer than 256 bytes", ErrInvalidSymbol)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, ErrClosed
	}
	up, ok := r.ups[upstreamName]
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownUpstream, upstreamName)
	}
	if s, ok := r.syms[sym.Name]; ok {
		if s.up != up {
			return false, fmt.Errorf("%w: %q is on upstream %q", ErrSymbolExists, sym.Name, s.up.cfg.Name)
		}
		return false, nil
	}
	c := up.connWithRoom()
	if c == nil {
		if limit := up.cfg.MaxConnections; limit > 0 && r.openConns(up) >= limit {
			return false, fmt.Errorf("%w: %q holds %d symbols in its %d connections (max_connections)", ErrUpstreamFull, up.cfg.Name, limit*up.cfg.SymbolsPerConnection, limit)
		}
	}
	if _, err := r.sink.AddSymbol(sym.Name); err != nil {
		return false, err
	}
	s := newSymbol(r, up, sym)
	r.syms[sym.Name] = s
	if c == nil {
		c = newConn(r, up)
		if up.cfg.SymbolsPerConnection > 1 {
			up.conns = append(up.conns, c)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			c.run()
		}()
	}
	s.c = c
	c.members++
	c.push(connCmd{add: s})
	return true, nil
}

// openConns counts the connections of up (one per symbol, or the shared
// ones). Called with r.mu held.
func (r *Relay) openConns(up *upstream) int {
	if up.cfg.SymbolsPerConnection > 1 {
		return len(up.conns)
	}
	n := 0
	for _, s := range r.syms {
		if s.up == up {
			n++
		}
	}
	return n
}

// connWithRoom returns a shared connection with room for one more symbol,
// or nil. Called with Relay.mu held.
// handoverLinger is how long a replaced connection is still heard after
// its symbols switched (a venue may have quotes queued behind the pong
// that synced the switch): ping_timeout, at most 2 s.
func (up *upstream) handoverLinger() time.Duration {
	return min(up.cfg.PingTimeout, 2*time.Second)
}

func (up *upstream) connWithRoom() *conn {
	for _, c := range up.conns {
		if c.members < up.cfg.SymbolsPerConnection {
			return c
		}
	}
	return nil
}

// Remove unsubscribes the symbol (on a connection of its own: closes it
// with 1000), waits until nothing more of it is published and forgets its
// state and history.
func (r *Relay) Remove(name string) error {
	r.mu.Lock()
	s, ok := r.syms[name]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownSymbol, name)
	}
	delete(r.syms, name)
	c := s.c
	c.members--
	last := c.members == 0
	if last {
		c.up.conns = slices.DeleteFunc(c.up.conns, func(x *conn) bool { return x == c })
	}
	done := make(chan struct{})
	c.push(connCmd{remove: s, last: last, done: done})
	r.mu.Unlock()
	<-done
	return r.sink.RemoveSymbol(name)
}

// Status returns the status of one symbol.
func (r *Relay) Status(name string) (SymbolStatus, bool) {
	r.mu.Lock()
	s, ok := r.syms[name]
	r.mu.Unlock()
	if !ok {
		return SymbolStatus{}, false
	}
	return s.status(), true
}

// Statuses returns the status of every symbol, sorted by name.
func (r *Relay) Statuses() []SymbolStatus {
	r.mu.Lock()
	ss := make([]*symbol, 0, len(r.syms))
	for _, s := range r.syms {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	out := make([]SymbolStatus, len(ss))
	for i, s := range ss {
		out[i] = s.status()
	}
	slices.SortFunc(out, func(a, b SymbolStatus) int { return cmp.Compare(a.Symbol, b.Symbol) })
	return out
}

// Close closes every upstream connection with 1001 and waits for every
// goroutine of the relay. It is idempotent.
func (r *Relay) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel(errShutdown)
	r.wg.Wait()
}

// SymbolStatus is a snapshot of one symbol's upstream connection.
type SymbolStatus struct {
	Symbol    string
	Upstream  string
	State     State
	Connected bool
	// EverLive is true once the symbol has received a quote.
	EverLive    bool
	LastQuoteAt time.Time
	Frames      uint64 // frames read on the symbol's connection
	Quotes      uint64 // frames published as its quotes
	Ignored     uint64 // frames that were neither quotes nor protocol (acks, errors, garbage)
	Reconnects  uint64 // successful connections after the first
	Drops       uint64 // connections lost or given up
	LastError   string
	LastErrorAt time.Time
	// Preset, Channel and Fields come from the upstream's config.
	Preset, Channel string
	Fields          Fields
}
