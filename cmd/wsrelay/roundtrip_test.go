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
	"github.com/wsrelay/wsrelay/relay/relaytest"
	"github.com/wsrelay/wsrelay/relay/sitefake"
	"github.com/wsrelay/wsrelay/relay/venuefake"
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
	site := httptest.NewServer(testsite.Page())
	defer site.Close()
	return recordURL(t, page.Proto, page.URL(site.URL), "", "window.__state.recv")
}

// recordURL records any page; done and received are JavaScript (see
// chromerec.Config).
func recordURL(t *testing.T, name, url, done, received string) string {
	t.Helper()
	exe := chromiumOrSkip(t)
	har, err := chromerec.Record(context.Background(), chromerec.Config{Chromium: exe, URL: url, Done: done,
		Received: received, Sanitize: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".har")
	if err := os.WriteFile(path, har, 0o600); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("WSRELAY_ARTIFACTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "recorded-"+name+".har"), har, 0o644)
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

// TestRoundTripTextPing: OKX (relay/venuefake's strict fake) closes a
// connection that has received nothing for 30 s; the page pings with the
// text "ping" and gets "pong". The config must ping the same way: with
// the fake's pushes frozen, only the pongs to the relay's pings keep its
// connections open past the idle limit.
func TestRoundTripTextPing(t *testing.T) {
	okx := venuefake.NewOKX(venuefake.OKXConfig{Config: venuefake.Config{TimeScale: 0.05, PushInterval: 50 * time.Millisecond}})
	srv := httptest.NewServer(okx)
	defer srv.Close()
	defer okx.Close()
	har := recordPage(t, testsite.PageConfig{Proto: "okx", WS: okx.WSURL(srv.URL), Symbols: []string{"BTC-USDT", "ETH-USDT"}, Quotes: 5, PingMillis: 300})
	cfg := importHAR(t, har, `subscribe: '{"op":"subscribe","args":[{"channel":"tickers","instId":"{symbol}"}]}'`,
		"symbols: [BTC-USDT, ETH-USDT]", "accept: /data", "app_ping: ping", "ping_interval: 300ms", `heartbeat: {match: "", equals: pong}`)
	closes := len(okx.Closes())
	serveAndCheck(t, cfg, func() {
		okx.SetPushing(false)
		defer okx.SetPushing(true)
		// Idle is 30 s × 0.05 = 1.5 s: twelve pings at 300 ms on two
		// connections take longer.
		pings := countPings(okx.Received())
		relaytest.Eventually(t, "the relay's pings", func() bool { return countPings(okx.Received()) >= pings+12 })
		if c := okx.Closes(); len(c) != closes {
			t.Errorf("the fake closed connections while the relay ran: %q", c[closes:])
		}
	})
}

func countPings(received []string) int {
	n := 0
	for _, r := range received {
		if r == "ping" {
			n++
		}
	}
	return n
}

// TestRoundTripGzip: HTX (relay/venuefake) sends gzip binary frames, pings
// with {"ping":n} and closes a client that misses two; the page answers
// {"pong":n}. The config must inflate the frames and answer the pings.
func TestRoundTripGzip(t *testing.T) {
	htx := venuefake.NewHTX(venuefake.HTXConfig{Config: venuefake.Config{TimeScale: 0.05}})
	srv := httptest.NewServer(htx)
	defer srv.Close()
	defer htx.Close()
	har := recordPage(t, testsite.PageConfig{Proto: "htx", WS: htx.WSURL(srv.URL), Symbols: []string{"btcusdt", "ethusdt"}, Quotes: 5, Pongs: 3})
	cfg := importHAR(t, har, `subscribe: '{"sub":"market.{symbol}.ticker","id":"id{id}"}'`, "symbols: [btcusdt, ethusdt]",
		"accept: /tick", "decompress: auto", `pong: {match: /ping, reply: '{"pong":{value}}'}`)
	closes := len(htx.Closes())
	serveAndCheck(t, cfg, func() {
		// Pings every 5 s × 0.05 = 250 ms; two missed close the connection.
		pongs := countPongs(htx.Received())
		relaytest.Eventually(t, "the relay's pongs", func() bool { return countPongs(htx.Received()) >= pongs+8 })
		if c := htx.Closes(); len(c) != closes {
			t.Errorf("the fake closed connections while the relay ran: %q", c[closes:])
		}
	})
}

func countPongs(received []string) int {
	n := 0
	for _, r := range received {
		if strings.HasPrefix(r, `{"pong":`) {
			n++
		}
	}
	return n
}

// TestRoundTripSocketIO: the Socket.IO site of relay/sitefake (the npm
// server, its page using the official browser client, long-polling first
// and then the upgrade to WebSocket).
func TestRoundTripSocketIO(t *testing.T) {
	sitefake.RequireNode(t)
	chromiumOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	site, err := sitefake.StartSocketIO(ctx, sitefake.SocketIOConfig{Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	har := recordURL(t, "socketio", site.PageURL+"?symbols=BTC-USD,ETH-USD", "window.quotes >= 20", "")
	cfg := importHAR(t, har, "framing: socketio", `subscribe: '["subscribe","{symbol}"]'`, "symbols: [BTC-USD, ETH-USD]",
		"accept: {match: /0, equals: quote}", "extract: /1", "/socket.io/?EIO=4&transport=websocket")
	if !strings.Contains(cfg, "url: "+site.URL+"\n") {
		t.Errorf("want url: %s (the per-connection sid dropped):\n%s", site.URL, cfg)
	}
	serveAndCheck(t, cfg, nil)
}

// TestRoundTripSignalR: the SignalR hub of relay/sitefake, its page using
// the official JavaScript client (negotiate, then WebSockets).
func TestRoundTripSignalR(t *testing.T) {
	sitefake.RequireNode(t)
	chromiumOrSkip(t)
	hub := sitefake.NewSignalRHub(sitefake.SignalRConfig{Interval: 20 * time.Millisecond})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	defer hub.Close()
	har := recordURL(t, "signalr", srv.URL+"/?symbols=BTC-USD,ETH-USD", "window.quotes >= 20", "")
	cfg := importHAR(t, har, "framing: signalr", `"target":"Subscribe"`, "{symbol}", "symbols: [BTC-USD, ETH-USD]",
		"accept: {match: /target, equals: quote}", "extract: /arguments/0", "/hub\n")
	serveAndCheck(t, cfg, nil)
	if st := hub.Stats(); st.ProtocolErrors != 0 || st.Rejected != 0 {
		t.Errorf("hub stats %+v", st)
	}
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
		"chromium-socketio.har": {"framing: socketio", `subscribe: '["subscribe","{symbol}"]'`, "accept: {match: /0, equals: quote}",
			"extract: /1", "/socket.io/?EIO=4&transport=websocket\n", "came by Socket.IO long-polling"},
		"chromium-signalr.har": {"framing: signalr", `"target":"Subscribe"`, "accept: {match: /target, equals: quote}",
			"extract: /arguments/0", "/hub\n"},
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
