package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/capture/chromerec"
	"github.com/wsrelay/wsrelay/relay/capture/testsite"
)

// These tests go from a capture to SSE: a market page on a local test
// site is recorded in CI's Chromium over the DevTools protocol and saved
// as DevTools saves a HAR; `wsrelay import` turns it into a config, which
// `wsrelay serve -config` runs unchanged; quotes of every symbol must
// arrive over REST and SSE, and the feed must see the relay keep the
// connection alive the way the page did.

func chromiumOrSkip(t *testing.T) string {
	t.Helper()
	p := chromerec.Path()
	if p == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Chromium is missing; .ci/run installs Debian's chromium package")
		}
		t.Skip("Chromium not found (apt-get install chromium)")
	}
	return p
}

// recordPage records the page in Chromium and writes the HAR (as
// Chrome's default sanitized export) to a file; the file is kept in
// WSRELAY_ARTIFACTS when set, for a look at a real capture.
func recordPage(t *testing.T, page testsite.PageConfig) string {
	t.Helper()
	exe := chromiumOrSkip(t)
	site := httptest.NewServer(testsite.Page())
	defer site.Close()
	har, err := chromerec.Record(context.Background(), chromerec.Config{Chromium: exe, URL: page.URL(site.URL),
		Received: "window.__state.recv", Sanitize: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), page.Proto+".har")
	if err := os.WriteFile(path, har, 0o600); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("WSRELAY_ARTIFACTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "recorded-"+page.Proto+".har"), har, 0o644)
	}
	return path
}

// importHAR runs wsrelay import and checks the config has every wanted line.
func importHAR(t *testing.T, path string, want ...string) string {
	t.Helper()
	out, errOut, code := runCmd(t, context.Background(), "import", path)
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("config lacks %q:\n%s\n%s", w, out, errOut)
		}
	}
	if !strings.Contains(errOut, " 0 mismatches") {
		t.Errorf("self-check failed:\n%s", errOut)
	}
	return out
}

func wsURLOf(srv *httptest.Server) string { return "ws" + strings.TrimPrefix(srv.URL, "http") + "/" }

// TestRoundTripSeed: the seed protocol's page on the simulated feed.
func TestRoundTripSeed(t *testing.T) {
	_, url := startSimfeed(t)
	har := recordPage(t, testsite.PageConfig{Proto: "seed", WS: url, Symbols: []string{"14", "15"}, Quotes: 5})
	cfg := importHAR(t, har, `subscribe: '{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}'`, `symbols: ["14", "15"]`, "accept: /data",
		"Origin: http://127.0.0.1")
	serveAndCheck(t, cfg, nil)
}

// TestRoundTripTextPing: an OKX-like feed that closes silent clients; the
// page pings with the text "ping" and gets "pong". The config must ping
// the same way, and the feed must close none of the relay's connections.
func TestRoundTripTextPing(t *testing.T) {
	okx := testsite.NewOKX(testsite.OKXConfig{Rate: 20, Idle: 1500 * time.Millisecond})
	srv := httptest.NewServer(okx)
	defer srv.Close()
	defer okx.Close()
	har := recordPage(t, testsite.PageConfig{Proto: "okx", WS: wsURLOf(srv), Symbols: []string{"BTC-USDT", "ETH-USDT"}, Quotes: 5, PingMillis: 300})
	cfg := importHAR(t, har, `subscribe: '{"op":"subscribe","args":[{"channel":"tickers","instId":"{symbol}"}]}'`,
		"symbols: [BTC-USDT, ETH-USDT]", "accept: /data", "app_ping: ping", "ping_interval: 300ms", `heartbeat: {match: "", equals: pong}`)
	idle := okx.Stats.IdleCloses.Load()
	serveAndCheck(t, cfg, func() {
		// Twelve pings at 300 ms on two connections: longer than the idle rule.
		pings := okx.Stats.Pings.Load()
		waitFor(t, "the relay's pings", 15*time.Second, func() bool { return okx.Stats.Pings.Load() >= pings+12 })
		if n := okx.Stats.IdleCloses.Load(); n != idle {
			t.Errorf("the feed closed %d silent connections while the relay ran", n-idle)
		}
	})
}

// TestRoundTripGzip: an HTX-like feed with gzip binary frames that pings
// with {"ping":n} and closes clients that miss two; the page answers
// {"pong":n}. The config must inflate the frames and answer the pings.
func TestRoundTripGzip(t *testing.T) {
	htx := testsite.NewHTX(testsite.HTXConfig{Rate: 20, PingEvery: 250 * time.Millisecond})
	srv := httptest.NewServer(htx)
	defer srv.Close()
	defer htx.Close()
	har := recordPage(t, testsite.PageConfig{Proto: "htx", WS: wsURLOf(srv), Symbols: []string{"btcusdt", "ethusdt"}, Quotes: 5, Pongs: 3})
	cfg := importHAR(t, har, `subscribe: '{"sub":"market.{symbol}.ticker","id":"id{id}"}'`, "symbols: [btcusdt, ethusdt]",
		"accept: /tick", "decompress: auto", `pong: {match: /ping, reply: '{"pong":{value}}'}`)
	idle := htx.Stats.IdleCloses.Load()
	serveAndCheck(t, cfg, func() {
		pongs := htx.Stats.Pings.Load()
		waitFor(t, "the relay's pongs", 15*time.Second, func() bool { return htx.Stats.Pings.Load() >= pongs+8 })
		if n := htx.Stats.IdleCloses.Load(); n != idle {
			t.Errorf("the feed closed %d connections for missed pings while the relay ran", n-idle)
		}
	})
}

// TestImportChromiumRecordings: captures recorded once in Chromium by the
// round-trip tests (kept in testdata, so this runs without a browser)
// import to the same configs as when they were recorded.
func TestImportChromiumRecordings(t *testing.T) {
	for file, want := range map[string][]string{
		"chromium-seed.har": {`subscribe: '{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}'`, `symbols: ["14", "15"]`, "accept: /data"},
		"chromium-okx.har": {`subscribe: '{"op":"subscribe","args":[{"channel":"tickers","instId":"{symbol}"}]}'`, "app_ping: ping",
			"ping_interval: 300ms", `heartbeat: {match: "", equals: pong}`, "accept: /data"},
		"chromium-htx.har": {`subscribe: '{"sub":"market.{symbol}.ticker","id":"id{id}"}'`, "accept: /tick", "decompress: auto",
			`pong: {match: /ping, reply: '{"pong":{value}}'}`},
	} {
		t.Run(file, func(t *testing.T) {
			cfg := importHAR(t, filepath.Join("testdata", file), want...)
			c, err := parseConfig([]byte(cfg))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := resolve(c, overrides{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
