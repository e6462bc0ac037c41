package relay

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of an upstream's settings.
const (
	DefaultPingInterval = 20 * time.Second
	DefaultPingTimeout  = 10 * time.Second
	DefaultStaleAfter   = 30 * time.Second
	DefaultReadLimit    = 1 << 20
	DefaultBackoffMin   = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultDialTimeout  = 10 * time.Second
	DefaultReadyTimeout = 10 * time.Second
	// StableAfter is how long a connection must last for the backoff to
	// start again from its minimum.
	StableAfter = time.Minute
)

// Symbol is a subscribed name and the reference that replaces {symbol} in
// the upstream's frames (the name when empty).
type Symbol struct {
	Name string
	Ref  string
}

// RefOrName returns the reference sent upstream.
func (s Symbol) RefOrName() string {
	if s.Ref != "" {
		return s.Ref
	}
	return s.Name
}

// Backoff bounds the reconnect delay.
type Backoff struct {
	Min, Max time.Duration
}

// Rate is at most N events per window Per (N 0: no limit).
type Rate struct {
	N   int
	Per time.Duration
}

// ParseRate reads "N/window", e.g. "3/1s", "300/5m"; "" is no limit.
func ParseRate(s string) (Rate, error) {
	if s == "" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not N/window (e.g. 3/1s, 300/5m)", truncate(s, 32))
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 1 {
		return Rate{}, fmt.Errorf("%q: N must be a positive integer", truncate(s, 32))
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("%q: the window must be a positive duration (e.g. 1s, 5m)", truncate(s, 32))
	}
	return Rate{N: count, Per: d}, nil
}

// String formats r as ParseRate reads it.
func (r Rate) String() string {
	if r.N == 0 {
		return ""
	}
	return strconv.Itoa(r.N) + "/" + r.Per.String()
}

// PongRule answers app-level pings: a frame matching Matcher gets Reply
// (a template; {value} is the raw JSON at Match).
type PongRule struct {
	Matcher
	Reply string
}

// RejectRule recognises the venue refusing a subscription. Message and ID
// are JSON pointers: the venue's reason, and a value to match against the
// {id} of the subscribe frame it answers.
type RejectRule struct {
	Matcher
	Message string
	ID      string
}

// ReadyRule holds the subscribe frames back until a frame matches (KuCoin's
// welcome); no such frame within Timeout (default 10s) fails the dial.
type ReadyRule struct {
	Matcher
	Timeout time.Duration
}

// Resolve is an HTTP call before every dial that yields the WebSocket URL
// (KuCoin's token). WSURL is a template whose {/json/pointer} parts come
// from the JSON response; PingInterval, a pointer to a number of
// milliseconds in it, overrides the ping interval.
type Resolve struct {
	Method       string // GET or POST (default POST)
	URL          string
	Body         string
	WSURL        string
	PingInterval string
}

// Route sends each frame of a shared connection to the symbol whose Value
// (a template) equals the value at Match.
type Route struct {
	Match string
	Value string
}

// UpstreamConfig describes one upstream WebSocket endpoint and its symbols.
// A zero field means its default. The rule keys mirror the config file's
// (README "Configuration", SPEC "Real exchanges").
type UpstreamConfig struct {
	Name string
	// URL is ws:// or wss://; it may name the symbol ({symbol} and its
	// variants), which makes one stream per URL. With Resolve it may be
	// empty: the resolve call yields it.
	URL     string
	Framing string // json (default), socketio, signalr
	// Namespace and NamespaceAuth (socketio): the namespace to connect to
	// (default "/") and the CONNECT packet's payload, a JSON object (a
	// secret, like Headers).
	Namespace, NamespaceAuth string
	// Headers are sent with the handshake (Origin, User-Agent, Cookie…).
	// Their values are secrets as far as logs and the API are concerned.
	Headers map[string]string
	// Subscribe frames are sent in order after connecting; a template
	// that does not name the symbol is sent once per connection.
	Subscribe []string
	// Unsubscribe frames are sent before a removed symbol's connection
	// closes (or, on a shared connection, when it is removed).
	Unsubscribe []string
	Symbols     []Symbol

	Accept      []Matcher // a frame matching any is a quote; none: every JSON frame
	Extract     string    // JSON pointer of the published part
	Pong        []PongRule
	Heartbeat   []Matcher
	Reject      []RejectRule
	ReconnectOn []Matcher
	Ready       *ReadyRule
	Resolve     *Resolve
	Decompress  string // auto (default) or none

	PingInterval     time.Duration // default 20s
	PingTimeout      time.Duration // default 10s
	AppPing          string        // template sent every PingInterval
	StaleAfter       time.Duration // default 30s
	ReconnectOnStale bool
	ReadLimit        int64 // default 1 MiB; also caps inflated frames
	Backoff          Backoff
	DialTimeout      time.Duration // handshake deadline, default 10s
	// MaxAge > 0 hands every connection over to a new one before it is
	// this old (a venue's connection age limit).
	MaxAge time.Duration

	// DialRate bounds new connections per window, all symbols together.
	DialRate Rate
	// SubscribeRate bounds the subscribe and unsubscribe frames sent on one
	// connection per window (a venue that cuts a connection subscribing
	// faster); they wait their turn in order.
	SubscribeRate Rate
	// MaxConnections bounds open connections (0: no limit).
	MaxConnections int
	// SymbolsPerConnection > 1 puts several symbols on one connection,
	// each frame sent to a symbol by Route. Default 1.
	SymbolsPerConnection int
	Route                *Route

	// InsecureSkipVerify disables TLS certificate checks for wss://.
	InsecureSkipVerify bool
	// HTTPClient dials the upstream (and resolves); nil builds one from
	// the settings.
	HTTPClient *http.Client

	// Preset and Channel name the exchange preset the config came from
	// (shown in /v1/symbols); Fields says where the published data holds
	// its last price and best bid and ask (for the board and tail).
	Preset, Channel string
	Fields          Fields
}

// Fields are JSON pointers into a quote's data (empty: not present).
type Fields struct {
	Last, Bid, Ask string
}

// FieldError is a config error at a key, named as in the config file and
// relative to the upstream ("subscribe[1]", "reject.message").
type FieldError struct {
	Key string
	Err error
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(key string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Key: key + "." + fe.Key, Err: fe.Err}
	}
	return &FieldError{Key: key, Err: err}
}

func fieldErrf(key, format string, args ...any) error {
	return &FieldError{Key: key, Err: fmt.Errorf(format, args...)}
}

// withDefaults returns u with every zero field set to its default.
func (u UpstreamConfig) withDefaults() UpstreamConfig {
	if u.PingInterval == 0 {
		u.PingInterval = DefaultPingInterval
	}
	if u.PingTimeout == 0 {
		u.PingTimeout = DefaultPingTimeout
	}
	if u.StaleAfter == 0 {
		u.StaleAfter = DefaultStaleAfter
	}
	if u.ReadLimit == 0 {
		u.ReadLimit = DefaultReadLimit
	}
	if u.Backoff.Min == 0 {
		u.Backoff.Min = DefaultBackoffMin
	}
	if u.Backoff.Max == 0 {
		u.Backoff.Max = max(DefaultBackoffMax, u.Backoff.Min)
	}
	if u.DialTimeout == 0 {
		u.DialTimeout = DefaultDialTimeout
	}
	if u.Decompress == "" {
		u.Decompress = DecompressAuto
	}
	if u.Framing == "" {
		u.Framing = FramingJSON
	}
	if u.SymbolsPerConnection == 0 {
		u.SymbolsPerConnection = 1
	}
	if u.Ready != nil && u.Ready.Timeout == 0 {
		r := *u.Ready
		r.Timeout = DefaultReadyTimeout
		u.Ready = &r
	}
	if u.Resolve != nil && u.Resolve.Method == "" {
		r := *u.Resolve
		r.Method = http.MethodPost
		u.Resolve = &r
	}
	return u
}

// Validate checks u; errors are *FieldError naming the offending key as in
// the config file.
func (u UpstreamConfig) Validate() error {
	if u.Name == "" {
		return fieldErrf("name", "required")
	}
	if !ValidSymbol(u.Name) {
		return fieldErrf("name", "%q must match %s", truncate(u.Name, 64), SymbolPattern)
	}
	urlT := parseTemplate(u.URL)
	if u.URL != "" || u.Resolve == nil { // resolve yields the URL
		pu, err := url.Parse(urlT.renderString("x", escURL))
		if err != nil || (pu.Scheme != "ws" && pu.Scheme != "wss") || pu.Host == "" {
			return fieldErrf("url", "%q is not a ws:// or wss:// URL", truncate(RedactURL(u.URL), 128))
		}
	}
	if err := u.checkFraming(); err != nil {
		return err
	}
	perSymbolURL := urlT.perSymbol()
	if err := checkTemplates("subscribe", u.Subscribe, !perSymbolURL); err != nil {
		return err
	}
	if err := checkTemplates("unsubscribe", u.Unsubscribe, false); err != nil {
		return err
	}
	for k, v := range u.Headers {
		if k == "" || strings.ContainsAny(k, " \r\n:") || strings.ContainsAny(v, "\r\n") {
			return fieldErrf("headers", "%q is not a valid header", truncate(k, 64))
		}
	}
	if _, err := u.FrameRules(); err != nil {
		return err
	}
	for name, d := range map[string]time.Duration{
		"ping_interval": u.PingInterval, "ping_timeout": u.PingTimeout,
		"stale_after": u.StaleAfter, "backoff.min": u.Backoff.Min, "backoff.max": u.Backoff.Max,
		"dial_timeout": u.DialTimeout, "max_age": u.MaxAge,
	} {
		if d < 0 {
			return fieldErrf(name, "must not be negative")
		}
	}
	if u.Backoff.Max != 0 && u.Backoff.Min > u.Backoff.Max {
		return fieldErrf("backoff", "min %s is above max %s", u.Backoff.Min, u.Backoff.Max)
	}
	if u.ReadLimit < 0 || (u.ReadLimit > 0 && u.ReadLimit < 128) || u.ReadLimit > 1<<30 {
		return fieldErrf("read_limit", "must be between 128B and 1GiB")
	}
	if u.Ready != nil && u.Ready.Timeout < 0 {
		return fieldErrf("ready.timeout", "must not be negative")
	}
	if err := u.Resolve.validate(); err != nil {
		return err
	}
	if u.DialRate.N < 0 || (u.DialRate.N > 0 && u.DialRate.Per <= 0) {
		return fieldErrf("dial_rate", "must be N/window with N ≥ 1 and a positive window")
	}
	if u.SubscribeRate.N < 0 || (u.SubscribeRate.N > 0 && u.SubscribeRate.Per <= 0) {
		return fieldErrf("subscribe_rate", "must be N/window with N ≥ 1 and a positive window")
	}
	if u.MaxConnections < 0 {
		return fieldErrf("max_connections", "must not be negative")
	}
	spc := u.SymbolsPerConnection
	switch {
	case spc < 0:
		return fieldErrf("symbols_per_connection", "must not be negative")
	case spc > 1 && u.Route == nil:
		return fieldErrf("route", "required with symbols_per_connection %d (frames must be sent to their symbol)", spc)
	case spc <= 1 && u.Route != nil:
		return fieldErrf("route", "needs symbols_per_connection > 1 (with one symbol per connection every frame is its own)")
	case spc > 1 && perSymbolURL:
		return fieldErrf("symbols_per_connection", "must be 1 when url names the symbol (one stream per URL)")
	}
	if u.Route != nil {
		if u.Route.Value == "" {
			return fieldErrf("route.value", "required")
		}
		if !parseTemplate(u.Route.Value).perSymbol() {
			return fieldErrf("route.value", "must contain {symbol} (or {symbol_lower}/{symbol_upper})")
		}
	}
	if u.MaxConnections > 0 {
		if capacity := u.MaxConnections * max(spc, 1); len(u.Symbols) > capacity {
			if spc > 1 {
				return fieldErrf("max_connections", "%d symbols do not fit in %d connections of %d symbols each", len(u.Symbols), u.MaxConnections, spc)
			}
			return fieldErrf("max_connections", "%d symbols need %d connections (one per symbol) but at most %d may be open; set symbols_per_connection if the venue allows several per connection", len(u.Symbols), len(u.Symbols), u.MaxConnections)
		}
	}
	seen := map[string]bool{}
	for i, s := range u.Symbols {
		key := fmt.Sprintf("symbols[%d]", i)
		if err := CheckSymbol(s.Name); err != nil {
			return fieldErr(key, err)
		}
		if seen[s.Name] {
			return fieldErrf(key, "duplicate symbol %q", s.Name)
		}
		seen[s.Name] = true
		if len(s.Ref) > 256 {
			return fieldErrf(key+".ref", "longer than 256 bytes")
		}
	}
	for name, p := range map[string]string{"fields.last": u.Fields.Last, "fields.bid": u.Fields.Bid, "fields.ask": u.Fields.Ask} {
		if _, err := parsePointer(p); err != nil {
			return fieldErr(name, err)
		}
	}
	return nil
}

// checkTemplates: a list of frames of which at least one names the symbol
// (when needsSymbol, the list must not be empty either).
func checkTemplates(key string, ts []string, needsSymbol bool) error {
	if len(ts) == 0 {
		if needsSymbol {
			return fieldErrf(key, "required (or name the symbol in url)")
		}
		return nil
	}
	named := false
	for i, t := range ts {
		if t == "" {
			return fieldErrf(idx(key, i, len(ts)), "empty frame")
		}
		named = named || parseTemplate(t).perSymbol()
	}
	if !named {
		return fieldErrf(key, "no frame contains {symbol} (or {symbol_lower}/{symbol_upper})")
	}
	return nil
}

func (r *Resolve) validate() error {
	if r == nil {
		return nil
	}
	switch r.Method {
	case "", http.MethodGet, http.MethodPost:
	default:
		return fieldErrf("resolve.method", "%q is not GET or POST", truncate(r.Method, 16))
	}
	pu, err := url.Parse(r.URL)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return fieldErrf("resolve.url", "%q is not an http:// or https:// URL", truncate(RedactURL(r.URL), 128))
	}
	if r.WSURL == "" {
		return fieldErrf("resolve.ws_url", "required")
	}
	if _, err := parsePointerTemplate(r.WSURL); err != nil {
		return fieldErr("resolve.ws_url", err)
	}
	if _, err := parsePointer(r.PingInterval); err != nil {
		return fieldErr("resolve.ping_interval", err)
	}
	return nil
}

// RedactURL hides what a URL may carry as secrets (user info, query
// values) so that it can be logged: wss://u:p@h/ws?token=x becomes
// wss://REDACTED@h/ws?token=REDACTED.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redactErr replaces every form of the upstream URL in err's text (the
// WebSocket library quotes it, sometimes as http(s)://). The result still
// unwraps to err, so errors.Is and CloseStatus see through it.
func redactErr(err error, raw string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := RedactURL(raw)
	forms := []string{raw}
	if rest, ok := strings.CutPrefix(raw, "ws"); ok {
		forms = append(forms, "http"+rest)
	}
	changed := false
	for _, f := range forms {
		if strings.Contains(msg, f) {
			msg = strings.ReplaceAll(msg, f, red)
			changed = true
		}
	}
	if u, perr := url.Parse(raw); perr == nil && (u.RawQuery != "" || u.User != nil) {
		// Whatever the library printed, no query value or password leaks.
		for _, vs := range u.Query() {
			for _, v := range vs {
				if v != "" && strings.Contains(msg, v) {
					msg = strings.ReplaceAll(msg, v, "REDACTED")
					changed = true
				}
			}
		}
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "REDACTED")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// redactedError is an error whose text had secrets removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Unwrap() error { return e.err }
