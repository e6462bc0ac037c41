package relay

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
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

// UpstreamConfig describes one upstream WebSocket endpoint and its symbols.
// A zero field means its default.
type UpstreamConfig struct {
	Name string
	URL  string // ws:// or wss://
	// Headers are sent with the handshake (Origin, User-Agent, Cookie…).
	// Their values are secrets as far as logs and the API are concerned.
	Headers     map[string]string
	Subscribe   string // template; {symbol} is the JSON-escaped ref
	Unsubscribe string // template; "" sends nothing before closing
	Symbols     []Symbol

	Accept     string // JSON pointer that makes a frame a quote
	Extract    string // JSON pointer of the published part
	PongMatch  string // JSON pointer of an app-level ping
	PongReply  string // reply template, {value} = the ping's value
	Decompress string // auto (default) or none

	PingInterval     time.Duration // default 20s
	PingTimeout      time.Duration // default 10s
	AppPing          string        // text sent every PingInterval
	StaleAfter       time.Duration // default 30s
	ReconnectOnStale bool
	ReadLimit        int64 // default 1 MiB; also caps inflated frames
	Backoff          Backoff
	DialTimeout      time.Duration // handshake deadline, default 10s
	// InsecureSkipVerify disables TLS certificate checks for wss://.
	InsecureSkipVerify bool
	// HTTPClient dials the upstream; nil builds one from the settings.
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
	return u
}

// Validate checks u; errors name the offending key as in the config file.
func (u UpstreamConfig) Validate() error {
	if u.Name == "" {
		return fmt.Errorf("name: required")
	}
	if !ValidSymbol(u.Name) {
		return fmt.Errorf("name: %q must match %s", truncate(u.Name, 64), SymbolPattern)
	}
	pu, err := url.Parse(u.URL)
	if err != nil || (pu.Scheme != "ws" && pu.Scheme != "wss") || pu.Host == "" {
		return fmt.Errorf("url: %q is not a ws:// or wss:// URL", truncate(u.URL, 128))
	}
	if !strings.Contains(u.Subscribe, "{symbol}") {
		return fmt.Errorf("subscribe: template must contain {symbol}")
	}
	if u.Unsubscribe != "" && !strings.Contains(u.Unsubscribe, "{symbol}") {
		return fmt.Errorf("unsubscribe: template must contain {symbol}")
	}
	for k, v := range u.Headers {
		if k == "" || strings.ContainsAny(k, " \r\n:") || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("headers: %q is not a valid header", truncate(k, 64))
		}
	}
	if _, err := NewFrameRules(u.frameConfig()); err != nil {
		return err
	}
	for name, d := range map[string]time.Duration{
		"ping_interval": u.PingInterval, "ping_timeout": u.PingTimeout,
		"stale_after": u.StaleAfter, "backoff.min": u.Backoff.Min, "backoff.max": u.Backoff.Max,
		"dial_timeout": u.DialTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("%s: must not be negative", name)
		}
	}
	if u.Backoff.Max != 0 && u.Backoff.Min > u.Backoff.Max {
		return fmt.Errorf("backoff: min %s is above max %s", u.Backoff.Min, u.Backoff.Max)
	}
	if u.ReadLimit < 0 || (u.ReadLimit > 0 && u.ReadLimit < 128) || u.ReadLimit > 1<<30 {
		return fmt.Errorf("read_limit: must be between 128B and 1GiB")
	}
	seen := map[string]bool{}
	for i, s := range u.Symbols {
		if err := CheckSymbol(s.Name); err != nil {
			return fmt.Errorf("symbols[%d]: %w", i, err)
		}
		if seen[s.Name] {
			return fmt.Errorf("symbols[%d]: duplicate symbol %q", i, s.Name)
		}
		seen[s.Name] = true
		if len(s.Ref) > 256 {
			return fmt.Errorf("symbols[%d].ref: longer than 256 bytes", i)
		}
	}
	return nil
}

func (u UpstreamConfig) frameConfig() FrameConfig {
	return FrameConfig{
		Accept: u.Accept, Extract: u.Extract,
		PongMatch: u.PongMatch, PongReply: u.PongReply,
		Decompress: u.Decompress, MaxSize: u.ReadLimit,
	}
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
// WebSocket library quotes it, sometimes as http(s)://).
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
	return errors.New(msg)
}
