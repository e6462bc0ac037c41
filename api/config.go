package api

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// Defaults of Config: a zero field means its default.
const (
	DefaultHeartbeat    = 15 * time.Second   // SSEConfig.Heartbeat
	DefaultRetry        = 2 * time.Second    // SSEConfig.Retry
	DefaultQueue        = relay.DefaultQueue // SSEConfig.Queue
	DefaultMaxClients   = 10000              // SSEConfig.MaxClients
	DefaultWriteTimeout = 10 * time.Second   // SSEConfig.WriteTimeout
	DefaultRateWindow   = time.Second        // RateLimit.Window
)

// Upstreams is what the API needs of the relay's upstream side (*relay.Relay).
type Upstreams interface {
	Statuses() []relay.SymbolStatus
	Status(symbol string) (relay.SymbolStatus, bool)
	Add(upstream string, sym relay.Symbol) (bool, error)
	Remove(symbol string) error
	Upstreams() []string
}

// Config configures a Server. Broker and Upstreams are required; a zero
// field means its default.
type Config struct {
	Broker    *relay.Broker
	Upstreams Upstreams
	// AdminToken enables the admin endpoints; empty answers 403.
	AdminToken string
	// CORSOrigins are the allowed origins of REST and SSE ("*" = any);
	// empty allows none.
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
	// Logger; default discards.
	Logger *slog.Logger
}

// SSEConfig configures the streams. A zero field means its default.
type SSEConfig struct {
	Heartbeat time.Duration // idle time before a keepalive comment; default DefaultHeartbeat
	Retry     time.Duration // the retry: field sent first; default DefaultRetry
	// Queue is how many events a client may fall behind before it is cut
	// off (it then resumes); default DefaultQueue. It is the one place
	// this is configured: the broker takes it per subscription.
	Queue        int
	MaxClients   int           // open streams; default DefaultMaxClients
	MaxPerIP     int           // open streams per client address; default MaxClients
	WriteTimeout time.Duration // a write to a client that does not read; default DefaultWriteTimeout
}

func (c SSEConfig) withDefaults() (SSEConfig, error) {
	if c.Heartbeat < 0 || c.Retry < 0 || c.Queue < 0 || c.MaxClients < 0 || c.MaxPerIP < 0 || c.WriteTimeout < 0 {
		return c, errors.New("sse: durations and sizes must not be negative")
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Retry == 0 {
		c.Retry = DefaultRetry
	}
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxPerIP == 0 {
		c.MaxPerIP = c.MaxClients
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c, nil
}

// RateLimit is Requests per Window per client address.
type RateLimit struct {
	Requests int           // 0: no limit
	Window   time.Duration // default DefaultRateWindow
}

func (r RateLimit) withDefaults() (RateLimit, error) {
	if r.Requests < 0 || r.Window < 0 {
		return r, errors.New("rate_limit: requests and window must not be negative")
	}
	if r.Window == 0 {
		r.Window = DefaultRateWindow
	}
	return r, nil
}
