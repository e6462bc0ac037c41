package main

import (
	"bytes"
	"cmp"
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
	"github.com/wsrelay/wsrelay/relay/presets"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// usageError is a bad flag, environment variable or config value: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// fileConfig is the YAML config file. Durations and sizes are strings so
// that a bad one is reported with its key; absent values stay zero and the
// package that owns them applies its default.
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
	Role           string           `yaml:"role"`
	NATS           natsFileConfig   `yaml:"nats"`
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
	// demo: no upstream is configured; the demo's upstream (the built-in
	// feed, with demoSymbols) is made once the feed listens.
	demo        bool
	demoSymbols []relay.Symbol
	debugListen string
	http        httpSettings
	rateLimit   api.RateLimit
	trusted     []netip.Prefix
	role        string        // all, ingest or edge (config_nats.go)
	nats        *natsSettings // nil: role all without NATS
}

// httpSettings are the HTTP server's protections (no WriteTimeout: it
// would cut streams, which have per-write deadlines).
type httpSettings struct {
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
}

// The HTTP server's defaults (net/http itself has none: zero is no limit).
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 120 * time.Second
	defaultMaxHeaderBytes    = 16 << 10
)

// The seed protocol of the simulated exchange (and of the demo).
const (
	seedSubscribe   = simfeed.Subscribe
	seedUnsubscribe = simfeed.Unsubscribe
	seedAccept      = simfeed.Accept
)

// demoSymbols are the demo's symbols when -symbols names none.
var defaultDemoSymbols = []relay.Symbol{{Name: "BTCUSDT"}, {Name: "ETHUSDT"}, {Name: "LTCUSDT"}}

// demoUpstream is the demo's upstream: the built-in feed at url.
func demoUpstream(url string, syms []relay.Symbol) relay.UpstreamConfig {
	return relay.UpstreamConfig{
		Name: "demo", URL: url, Symbols: syms,
		Subscribe: []string{seedSubscribe}, Unsubscribe: []string{seedUnsubscribe},
		Accept: []relay.Matcher{relay.Exists(seedAccept)},
	}
}

// resolve merges the file with flags and environment (already applied to
// ov) and validates everything, section by section.
func resolve(c *fileConfig, ov overrides) (*settings, error) {
	s := &settings{}
	for _, step := range []func(*fileConfig, overrides) error{
		s.resolveServer, s.resolveSSE, s.resolveHTTP, s.resolveUpstreams, s.resolveRole,
	} {
		if err := step(c, ov); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// resolveServer: listen, admin token, logs, CORS, proxies, pprof, history.
func (s *settings) resolveServer(c *fileConfig, ov overrides) error {
	s.listen, s.logLevel, s.logFormat = cmp.Or(c.Listen, ":8080"), cmp.Or(c.LogLevel, "info"), cmp.Or(c.LogFormat, "auto")
	s.corsOrigins = []string{"*"}
	if c.CORSOrigins != nil {
		s.corsOrigins = c.CORSOrigins
	}
	s.adminToken = c.AdminToken
	if c.DebugListen != "" {
		host, port, err := net.SplitHostPort(c.DebugListen)
		if err != nil || port == "" || !isLoopbackHost(host) {
			return usagef("debug_listen: %q is not a loopback host:port (pprof must not be public)", c.DebugListen)
		}
		s.debugListen = c.DebugListen
	}
	tokenFile, tokenFileKey := c.AdminTokenFile, "admin_token_file"
	ov.apply(s, &tokenFile, &tokenFileKey)
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return usagef("%s: %v", tokenFileKey, err)
		}
		s.adminToken = strings.TrimSpace(string(b))
		if s.adminToken == "" {
			return usagef("%s: %s is empty", tokenFileKey, tokenFile)
		}
	}
	if s.adminToken != "" && len(s.adminToken) < 16 {
		return usagef("%s: must be at least 16 characters", ov.key("admin_token"))
	}
	if _, port, err := net.SplitHostPort(s.listen); err != nil || port == "" {
		return usagef("%s: %q is not host:port (e.g. :8080, 127.0.0.1:8080)", ov.key("listen"), s.listen)
	}
	switch s.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return usagef("%s: %q is not debug, info, warn or error", ov.key("log_level"), s.logLevel)
	}
	switch s.logFormat {
	case "auto", "text", "json":
	default:
		return usagef("%s: %q is not auto, text or json", ov.key("log_format"), s.logFormat)
	}
	var err error
	if s.history, err = intIn("history", c.History, 1, 1<<20); err != nil {
		return err
	}
	if err := api.CheckCORSOrigins(s.corsOrigins); err != nil {
		return usagef("%v", err)
	}
	if s.trusted, err = api.ParseTrustedProxies(c.TrustedProxies); err != nil {
		return usagef("trusted_proxies: %v", err)
	}
	return nil
}

// resolveSSE: the stream settings; absent ones stay zero (api's defaults).
func (s *settings) resolveSSE(c *fileConfig, _ overrides) error {
	var err error
	if s.sse.Heartbeat, err = parseDuration("sse.heartbeat", c.SSE.Heartbeat); err != nil {
		return err
	}
	if s.sse.Retry, err = parseDuration("sse.retry", c.SSE.Retry); err != nil {
		return err
	}
	if s.sse.WriteTimeout, err = parseDuration("sse.write_timeout", c.SSE.WriteTimeout); err != nil {
		return err
	}
	if s.sse.Queue, err = intIn("sse.queue", c.SSE.Queue, 1, 1<<20); err != nil {
		return err
	}
	if s.sse.MaxClients, err = intIn("sse.max_clients", c.SSE.MaxClients, 1, 1<<20); err != nil {
		return err
	}
	if s.sse.MaxPerIP, err = intIn("sse.max_clients_per_ip", c.SSE.MaxPerIP, 0, 1<<20); err != nil {
		return err
	}
	return nil
}

// resolveHTTP: the HTTP server's protections and the REST rate limit.
func (s *settings) resolveHTTP(c *fileConfig, _ overrides) error {
	var err error
	if s.http.readHeaderTimeout, err = parseDuration("http.read_header_timeout", c.HTTP.ReadHeaderTimeout); err != nil {
		return err
	}
	if s.http.idleTimeout, err = parseDuration("http.idle_timeout", c.HTTP.IdleTimeout); err != nil {
		return err
	}
	s.http.readHeaderTimeout = cmp.Or(s.http.readHeaderTimeout, defaultReadHeaderTimeout)
	s.http.idleTimeout = cmp.Or(s.http.idleTimeout, defaultIdleTimeout)
	mhb, err := parseSize("http.max_header_bytes", c.HTTP.MaxHeaderBytes, defaultMaxHeaderBytes)
	if err != nil {
		return err
	}
	if mhb < 1<<10 || mhb > 1<<20 {
		return usagef("http.max_header_bytes: must be between 1KiB and 1MiB")
	}
	s.http.maxHeaderBytes = int(mhb)
	if s.rateLimit.Requests, err = intIn("rate_limit.requests", c.RateLimit.Requests, 0, 1<<30); err != nil {
		return err
	}
	if s.rateLimit.Window, err = parseDuration("rate_limit.window", c.RateLimit.Window); err != nil {
		return err
	}
	s.rateLimit.Window = cmp.Or(s.rateLimit.Window, time.Second)
	return nil
}

// resolveUpstreams: the upstreams of the file or the flags (a preset, one
// URL, or the demo), presets expanded, validated once by relay.
func (s *settings) resolveUpstreams(c *fileConfig, ov overrides) error {
	ups := c.Upstreams
	fromFlags := false
	switch {
	case ov.preset != "":
		if len(ups) > 0 {
			return usagef("%s: the config file has upstreams; name the preset there (preset: %s)", ov.key("preset"), ov.preset)
		}
		if ov.symbols == nil {
			return usagef("%s: needs -symbols", ov.key("preset"))
		}
		u := upstreamConfig{Name: ov.preset, Preset: ov.preset, Channel: ov.channel, URL: ov.upstream}
		if ov.subscribe != "" {
			u.Subscribe = templates{ov.subscribe}
		}
		ups, fromFlags = []upstreamConfig{u}, true
	case ov.channel != "":
		return usagef("%s: needs -preset", ov.key("channel"))
	case ov.upstream != "":
		if ov.symbols == nil {
			return usagef("%s: needs -symbols", ov.key("upstream"))
		}
		u := upstreamConfig{Name: "upstream", URL: ov.upstream, Subscribe: templates{seedSubscribe},
			Unsubscribe: templates{seedUnsubscribe}, Accept: matchers{relay.Exists(seedAccept)}}
		if ov.subscribe != "" {
			u.Subscribe, u.Unsubscribe, u.Accept = templates{ov.subscribe}, nil, nil
		}
		ups, fromFlags = []upstreamConfig{u}, true
	case ov.subscribe != "":
		return usagef("%s: needs -upstream", ov.key("subscribe"))
	}
	for _, sy := range ov.symbols {
		if err := relay.CheckSymbol(sy.Name); err != nil {
			return usagef("%s: %v", ov.key("symbols"), err)
		}
	}
	if ov.symbols != nil {
		switch len(ups) {
		case 0:
			// the demo with these symbols
		case 1:
			ups[0].Symbols = ov.symbols
		default:
			return usagef("%s: the config has %d upstreams; list symbols in the config file", ov.key("symbols"), len(ups))
		}
	}
	if len(ups) == 0 {
		s.demo = true
		s.demoSymbols = defaultDemoSymbols
		if ov.symbols != nil {
			s.demoSymbols = nil
			for _, sy := range ov.symbols {
				s.demoSymbols = append(s.demoSymbols, relay.Symbol{Name: sy.Name, Ref: sy.Ref})
			}
		}
		return nil
	}
	for i, u := range ups {
		key := fmt.Sprintf("upstreams[%d]", i)
		u, err := applyPreset(u, key)
		if err != nil {
			return configErr(err, fromFlags, ov)
		}
		uc, err := u.toRelay(key)
		if err != nil {
			return err
		}
		s.upstreams = append(s.upstreams, uc)
	}
	if err := (relay.Config{Upstreams: s.upstreams}).Validate(); err != nil {
		return configErr(err, fromFlags, ov)
	}
	return nil
}

// applyPreset expands u's preset under u's own keys.
func applyPreset(u upstreamConfig, key string) (upstreamConfig, error) {
	if u.Preset == "" {
		if u.Channel != "" {
			return u, &relay.FieldError{Key: key + ".channel", Err: errors.New("needs preset")}
		}
		return u, nil
	}
	p, err := presets.Get(u.Preset)
	if err != nil {
		return u, &relay.FieldError{Key: key + ".preset", Err: err}
	}
	node, err := p.Expand(u.Channel)
	if err != nil {
		return u, &relay.FieldError{Key: key + ".channel", Err: err}
	}
	var base upstreamConfig
	if err := node.Decode(&base); err != nil {
		return u, fmt.Errorf("preset %s: %w", u.Preset, err) // the presets are tested: unreachable
	}
	overlay(&base, &u)
	base.Channel = cmp.Or(u.Channel, presets.DefaultChannel)
	base.Name = cmp.Or(u.Name, u.Preset)
	return base, nil
}

// configErr makes a config error a usage error that names its key; for an
// upstream built from flags, the flag (upstreams[0].url is -upstream).
func configErr(err error, fromFlags bool, ov overrides) error {
	var fe *relay.FieldError
	if !errors.As(err, &fe) {
		var ue *usageError
		if errors.As(err, &ue) {
			return err
		}
		return usagef("%v", err)
	}
	key := fe.Key
	if fromFlags {
		for k, f := range map[string]string{
			"upstreams[0].url": "upstream", "upstreams[0].subscribe": "subscribe", "upstreams[0].symbols": "symbols",
			"upstreams[0].preset": "preset", "upstreams[0].channel": "channel", "upstreams[0].max_connections": "symbols",
		} {
			if key == k || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[") {
				key = ov.key(f)
				break
			}
		}
	}
	return usagef("%s: %v", key, fe.Err)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
