package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/relay"
)

// usageError is a bad flag, environment variable or config value: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// fileConfig is the YAML config file. Durations and sizes are strings so
// that a bad one is reported with its key.
type fileConfig struct {
	Listen         string           `yaml:"listen"`
	AdminToken     string           `yaml:"admin_token"`
	AdminTokenFile string           `yaml:"admin_token_file"`
	DebugListen    string           `yaml:"debug_listen"`
	CORSOrigins    []string         `yaml:"cors_origins"`
	TrustedProxies []string         `yaml:"trusted_proxies"`
	History        *int             `yaml:"history"`
	LogLevel       string           `yaml:"log_level"`
	LogFormat      string           `yaml:"log_format"`
	SSE            sseConfig        `yaml:"sse"`
	HTTP           httpConfig       `yaml:"http"`
	RateLimit      rateLimitConfig  `yaml:"rate_limit"`
	Upstreams      []upstreamConfig `yaml:"upstreams"`
}

type sseConfig struct {
	Heartbeat    string `yaml:"heartbeat"`
	Retry        string `yaml:"retry"`
	Queue        *int   `yaml:"queue"`
	MaxClients   *int   `yaml:"max_clients"`
	MaxPerIP     *int   `yaml:"max_clients_per_ip"`
	WriteTimeout string `yaml:"write_timeout"`
}

type httpConfig struct {
	ReadHeaderTimeout string `yaml:"read_header_timeout"`
	IdleTimeout       string `yaml:"idle_timeout"`
	MaxHeaderBytes    string `yaml:"max_header_bytes"`
}

type rateLimitConfig struct {
	Requests *int   `yaml:"requests"`
	Window   string `yaml:"window"`
}

type upstreamConfig struct {
	Name               string            `yaml:"name"`
	URL                string            `yaml:"url"`
	Headers            map[string]string `yaml:"headers"`
	Subscribe          string            `yaml:"subscribe"`
	Unsubscribe        string            `yaml:"unsubscribe"`
	Symbols            []symbolEntry     `yaml:"symbols"`
	Accept             string            `yaml:"accept"`
	Extract            string            `yaml:"extract"`
	PingInterval       string            `yaml:"ping_interval"`
	PingTimeout        string            `yaml:"ping_timeout"`
	AppPing            string            `yaml:"app_ping"`
	Pong               *pongConfig       `yaml:"pong"`
	StaleAfter         string            `yaml:"stale_after"`
	ReconnectOnStale   bool              `yaml:"reconnect_on_stale"`
	Decompress         string            `yaml:"decompress"`
	ReadLimit          string            `yaml:"read_limit"`
	Backoff            *backoffConfig    `yaml:"backoff"`
	DialTimeout        string            `yaml:"dial_timeout"`
	InsecureSkipVerify bool              `yaml:"insecure_skip_verify"`
}

type pongConfig struct {
	Match string `yaml:"match"`
	Reply string `yaml:"reply"`
}

type backoffConfig struct {
	Min string `yaml:"min"`
	Max string `yaml:"max"`
}

// symbolEntry is "NAME" or {name: NAME, ref: REF}.
type symbolEntry struct{ Name, Ref string }

func (s *symbolEntry) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		s.Name = n.Value
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s must be a string", v.Line, k.Value)
			}
			switch k.Value {
			case "name":
				s.Name = v.Value
			case "ref":
				s.Ref = v.Value
			default:
				return fmt.Errorf("line %d: field %s not found in type symbol", k.Line, k.Value)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: a symbol is a name or {name, ref}", n.Line)
}

// loadFile reads and strictly decodes a YAML config file.
func loadFile(path string) (*fileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("-config: %v", err)
	}
	return parseConfig(b)
}

// parseConfig decodes b, rejecting unknown keys; errors name the key.
func parseConfig(b []byte) (*fileConfig, error) {
	var c fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return &c, nil // an empty file is all defaults
		}
		return nil, usagef("config: %s", describeYAMLError(b, err))
	}
	return &c, nil
}

// settings is the validated configuration the server runs with.
type settings struct {
	listen      string
	adminToken  string
	corsOrigins []string
	history     int
	logLevel    string
	logFormat   string
	sse         api.SSEConfig
	upstreams   []relay.UpstreamConfig
	demo        bool
	debugListen string
	http        httpSettings
	rateLimit   api.RateLimit
	trusted     []netip.Prefix
}

// httpSettings are the HTTP server's protections (no WriteTimeout: it
// would cut streams, which have per-write deadlines).
type httpSettings struct {
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
}

// The seed protocol of the simulated exchange (and of the demo).
const (
	seedSubscribe   = `{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}`
	seedUnsubscribe = `{"action":"unsubscribe","args":["QuoteBin5m:{symbol}"]}`
	seedAccept      = "/data"
)

// resolve merges the file with flags and environment (already applied to
// ov) and validates everything.
func resolve(c *fileConfig, ov overrides) (*settings, error) {
	s := &settings{listen: ":8080", logLevel: "info", logFormat: "auto", corsOrigins: []string{"*"}}
	if c.Listen != "" {
		s.listen = c.Listen
	}
	if c.CORSOrigins != nil {
		s.corsOrigins = c.CORSOrigins
	}
	s.adminToken = c.AdminToken
	if c.DebugListen != "" {
		host, port, err := net.SplitHostPort(c.DebugListen)
		if err != nil || port == "" || !isLoopbackHost(host) {
			return nil, usagef("debug_listen: %q is not a loopback host:port (pprof must not be public)", c.DebugListen)
		}
		s.debugListen = c.DebugListen
	}
	tokenFile, tokenFileKey := c.AdminTokenFile, "admin_token_file"
	if c.LogLevel != "" {
		s.logLevel = c.LogLevel
	}
	if c.LogFormat != "" {
		s.logFormat = c.LogFormat
	}
	ov.apply(s, &tokenFile, &tokenFileKey)
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, usagef("%s: %v", tokenFileKey, err)
		}
		s.adminToken = strings.TrimSpace(string(b))
		if s.adminToken == "" {
			return nil, usagef("%s: %s is empty", tokenFileKey, tokenFile)
		}
	}
	if s.adminToken != "" && len(s.adminToken) < 16 {
		return nil, usagef("%s: must be at least 16 characters", ov.key("admin_token"))
	}
	if _, port, err := net.SplitHostPort(s.listen); err != nil || port == "" {
		return nil, usagef("%s: %q is not host:port (e.g. :8080, 127.0.0.1:8080)", ov.key("listen"), s.listen)
	}
	switch s.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return nil, usagef("%s: %q is not debug, info, warn or error", ov.key("log_level"), s.logLevel)
	}
	switch s.logFormat {
	case "auto", "text", "json":
	default:
		return nil, usagef("%s: %q is not auto, text or json", ov.key("log_format"), s.logFormat)
	}
	var err error
	if s.history, err = intIn("history", c.History, relay.DefaultHistory, 1, 1<<20); err != nil {
		return nil, err
	}
	if s.sse.Heartbeat, err = parseDuration("sse.heartbeat", c.SSE.Heartbeat, 15*time.Second); err != nil {
		return nil, err
	}
	if s.sse.Retry, err = parseDuration("sse.retry", c.SSE.Retry, 2*time.Second); err != nil {
		return nil, err
	}
	if s.sse.WriteTimeout, err = parseDuration("sse.write_timeout", c.SSE.WriteTimeout, 10*time.Second); err != nil {
		return nil, err
	}
	if s.sse.Queue, err = intIn("sse.queue", c.SSE.Queue, relay.DefaultQueue, 1, 1<<20); err != nil {
		return nil, err
	}
	if s.sse.MaxClients, err = intIn("sse.max_clients", c.SSE.MaxClients, 10000, 1, 1<<20); err != nil {
		return nil, err
	}
	if s.sse.MaxPerIP, err = intIn("sse.max_clients_per_ip", c.SSE.MaxPerIP, 0, 0, 1<<20); err != nil {
		return nil, err
	}
	if s.http.readHeaderTimeout, err = parseDuration("http.read_header_timeout", c.HTTP.ReadHeaderTimeout, 10*time.Second); err != nil {
		return nil, err
	}
	if s.http.idleTimeout, err = parseDuration("http.idle_timeout", c.HTTP.IdleTimeout, 120*time.Second); err != nil {
		return nil, err
	}
	mhb, err := parseSize("http.max_header_bytes", c.HTTP.MaxHeaderBytes, 16<<10)
	if err != nil {
		return nil, err
	}
	if mhb < 1<<10 || mhb > 1<<20 {
		return nil, usagef("http.max_header_bytes: must be between 1KiB and 1MiB")
	}
	s.http.maxHeaderBytes = int(mhb)
	if s.rateLimit.Requests, err = intIn("rate_limit.requests", c.RateLimit.Requests, 0, 0, 1<<30); err != nil {
		return nil, err
	}
	if s.rateLimit.Window, err = parseDuration("rate_limit.window", c.RateLimit.Window, time.Second); err != nil {
		return nil, err
	}
	if err := api.CheckCORSOrigins(s.corsOrigins); err != nil {
		return nil, usagef("%v", err)
	}
	if s.trusted, err = api.ParseTrustedProxies(c.TrustedProxies); err != nil {
		return nil, usagef("trusted_proxies: %v", err)
	}

	ups := c.Upstreams
	if ov.upstream != "" {
		sub := seedSubscribe
		if ov.subscribe != "" {
			sub = ov.subscribe
		}
		ups = []upstreamConfig{{Name: "upstream", URL: ov.upstream, Subscribe: sub, Unsubscribe: seedUnsubscribe, Accept: seedAccept}}
		if ov.subscribe != "" {
			ups[0].Unsubscribe, ups[0].Accept = "", ""
		}
	} else if ov.subscribe != "" {
		return nil, usagef("%s: needs -upstream", ov.key("subscribe"))
	}
	for _, sy := range ov.symbols {
		if err := relay.CheckSymbol(sy.Name); err != nil {
			return nil, usagef("%s: %v", ov.key("symbols"), err)
		}
	}
	if ov.upstream != "" {
		if err := (relay.UpstreamConfig{Name: "upstream", URL: ov.upstream, Subscribe: ups[0].Subscribe}).Validate(); err != nil && strings.HasPrefix(err.Error(), "url") {
			return nil, usagef("%s: %q is not a ws:// or wss:// URL", ov.key("upstream"), ov.upstream)
		} else if err != nil && strings.HasPrefix(err.Error(), "subscribe") {
			return nil, usagef("%s: template must contain {symbol}", ov.key("subscribe"))
		}
		if ov.symbols == nil {
			return nil, usagef("%s: needs -symbols", ov.key("upstream"))
		}
	}
	if ov.symbols != nil {
		switch len(ups) {
		case 0:
			// the demo with these symbols
		case 1:
			ups[0].Symbols = ov.symbols
		default:
			return nil, usagef("%s: the config has %d upstreams; list symbols in the config file", ov.key("symbols"), len(ups))
		}
	}
	if len(ups) == 0 {
		s.demo = true
		syms := ov.symbols
		if syms == nil {
			syms = []symbolEntry{{Name: "BTCUSDT"}, {Name: "ETHUSDT"}, {Name: "LTCUSDT"}}
		}
		// The URL is filled in once the built-in feed listens.
		ups = []upstreamConfig{{Name: "demo", URL: "ws://127.0.0.1:1/", Subscribe: seedSubscribe, Unsubscribe: seedUnsubscribe, Accept: seedAccept, Symbols: syms}}
	}
	seen := map[string]string{}
	for i, u := range ups {
		key := fmt.Sprintf("upstreams[%d]", i)
		uc, err := u.toRelay(key)
		if err != nil {
			return nil, err
		}
		if err := uc.Validate(); err != nil {
			return nil, usagef("%s.%v", key, err)
		}
		for j, sy := range uc.Symbols {
			if other, dup := seen[sy.Name]; dup {
				return nil, usagef("%s.symbols[%d]: symbol %q is already on upstream %q", key, j, sy.Name, other)
			}
			seen[sy.Name] = uc.Name
		}
		for _, prev := range s.upstreams {
			if prev.Name == uc.Name {
				return nil, usagef("%s.name: duplicate upstream %q", key, uc.Name)
			}
		}
		s.upstreams = append(s.upstreams, uc)
	}
	return s, nil
}

func (u upstreamConfig) toRelay(key string) (relay.UpstreamConfig, error) {
	uc := relay.UpstreamConfig{
		Name: u.Name, URL: u.URL, Headers: u.Headers, Subscribe: u.Subscribe, Unsubscribe: u.Unsubscribe,
		Accept: u.Accept, Extract: u.Extract, AppPing: u.AppPing, ReconnectOnStale: u.ReconnectOnStale,
		Decompress: u.Decompress, InsecureSkipVerify: u.InsecureSkipVerify,
	}
	for _, s := range u.Symbols {
		uc.Symbols = append(uc.Symbols, relay.Symbol{Name: s.Name, Ref: s.Ref})
	}
	if u.Pong != nil {
		if u.Pong.Match == "" || u.Pong.Reply == "" {
			return uc, usagef("%s.pong: needs both match and reply", key)
		}
		uc.PongMatch, uc.PongReply = u.Pong.Match, u.Pong.Reply
	}
	var err error
	d := func(name, v string, def time.Duration) time.Duration {
		if err != nil {
			return 0
		}
		var out time.Duration
		out, err = parseDuration(key+"."+name, v, def)
		return out
	}
	uc.PingInterval = d("ping_interval", u.PingInterval, relay.DefaultPingInterval)
	uc.PingTimeout = d("ping_timeout", u.PingTimeout, relay.DefaultPingTimeout)
	uc.StaleAfter = d("stale_after", u.StaleAfter, relay.DefaultStaleAfter)
	uc.DialTimeout = d("dial_timeout", u.DialTimeout, relay.DefaultDialTimeout)
	if u.Backoff != nil {
		uc.Backoff.Min = d("backoff.min", u.Backoff.Min, relay.DefaultBackoffMin)
		uc.Backoff.Max = d("backoff.max", u.Backoff.Max, relay.DefaultBackoffMax)
	}
	if err != nil {
		return uc, err
	}
	if uc.ReadLimit, err = parseSize(key+".read_limit", u.ReadLimit, relay.DefaultReadLimit); err != nil {
		return uc, err
	}
	return uc, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
