package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

// Engine is what an ingest needs of the upstream side (relay.Relay).
type Engine interface {
	Add(upstream string, sym relay.Symbol) (bool, error)
	Remove(symbol string) error
	Status(symbol string) (relay.SymbolStatus, bool)
	Statuses() []relay.SymbolStatus
	Close()
}

// IngestConfig configures an Ingest. A zero field means its default.
type IngestConfig struct {
	NATS Config
	// Upstreams are this ingest's upstreams (all ingests of a deployment
	// share them). Their symbols join the symbol set when the ingest
	// starts (existing entries are kept).
	Upstreams []relay.UpstreamConfig
	// NewEngine starts the upstream engine of one leadership term with
	// no symbols, sending what it produces to sink; required.
	NewEngine func(sink relay.Sink) (Engine, error)
	// LeaseTTL; default DefaultLeaseTTL. The leader renews every third of it.
	LeaseTTL time.Duration
	// ReportEvery; default DefaultReportEvery.
	ReportEvery time.Duration
	// CheckEvery is how often the stream's identity is checked; default 2s.
	CheckEvery time.Duration
	// Drain bounds how long a graceful Close publishes buffered quotes;
	// default 2s.
	Drain time.Duration
	// ID names this ingest in the lease; default host-pid-random.
	ID     string
	Logger *slog.Logger
}

// Ingest holds the upstream sockets while it holds the lease and publishes
// every quote and status change into NATS; the other ingests wait as
// standbys and take over within the lease's TTL when it dies. It owns its
// goroutines; Close stops them (publishing what it buffered, then giving
// the lease up) and is idempotent.
type Ingest struct {
	cfg     IngestConfig
	names   names
	log     *slog.Logger
	nc      *nats.Conn
	metrics ingestMetrics

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	up     chan struct{} // a connection (re)established

	mu      sync.Mutex
	problem error
	engine  Engine
	epoch   int64
}

// NewIngest validates cfg, connects (in the background when NATS is not
// reachable yet) and starts.
func NewIngest(cfg IngestConfig) (*Ingest, error) {
	if err := cfg.NATS.Validate(); err != nil {
		return nil, err
	}
	if cfg.NewEngine == nil {
		return nil, errors.New("ingest: NewEngine is required")
	}
	cfg.NATS = cfg.NATS.withDefaults()
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = DefaultReportEvery
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 2 * time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 2 * time.Second
	}
	if cfg.ID == "" {
		cfg.ID = defaultID()
	}
	n, _ := newNames(cfg.NATS.Stream)
	in := &Ingest{
		cfg: cfg, names: n, log: cfg.NATS.Logger.With("role", "ingest"),
		done: make(chan struct{}), up: make(chan struct{}, 1),
		problem: errors.New("connecting to NATS"),
	}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	nc, err := connect(cfg.NATS, connHooks{
		up: func() {
			in.metrics.connected.Store(true)
			select {
			case in.up <- struct{}{}:
			default:
			}
		},
		down: func(error) { in.metrics.connected.Store(false) },
	})
	if err != nil {
		return nil, err
	}
	in.nc = nc
	go in.run()
	return in, nil
}

func defaultID() string {
	host, _ := os.Hostname()
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Collector returns the ingest's Prometheus metrics.
func (in *Ingest) Collector() *ingestMetrics { return &in.metrics }

// Ready returns nil while the ingest can do its job (NATS reachable, the
// stream fits the config), whether it leads or stands by; otherwise the
// problem, in words.
func (in *Ingest) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.problem == nil && !in.nc.IsConnected() {
		return errors.New("NATS not reachable (reconnecting)")
	}
	return in.problem
}

// Leader reports whether this ingest holds the lease now.
func (in *Ingest) Leader() bool { return in.metrics.leader.Load() }

// Statuses returns the symbols' status while this ingest leads (empty as a
// standby).
func (in *Ingest) Statuses() []relay.SymbolStatus {
	if e := in.currentEngine(); e != nil {
		return e.Statuses()
	}
	return nil
}

// Status returns one symbol's status while this ingest leads.
func (in *Ingest) Status(symbol string) (relay.SymbolStatus, bool) {
	if e := in.currentEngine(); e != nil {
		return e.Status(symbol)
	}
	return relay.SymbolStatus{}, false
}

// Upstreams returns the configured upstream names.
func (in *Ingest) Upstreams() []string {
	out := make([]string, len(in.cfg.Upstreams))
	for i, u := range in.cfg.Upstreams {
		out[i] = u.Name
	}
	return out
}

// Add is refused: on an ingest, symbols are managed through an edge.
func (in *Ingest) Add(string, relay.Symbol) (bool, error) {
	return false, errors.New("an ingest serves no admin API: PUT the symbol on an edge")
}

// Remove is refused like Add.
func (in *Ingest) Remove(string) error {
	return errors.New("an ingest serves no admin API: DELETE the symbol on an edge")
}

func (in *Ingest) currentEngine() Engine {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.engine
}

func (in *Ingest) setProblem(err error) {
	in.mu.Lock()
	changed := (err == nil) != (in.problem == nil) || (err != nil && in.problem != nil && err.Error() != in.problem.Error())
	in.problem = err
	in.mu.Unlock()
	if changed && err != nil {
		in.log.Warn("ingest not ready", "err", err)
	}
}

// Close stops the ingest: the leader stops its upstreams, publishes what
// it buffered (within Drain) and gives the lease up. Idempotent.
func (in *Ingest) Close() {
	in.cancel()
	<-in.done
	in.nc.Close()
}

func (in *Ingest) run() {
	defer close(in.done)
	seeded := false
	for in.ctx.Err() == nil {
		if !in.nc.IsConnected() {
			select {
			case <-in.ctx.Done():
				return
			case <-in.up:
			case <-time.After(time.Second):
			}
			continue
		}
		err := in.session(&seeded)
		if in.ctx.Err() != nil {
			return
		}
		if err != nil {
			in.setProblem(err)
		}
		select {
		case <-in.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// buckets opens (creating or updating) the three KV buckets.
func (in *Ingest) buckets(ctx context.Context, js jetstream.JetStream) (syms, status, lease jetstream.KeyValue, err error) {
	c := in.cfg.NATS
	mk := func(cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			return nil, describe("bucket "+cfg.Bucket, err)
		}
		return kv, nil
	}
	if syms, err = mk(jetstream.KeyValueConfig{Bucket: in.names.symbols, Description: "wsrelay: the symbol set", History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas}); err != nil {
		return
	}
	if status, err = mk(jetstream.KeyValueConfig{Bucket: in.names.status, Description: "wsrelay: the leader ingest's status reports", History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas}); err != nil {
		return
	}
	lease, err = mk(leaseBucket(in.names, c, in.cfg.LeaseTTL))
	return
}

// session sets NATS up, waits for the lease as a standby and leads while
// it holds it. It returns when the lease is lost or something needs a
// fresh start.
func (in *Ingest) session(seeded *bool) error {
	ctx, cancel := context.WithTimeout(in.ctx, 10*time.Second)
	js, err := jetstream.New(in.nc)
	if err != nil {
		cancel()
		return err
	}
	st, err := ensureStream(ctx, js, in.names, in.cfg.NATS, true)
	if err != nil {
		cancel()
		return err
	}
	syms, status, leaseKV, err := in.buckets(ctx, js)
	if err != nil {
		cancel()
		return err
	}
	if !*seeded {
		if err := in.seed(ctx, syms); err != nil {
			cancel()
			return err
		}
		*seeded = true
	}
	var ups []upstreamInfo
	for _, u := range in.cfg.Upstreams {
		ups = append(ups, upstreamInfo{Name: u.Name, Preset: u.Preset, Channel: u.Channel})
	}
	b, _ := json.Marshal(ups)
	if _, err := status.Put(ctx, upstreamsKey, b); err != nil {
		cancel()
		return describe("status bucket", err)
	}
	cancel()
	in.setProblem(nil)
	in.mu.Lock()
	in.epoch = epochOf(st.CachedInfo())
	in.mu.Unlock()

	ls := newLease(leaseKV, in.cfg.ID)
	for {
		actx, cancel := context.WithTimeout(in.ctx, publishTimeout)
		ok, err := ls.acquire(actx)
		cancel()
		if err != nil {
			return err
		}
		if ok {
			break
		}
		select {
		case <-in.ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
	return in.lead(js, st, syms, status, ls)
}

// seed adds the configured symbols to the symbol set (existing entries,
// possibly changed by an admin, are kept).
func (in *Ingest) seed(ctx context.Context, syms jetstream.KeyValue) error {
	for _, u := range in.cfg.Upstreams {
		for _, s := range u.Symbols {
			b, _ := json.Marshal(symbolValue{Upstream: u.Name, Ref: s.Ref})
			if _, err := syms.Create(ctx, Token(s.Name), b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				return describe("symbols bucket", err)
			}
		}
	}
	return nil
}

// symbolValue is a symbol set entry.
type symbolValue struct {
	Upstream string `json:"upstream"`
	Ref      string `json:"ref,omitempty"`
}
