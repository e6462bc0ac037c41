package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Config configures a Relay.
type Config struct {
	Upstreams []UpstreamConfig
	// Logger receives connection events; default discards.
	Logger *slog.Logger
}

// Relay holds one upstream connection per subscribed symbol and publishes
// their quotes to a Broker. All methods are safe for concurrent use.
type Relay struct {
	b   *Broker
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	ups     map[string]*upstream
	upNames []string
	conns   map[string]*symConn
	closed  bool
	wg      sync.WaitGroup
}

type upstream struct {
	cfg    UpstreamConfig
	client *http.Client
	header http.Header
}

var (
	errRemoved  = errors.New("symbol removed")
	errShutdown = errors.New("relay shutting down")
)

// New validates cfg, registers every configured symbol with b and starts
// dialling them. Close stops everything it started.
func New(cfg Config, b *Broker) (*Relay, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{b: b, log: log, ups: map[string]*upstream{}, conns: map[string]*symConn{}}
	seen := map[string]string{}
	for i, uc := range cfg.Upstreams {
		if err := uc.Validate(); err != nil {
			return nil, fmt.Errorf("upstreams[%d].%w", i, err)
		}
		if _, dup := r.ups[uc.Name]; dup {
			return nil, fmt.Errorf("upstreams[%d].name: duplicate upstream %q", i, uc.Name)
		}
		for j, s := range uc.Symbols {
			if other, dup := seen[s.Name]; dup {
				return nil, fmt.Errorf("upstreams[%d].symbols[%d]: symbol %q is already on upstream %q", i, j, s.Name, other)
			}
			seen[s.Name] = uc.Name
		}
		uc = uc.withDefaults()
		up := &upstream{cfg: uc, client: uc.HTTPClient, header: http.Header{}}
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
		r.ups[uc.Name] = up
		r.upNames = append(r.upNames, uc.Name)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
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

// Upstreams returns the configured upstream names in config order.
func (r *Relay) Upstreams() []string { return append([]string(nil), r.upNames...) }

// Add subscribes sym on the named upstream and starts its connection. It
// reports false when the symbol already runs on that upstream; the symbol
// name is validated before anything is sent.
func (r *Relay) Add(upstreamName string, sym Symbol) (bool, error) {
	if err := CheckSymbol(sym.Name); err != nil {
		return false, err
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
	if c, ok := r.conns[sym.Name]; ok {
		if c.up != up {
			return false, fmt.Errorf("%w: %q is on upstream %q", ErrSymbolExists, sym.Name, c.up.cfg.Name)
		}
		return false, nil
	}
	if _, err := r.b.AddSymbol(sym.Name); err != nil {
		return false, err
	}
	c := newSymConn(r, up, sym)
	r.conns[sym.Name] = c
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		c.run()
	}()
	return true, nil
}

// Remove unsubscribes the symbol, closes its connection with 1000, waits for
// it and forgets the symbol's state and history.
func (r *Relay) Remove(name string) error {
	r.mu.Lock()
	c, ok := r.conns[name]
	if ok {
		delete(r.conns, name)
	}
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSymbol, name)
	}
	c.stop(errRemoved)
	<-c.done
	return r.b.RemoveSymbol(name)
}

// Status returns the status of one symbol.
func (r *Relay) Status(name string) (SymbolStatus, bool) {
	r.mu.Lock()
	c, ok := r.conns[name]
	r.mu.Unlock()
	if !ok {
		return SymbolStatus{}, false
	}
	return c.status(), true
}

// Statuses returns the status of every symbol, sorted by name.
func (r *Relay) Statuses() []SymbolStatus {
	r.mu.Lock()
	cs := make([]*symConn, 0, len(r.conns))
	for _, c := range r.conns {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	out := make([]SymbolStatus, len(cs))
	for i, c := range cs {
		out[i] = c.status()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Symbol < out[j].Symbol })
	return out
}

// Close closes every upstream connection with 1001 and waits for every
// goroutine of the relay. It is idempotent.
func (r *Relay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return
	}
	r.closed = true
	for _, c := range r.conns {
		c.stop(errShutdown)
	}
	r.mu.Unlock()
	r.cancel()
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
	Frames      uint64 // frames read
	Quotes      uint64 // frames published as quotes
	Ignored     uint64 // frames that were not quotes (acks, errors, garbage)
	Reconnects  uint64 // successful connections after the first
	Drops       uint64 // connections lost or given up
	LastError   string
	LastErrorAt time.Time
	// Preset, Channel and Fields come from the upstream's config.
	Preset, Channel string
	Fields          Fields
}
