package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsrelay/wsrelay/relay"
)

// Upstreams is what the API needs of the relay's upstream side.
type Upstreams interface {
	Statuses() []relay.SymbolStatus
	Status(symbol string) (relay.SymbolStatus, bool)
	Add(upstream string, sym relay.Symbol) (bool, error)
	Remove(symbol string) error
	Upstreams() []string
}

// Config configures a Server. Broker and Upstreams are required.
type Config struct {
	Broker    *relay.Broker
	Upstreams Upstreams
	// AdminToken enables the admin endpoints; empty answers 403.
	AdminToken string
	// CORSOrigins are the allowed origins of REST and SSE ("*" = any).
	CORSOrigins []string
	// TrustedProxies are the peers (reverse proxies) whose X-Forwarded-For
	// names the client, for the per-address limits. Empty: the TCP peer
	// is the client, whatever the headers say.
	TrustedProxies []netip.Prefix
	SSE            SSEConfig
	// RateLimit bounds REST requests per client address (streams and
	// health endpoints are exempt); zero Requests disables it.
	RateLimit RateLimit
	// Web is mounted at / (the live quote board); nil serves 404 there.
	Web http.Handler
	// OpenAPI is served at /openapi.yaml.
	OpenAPI []byte
	Logger  *slog.Logger
}

// RateLimit is Requests per Window per client address.
type RateLimit struct {
	Requests int
	Window   time.Duration
}

// MaxQueryLength bounds a request's query string; longer is 414.
const MaxQueryLength = 4096

// Server is wsrelay's HTTP API. Handler is safe for concurrent use;
// Shutdown ends every stream and is idempotent.
type Server struct {
	broker     *relay.Broker
	ups        Upstreams
	adminToken string
	cors       *cors
	sse        SSEConfig
	web        http.Handler
	rateLimit  RateLimit
	openapi    []byte
	log        *slog.Logger
	metrics    *metrics

	ctx          context.Context // ends every stream on shutdown
	cancel       context.CancelFunc
	shuttingDown atomic.Bool
	clients      atomic.Int64
	trusted      []netip.Prefix
	perIPMu      sync.Mutex
	perIP        map[string]int
	streamMu     sync.Mutex     // orders streams.Add against Shutdown
	streams      sync.WaitGroup // hijacked streams
	hub          *hub
	snapMu       sync.RWMutex
	snaps        map[string]*snapshot // latest snapshot per symbol

	handler http.Handler
}

// New validates cfg and builds the server. It starts the stream hub,
// so Shutdown must be called to stop it.
func New(cfg Config) (*Server, error) {
	if cfg.Broker == nil || cfg.Upstreams == nil {
		return nil, errors.New("api: Broker and Upstreams are required")
	}
	c, err := newCORS(cfg.CORSOrigins)
	if err != nil {
		return nil, err
	}
	if cfg.RateLimit.Requests < 0 || (cfg.RateLimit.Requests > 0 && cfg.RateLimit.Window <= 0) {
		return nil, errors.New("rate_limit: requests must not be negative and window must be positive")
	}
	s := &Server{
		broker: cfg.Broker, ups: cfg.Upstreams, adminToken: cfg.AdminToken, cors: c,
		sse: cfg.SSE.withDefaults(), web: cfg.Web, rateLimit: cfg.RateLimit, openapi: cfg.OpenAPI, log: cfg.Logger,
		perIP: map[string]int{}, snaps: map[string]*snapshot{}, trusted: cfg.TrustedProxies,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.metrics = newMetrics(cfg.Upstreams)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub(s)
	s.handler = s.routes()
	return s, nil
}

// Registry returns the server's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Clients returns the number of open SSE streams.
func (s *Server) Clients() int { return int(s.clients.Load()) }

// Shutdown flips /readyz to 503, refuses new streams, ends every open one
// (clients reconnect elsewhere after the retry: delay) and waits for the
// streams it owns. Call it before http.Server.Shutdown, which waits for
// the remaining handlers. It is idempotent.
func (s *Server) Shutdown() {
	s.streamMu.Lock()
	s.shuttingDown.Store(true)
	s.streamMu.Unlock()
	s.cancel()
	s.streams.Wait()
	s.hub.close()
}

// routes is the whole HTTP surface.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, limitQuery, s.cors.handler)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeErrorBody(w, errorf(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no route for %s", trunc(r.URL.Path, 120))))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeErrorBody(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s", r.Method, trunc(r.URL.Path, 120))))
	})

	// Streams: counted, never timed, throttled or buffered.
	r.Group(func(r chi.Router) {
		r.Use(s.instrument(false))
		r.Get("/v1/stream", s.handleStreamAll)
		r.Get("/v1/quotes/{symbol}/stream", s.handleStreamOne)
	})

	r.Group(func(r chi.Router) {
		r.Use(s.instrument(true))
		r.Group(func(r chi.Router) {
			if s.rateLimit.Requests > 0 {
				r.Use(s.limitREST())
			}
			r.Get("/v1/symbols", s.handleSymbols)
			r.Get("/v1/quotes", s.handleQuotes)
			r.Get("/v1/quotes/{symbol}", s.handleQuote)
			r.Get("/v1/quotes/{symbol}/history", s.handleHistory)
			r.With(s.requireAdmin).Put("/v1/symbols/{symbol}", s.handlePutSymbol)
			r.With(s.requireAdmin).Delete("/v1/symbols/{symbol}", s.handleDeleteSymbol)
		})
		r.Get("/healthz", s.handleHealthz)
		r.Get("/readyz", s.handleReadyz)
		r.Get("/openapi.yaml", s.handleOpenAPI)
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	})
	if s.web != nil {
		r.Handle("/*", s.web)
	}
	return r
}
