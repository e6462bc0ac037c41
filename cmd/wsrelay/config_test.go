package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/simfeed"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wsrelay.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodUpstream = `
upstreams:
  - name: bbx
    url: wss://api.example.com/ws
    subscribe: '` + simfeed.Subscribe + `'
    symbols: ["14", "15"]
`

// TestBadConfigExits2 tries every kind of bad key, value and flag: each
// is a usage error (exit 2) with one line that names what is wrong.
func TestBadConfigExits2(t *testing.T) {
	cases := []struct {
		name   string
		config string // YAML, or "" for none
		args   []string
		env    []string
		names  string // must appear in the message
	}{
		{"unknown top key", "listne: ':8080'\n", nil, nil, `unknown key "listne"`},
		{"unknown nested key", "sse:\n  heartbeet: 5s\n", nil, nil, "sse.heartbeet"},
		{"unknown upstream key", goodUpstream + "    pingInterval: 5s\n", nil, nil, "pingInterval"},
		{"bad type", "history: lots\n", nil, nil, "history"},
		{"history range", "history: 0\n", nil, nil, "history"},
		{"bad duration", "sse:\n  heartbeat: soon\n", nil, nil, "sse.heartbeat"},
		{"negative duration", "sse:\n  retry: -1s\n", nil, nil, "sse.retry"},
		{"queue range", "sse:\n  queue: -5\n", nil, nil, "sse.queue"},
		{"max clients", "sse:\n  max_clients: 0\n", nil, nil, "sse.max_clients"},
		{"cors", "cors_origins: [example.com]\n", nil, nil, "cors_origins"},
		{"trusted proxy", "trusted_proxies: [10.0.0.0/33]\n", nil, nil, "trusted_proxies"},
		{"trusted proxy name", "trusted_proxies: [proxy.local]\n", nil, nil, "trusted_proxies"},
		{"listen", "listen: 8080\n", nil, nil, "listen"},
		{"log level", "log_level: loud\n", nil, nil, "log_level"},
		{"short token", "admin_token: abc\n", nil, nil, "admin_token"},
		{"url", strings.Replace(goodUpstream, "wss://api.example.com/ws", "https://api.example.com", 1), nil, nil, "upstreams[0].url"},
		{"template", strings.Replace(goodUpstream, "QuoteBin5m:{symbol}", "QuoteBin5m", 1), nil, nil, "upstreams[0].subscribe"},
		{"bad symbol", strings.Replace(goodUpstream, `"15"`, `"a b"`, 1), nil, nil, "upstreams[0].symbols[1]"},
		{"duplicate symbol", strings.Replace(goodUpstream, `"15"`, `"14"`, 1), nil, nil, "upstreams[0].symbols[1]"},
		{"duplicate across upstreams", goodUpstream + "  - name: two\n    url: ws://h/\n    subscribe: '{symbol}'\n    symbols: [\"14\"]\n", nil, nil, "upstreams[1].symbols[0]"},
		{"duplicate upstream", goodUpstream + "  - name: bbx\n    url: ws://h/\n    subscribe: '{symbol}'\n    symbols: [\"99\"]\n", nil, nil, "upstreams[1].name"},
		{"symbol object key", strings.Replace(goodUpstream, `["14", "15"]`, "\n      - \"14\"\n      - {name: X, reff: Y}", 1), nil, nil, "reff"},
		{"pointer", goodUpstream + "    accept: data\n", nil, nil, "upstreams[0].accept"},
		{"read limit", goodUpstream + "    read_limit: 1 potato\n", nil, nil, "upstreams[0].read_limit"},
		{"read limit small", goodUpstream + "    read_limit: 10B\n", nil, nil, "upstreams[0].read_limit"},
		{"backoff order", goodUpstream + "    backoff: {min: 10s, max: 1s}\n", nil, nil, "upstreams[0].backoff"},
		{"backoff duration", goodUpstream + "    backoff: {min: fast}\n", nil, nil, "upstreams[0].backoff.min"},
		{"pong half", goodUpstream + "    pong: {match: /ping}\n", nil, nil, "upstreams[0].pong"},
		{"decompress", goodUpstream + "    decompress: brotli\n", nil, nil, "upstreams[0].decompress"},
		{"header", goodUpstream + "    headers: {\"Bad Name\": x}\n", nil, nil, "upstreams[0].headers"},
		{"not yaml", "listen: [\n", nil, nil, "config"},
		{"http timeout", "http: {read_header_timeout: never}\n", nil, nil, "http.read_header_timeout"},
		{"http header bytes", "http: {max_header_bytes: 10B}\n", nil, nil, "http.max_header_bytes"},
		{"rate limit", "rate_limit: {requests: -1}\n", nil, nil, "rate_limit.requests"},
		{"rate window", "rate_limit: {requests: 5, window: 0s}\n", nil, nil, "rate_limit.window"},
		{"public pprof", "debug_listen: 0.0.0.0:6060\n", nil, nil, "debug_listen"},
		{"missing file", "", []string{"-config", "/nonexistent/wsrelay.yaml"}, nil, "-config"},
		{"unknown flag", "", []string{"-listne", ":1"}, nil, "-listne"},
		{"flag listen", "", []string{"-listen", "nope"}, nil, "-listen"},
		{"env listen", "", nil, []string{"WSRELAY_LISTEN", "nope"}, "WSRELAY_LISTEN"},
		{"flag symbols", "", []string{"-symbols", "ok,not ok"}, nil, "-symbols"},
		{"flag empty symbols", "", []string{"-symbols", ","}, nil, "-symbols"},
		{"upstream url", "", []string{"-upstream", "http://x", "-symbols", "A"}, nil, "-upstream"},
		{"upstream without symbols", "", []string{"-upstream", "ws://x/"}, nil, "-symbols"},
		{"subscribe without upstream", "", []string{"-subscribe", "{symbol}"}, nil, "-subscribe"},
		{"subscribe template", "", []string{"-upstream", "ws://x/", "-subscribe", "sub", "-symbols", "A"}, nil, "-subscribe"},
		{"symbols with two upstreams", goodUpstream + "  - name: two\n    url: ws://h/\n    subscribe: '{symbol}'\n    symbols: [\"99\"]\n", []string{"-symbols", "A"}, nil, "-symbols"},
		{"log format flag", "", []string{"-log-format", "xml"}, nil, "-log-format"},
		{"token file", "", []string{"-admin-token-file", "/nonexistent/token"}, nil, "-admin-token-file"},
		{"extra arg", "", []string{"extra"}, nil, "unknown command"},
		{"serve extra arg", "", []string{"serve", "extra"}, nil, "extra"},
		{"unknown command", "", []string{"srve"}, nil, "srve"},
		{"simfeed rate", "", []string{"simfeed", "-rate", "0"}, nil, "-rate"},
		{"tail no symbols", "", []string{"tail"}, nil, "symbol"},
		{"tail bad symbol", "", []string{"tail", "a/b"}, nil, "a/b"},
		{"tail bad server", "", []string{"tail", "-server", "ftp://x", "A"}, nil, "-server"},
		{"unknown preset", "upstreams: [{preset: binanse, symbols: [A]}]\n", nil, nil, `upstreams[0].preset: unknown preset "binanse" (one of binance, bitfinex`},
		{"unknown channel", "upstreams: [{preset: coinbase, channel: bbo, symbols: [A]}]\n", nil, nil, "upstreams[0].channel: preset coinbase has no channel \"bbo\" (one of ticker, trades)"},
		{"channel without preset", goodUpstream + "    channel: trades\n", nil, nil, "upstreams[0].channel: needs preset"},
		{"rule key wrong type", goodUpstream + "    reject: {match: /e, message: [a]}\n", nil, nil, "upstreams[0].reject"},
		{"rule unknown key", goodUpstream + "    heartbeat: {match: /e, equal: 1}\n", nil, nil, `unknown key "equal"`},
		{"route without symbols_per_connection", goodUpstream + "    route: {match: /s, value: '{symbol}'}\n", nil, nil, "upstreams[0].route: needs symbols_per_connection > 1"},
		{"shared without route", goodUpstream + "    symbols_per_connection: 5\n", nil, nil, "upstreams[0].route: required"},
		{"too many symbols", goodUpstream + "    max_connections: 1\n", nil, nil, "upstreams[0].max_connections: 2 symbols need 2 connections"},
		{"dial rate", goodUpstream + "    dial_rate: fast\n", nil, nil, "upstreams[0].dial_rate"},
		{"bad framing", goodUpstream + "    framing: stomp\n", nil, nil, "upstreams[0].framing"},
		{"preset flag without symbols", "", []string{"-preset", "okx"}, nil, "-preset: needs -symbols"},
		{"preset flag unknown", "", []string{"-preset", "okex", "-symbols", "A"}, nil, `-preset: unknown preset "okex"`},
		{"channel flag unknown", "", []string{"-preset", "okx", "-channel", "book", "-symbols", "A"}, nil, "-channel: preset okx has no channel"},
		{"channel flag without preset", "", []string{"-channel", "trades"}, nil, "-channel: needs -preset"},
		{"preset cap", "", []string{"-preset", "kucoin", "-symbols", manySymbols(51)}, nil, "-symbols"},
		{"presets unknown", "", []string{"presets", "nope"}, nil, "unknown preset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.config != "" {
				args = append([]string{"-config", writeConfig(t, tc.config)}, args...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out, errOut strings.Builder
			err := run(ctx, args, env(tc.env...), &out, &errOut)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if code := exitCode(err, &errOut); code != 2 {
				t.Fatalf("exit %d", code)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.names) {
				t.Fatalf("message %q should be one line naming %q", msg, tc.names)
			}
			if lines := strings.Count(errOut.String(), "\n"); lines != 1 {
				t.Fatalf("stderr has %d lines: %q", lines, errOut.String())
			}
		})
	}
}

func manySymbols(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "S%d", i)
	}
	return b.String()
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	cfg := writeConfig(t, "listen: ':1111'\nlog_level: warn\nadmin_token: file-token-0123456789\n")
	resolveArgs := func(args []string, getenv func(string) string) *settings {
		t.Helper()
		fs := newServeFlagSet()
		if _, err := parseFlags(fs, "", args, &strings.Builder{}); err != nil {
			t.Fatal(err)
		}
		ov, err := collect(fs, getenv)
		if err != nil {
			t.Fatal(err)
		}
		fc := &fileConfig{}
		if ov.configPath != "" {
			if fc, err = loadFile(ov.configPath); err != nil {
				t.Fatal(err)
			}
		}
		st, err := resolve(fc, ov)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := resolveArgs(nil, env()); st.listen != ":8080" || st.logLevel != "info" || !st.demo || len(st.demoSymbols) != 3 {
		t.Fatalf("defaults: %+v", st)
	}
	if st := resolveArgs([]string{"-config", cfg}, env()); st.listen != ":1111" || st.logLevel != "warn" || st.adminToken != "file-token-0123456789" {
		t.Fatalf("file: %+v", st)
	}
	if st := resolveArgs(nil, env("WSRELAY_CONFIG", cfg, "WSRELAY_LISTEN", ":2222")); st.listen != ":2222" || st.logLevel != "warn" {
		t.Fatalf("env over file: %+v", st)
	}
	if st := resolveArgs([]string{"-listen", ":3333", "-config", cfg}, env("WSRELAY_LISTEN", ":2222", "WSRELAY_LOG_LEVEL", "debug")); st.listen != ":3333" || st.logLevel != "debug" {
		t.Fatalf("flag over env: %+v", st)
	}
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("from-a-file-0123456789\n"), 0o600)
	if st := resolveArgs([]string{"-admin-token-file", tok}, env()); st.adminToken != "from-a-file-0123456789" {
		t.Fatalf("token file: %q", st.adminToken)
	}
	st := resolveArgs([]string{"-upstream", "wss://x.example/ws", "-symbols", "BTC-USDT,ETH"}, env())
	if st.demo || len(st.upstreams) != 1 || st.upstreams[0].URL != "wss://x.example/ws" || st.upstreams[0].Subscribe[0] != seedSubscribe || len(st.upstreams[0].Symbols) != 2 {
		t.Fatalf("-upstream: %+v", st.upstreams)
	}
	full := writeConfig(t, `
listen: ":9000"
history: 50
sse: {heartbeat: 5s, retry: 1s, queue: 64, max_clients: 10, max_clients_per_ip: 2, write_timeout: 3s}
upstreams:
  - name: bbx
    url: wss://api.example.com/ws
    headers: {Origin: "https://www.example.com"}
    subscribe: '`+simfeed.Subscribe+`'
    unsubscribe: '`+simfeed.Unsubscribe+`'
    symbols: ["14", {name: BTC-USDT, ref: "BTC/USDT"}]
    accept: /data
    extract: /data/0
    ping_interval: 20s
    ping_timeout: 10s
    app_ping: ping
    pong: {match: /ping, reply: '{"pong":{value}}'}
    stale_after: 30s
    reconnect_on_stale: true
    decompress: auto
    read_limit: 2MiB
    backoff: {min: 250ms, max: 30s}
`)
	st = resolveArgs([]string{"-config", full}, env())
	u := st.upstreams[0]
	if st.history != 50 || st.sse.Queue != 64 || st.sse.MaxPerIP != 2 || u.ReadLimit != 2<<20 || u.Symbols[1].Ref != "BTC/USDT" ||
		u.Pong[0].Reply != `{"pong":{value}}` || !u.ReconnectOnStale || u.Backoff.Min != 250*time.Millisecond || u.Headers["Origin"] == "" {
		t.Fatalf("full config: %+v %+v", st, u)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1MiB": 1 << 20, "512KiB": 512 << 10, "65536": 65536, "1MB": 1e6, "2 GiB": 2 << 30, "10B": 10} {
		if got, err := parseSize("k", in, 0); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"1.5MiB", "MiB", "-1", "1TiB", "1 potato"} {
		if _, err := parseSize("k", in, 0); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodUpstream))
	f.Add([]byte("listen: ':8080'\nsse: {queue: 5}\n"))
	f.Add([]byte("upstreams: [{symbols: [{name: a, ref: b}, 1]}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fc, err := parseConfig(b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if _, err := resolve(fc, overrides{src: map[string]string{}}); err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}
