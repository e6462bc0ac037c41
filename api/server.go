package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsrelay/wsrelay/relay"
)

// Server is wsrelay's HTTP API. It wires the broker and the upstreams to
// the routes (routes.go) and owns the writer pool that delivers every
// stream. Its methods are safe for concurrent use.
type Server struct {
	broker     *relay.Broker
	ups        Upstreams
	adminToken string
	sse        SSEConfig
	rateLimit  RateLimit
	web        http.Handler
	openapi    []byte
	log        *slog.Logger
	metrics    *metrics

	cors      *cors
	addrs     clientAddrs
	admission *admission
	quotes    *quoteCache
	pool      *pool

	shuttingDown atomic.Bool
	handler      http.Handler
}

// New validates cfg and builds the server. It starts the writer pool:
// Shutdown stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Broker == nil || cfg.Upstreams == nil {
		return nil, errors.New("api: Broker and Upstreams are required")
	}
	c, err := newCORS(cfg.CORSOrigins)
	if err != nil {
		return nil, err
	}
	sse, err := cfg.SSE.withDefaults()
	if err != nil {
		return nil, err
	}
	rl, err := cfg.RateLimit.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		broker: cfg.Broker, ups: cfg.Upstreams, adminToken: cfg.AdminToken, sse: sse, rateLimit: rl,
		web: cfg.Web, openapi: cfg.OpenAPI, log: cfg.Logger, metrics: newMetrics(),
		cors: c, addrs: clientAddrs{trusted: cfg.TrustedProxies}, admission: newAdmission(sse.MaxClients, sse.MaxPerIP),
		quotes: newQuoteCache(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.metrics.registerUpstreams(cfg.Upstreams)
	s.pool = newPool(poolConfig{
		WriteTimeout: sse.WriteTimeout, Heartbeat: sse.Heartbeat,
		Append: appendFrames, Keepalive: keepalive, Metrics: s.metrics, Logger: s.log,
	})
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the server's Prometheus registry, for a caller to add
// its own collectors (the NATS roles do).
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Clients returns the number of open streams.
func (s *Server) Clients() int { return s.pool.len() }

// Shutdown stops admitting streams, turns /readyz to 503 and ends every
// open stream (clients reconnect elsewhere after the retry: delay), waiting
// until they have ended or ctx is done. Call it before
// http.Server.Shutdown, which waits for the remaining handlers. It is
// idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	return s.pool.close(ctx)
}
