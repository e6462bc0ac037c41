package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

func inferFixture(t *testing.T, name string, opts Options) *Result {
	t.Helper()
	res, err := Infer(readFixture(t, name), opts)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// want is what a fixture must give; empty fields are not checked.
type want struct {
	url, framing, accept, extract, appPing, decompress string
	subscribe, unsubscribe, symbols                    []string
	pong, heartbeat                                    string
	interval                                           time.Duration
	lowest                                             Confidence
}

func symbolNames(ss []relay.Symbol) []string {
	var out []string
	for _, s := range ss {
		if s.Ref != "" {
			out = append(out, s.Name+"="+s.Ref)
		} else {
			out = append(out, s.Name)
		}
	}
	return out
}

func checkUpstream(t *testing.T, res *Result, w want) {
	t.Helper()
	u := res.Upstream
	eq := func(key, got, want string) {
		t.Helper()
		if want != "" && got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	eqList := func(key string, got, want []string) {
		t.Helper()
		if want != nil && !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	eq("url", u.URL, w.url)
	eq("framing", u.Framing, w.framing)
	eq("accept", u.Accept.String(), w.accept)
	eq("extract", u.Extract, w.extract)
	eq("app_ping", u.AppPing, w.appPing)
	eq("decompress", u.Decompress, w.decompress)
	eqList("subscribe", u.Subscribe, w.subscribe)
	eqList("unsubscribe", u.Unsubscribe, w.unsubscribe)
	eqList("symbols", symbolNames(u.Symbols), w.symbols)
	if w.pong != "" {
		got := ""
		if u.Pong != nil {
			got = u.Pong.Matcher.String() + " -> " + u.Pong.Reply
		}
		eq("pong", got, w.pong)
	}
	if w.heartbeat != "" {
		var hs []string
		for _, h := range u.Heartbeat {
			hs = append(hs, h.String())
		}
		eq("heartbeat", strings.Join(hs, "; "), w.heartbeat)
	}
	if w.interval != 0 && u.PingInterval != w.interval {
		t.Errorf("ping_interval = %v, want %v", u.PingInterval, w.interval)
	}
	if w.lowest != 0 && res.lowest() != w.lowest {
		t.Errorf("lowest confidence %v, want %v", res.lowest(), w.lowest)
	}
	if res.Check.Mismatches != 0 || res.Check.Quotes == 0 {
		t.Errorf("self-check: %v", res.Check)
	}
	for k := range map[string]bool{"url": true, "subscribe": true, "symbols": true, "accept": true} {
		if k == "subscribe" && len(u.Subscribe) == 0 || k == "accept" && u.Accept.Match == "" && u.Accept.Equals == nil {
			continue
		}
		if n := u.Notes[k]; n.Conf == 0 || n.Why == "" {
			t.Errorf("key %s has no note", k)
		}
	}
}

func TestInferFixtures(t *testing.T) {
	seedSub := `{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}`
	seedUnsub := `{"action":"unsubscribe","args":["QuoteBin5m:{symbol}"]}`
	for _, tc := range []struct {
		file string
		opts Options
		want want
	}{
		{"chrome.har", Options{}, want{url: "wss://api.bbxapp.vip/v1/ifcontract/realTime", subscribe: []string{seedSub},
			unsubscribe: []string{seedUnsub}, symbols: []string{"14", "15"}, accept: "/data", extract: "", lowest: Medium}},
		{"chrome-sanitized.har", Options{Symbols: []string{"20"}}, want{symbols: []string{"14", "15", "16", "20"}, subscribe: []string{seedSub}}},
		{"bom.har", Options{}, want{accept: "/data", symbols: []string{"14", "15"}}},
		{"h2.har", Options{}, want{accept: "/data", subscribe: []string{seedSub}}},
		{"legacy-empty.har", Options{}, want{url: "ws://127.0.0.1:9001/", subscribe: []string{seedSub}}},
		{"multi-socket.har", Options{}, want{url: "wss://api.bbxapp.vip/v1/ifcontract/realTime", symbols: []string{"14", "15"}}},
		{"single-subscribe.har", Options{}, want{subscribe: []string{seedSub}, symbols: []string{"14"}, lowest: Low}},
		{"single-subscribe.har", Options{Symbols: []string{"14", "17"}}, want{subscribe: []string{seedSub}, symbols: []string{"14", "17"}, lowest: Medium}},
		{"playwright-embed.har", Options{}, want{url: "wss://ws.okx.com:8443/ws/v5/public",
			subscribe: []string{`{"op":"subscribe","args":[{"channel":"tickers","instId":"{symbol}"}]}`},
			symbols:   []string{"BTC-USDT", "ETH-USDT"}, accept: "/data", appPing: "ping", interval: 5 * time.Second,
			heartbeat: `"" = "pong"`}},
		{"mitmproxy.har", Options{}, want{url: "wss://api.huobi.pro/ws",
			subscribe: []string{`{"sub":"market.{symbol}.ticker","id":"id{id}"}`}, symbols: []string{"btcusdt", "ethusdt"},
			accept: "/tick", decompress: "auto", pong: `/ping -> {"pong":{value}}`}},
		{"mitmproxy.har", Options{Symbols: []string{"LTCUSDT"}}, want{symbols: []string{"btcusdt", "ethusdt", "LTCUSDT=ltcusdt"}}},
		{"no-opcode.har", Options{}, want{accept: "/tick", decompress: "auto", pong: `/ping -> {"pong":{value}}`}},
		{"socketio.har", Options{}, want{url: "wss://live.example-scores.com/socket.io/?EIO=4&transport=websocket", framing: "socketio",
			subscribe: []string{`["subscribe","{symbol}"]`}, symbols: []string{"AAPL", "MSFT"}, accept: `/0 = "quote"`, extract: "/1"}},
		{"socketio-polling.har", Options{}, want{url: "wss://live.example-scores.com/socket.io/?EIO=4&transport=websocket", framing: "socketio",
			subscribe: []string{`["subscribe","{symbol}"]`}, symbols: []string{"AAPL", "MSFT"}, accept: `/0 = "quote"`, extract: "/1"}},
		{"signalr.har", Options{}, want{url: "wss://fx.example-broker.com/hubs/quotes", framing: "signalr",
			subscribe: []string{`{"arguments":["{symbol}"],"invocationId":"{id}","target":"Subscribe","type":1}`},
			symbols:   []string{"EURUSD", "GBPUSD"}, accept: `/target = "ReceiveQuote"`, extract: "/arguments/0"}},
		{"secrets.har", Options{}, want{url: "wss://ws.example-exchange.com/ws/v5/private?lang=en",
			subscribe: []string{`{"op":"subscribe","token":"REDACTED","args":[{"channel":"tickers","instId":"{symbol}"}]}`}}},
		{"secrets.har", Options{KeepSecrets: true}, want{url: "wss://ws.example-exchange.com/ws/v5/private?token=Zk8sJ3nQ5vX2mL9pR4tW7yB1&lang=en",
			subscribe: []string{`{"op":"subscribe","token":"tK7pQ2wE9rT4yU1iO8aS5dF3gH6j","args":[{"channel":"tickers","instId":"{symbol}"}]}`}}},
	} {
		t.Run(tc.file+fmt.Sprint(tc.opts.Symbols, tc.opts.KeepSecrets), func(t *testing.T) {
			checkUpstream(t, inferFixture(t, tc.file, tc.opts), tc.want)
		})
	}
}

// TestInferUnusable: captures that cannot be relayed exit with one line
// that names what was found and why.
func TestInferUnusable(t *testing.T) {
	for file, wantMsg := range map[string]string{
		"firefox.har":  "none of its frames (Firefox and Safari",
		"protobuf.har": "binary and not (compressed) JSON (first bytes 0a 07 42 54, possibly protobuf)",
		"sfs2x.har":    "a 3-byte header and then zlib",
	} {
		_, err := Infer(readFixture(t, file), Options{})
		if !errors.Is(err, ErrCannotRelay) || !strings.Contains(err.Error(), wantMsg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", file, err, wantMsg)
		}
	}
	// A chat widget beside an opaque feed: the feed's problem is named.
	chat := synth("wss://chat.example.com/ws", frameSpec{"<", 0, `{"type":"welcome"}`, false}, frameSpec{">", 0.1, `{"type":"hello"}`, false})
	opaque := readFixture(t, "protobuf.har")
	chat.Sessions = append(chat.Sessions, opaque.Sessions...)
	if _, err := Infer(chat, Options{}); !errors.Is(err, ErrCannotRelay) || !strings.Contains(err.Error(), "possibly protobuf") || !strings.Contains(err.Error(), "-socket 1") {
		t.Errorf("chat beside protobuf: %v", err)
	}
	if res, err := Infer(chat, Options{Socket: 1}); err == nil {
		t.Errorf("-socket 1 relays the chat: %v", res.Upstream.Subscribe)
	}
	// No WebSocket at all.
	c, err := ReadHAR(strings.NewReader(`{"log":{"entries":[{"request":{"method":"GET","url":"https://a/"},"response":{"status":200}}]}}`), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Infer(c, Options{}); !errors.Is(err, ErrCannotRelay) || !strings.Contains(err.Error(), "no WebSocket among the HAR's 1 entry") {
		t.Errorf("no websocket: %v", err)
	}
}

// frameSpec is a frame of a synthetic session: ">" sent, "<" received;
// at in seconds from the start; bin gzips data into a binary frame.
type frameSpec struct {
	dir  string
	at   float64
	data string
	bin  bool
}

var t0 = time.Date(2025, 11, 30, 9, 20, 0, 0, time.UTC)

func gzipped(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.Bytes()
}

func synth(url string, frames ...frameSpec) *Capture {
	s := Session{URL: url, Status: 101, Request: []Header{{"Origin", "https://www.example.com"}}, Started: t0}
	for _, f := range frames {
		fr := Frame{Sent: f.dir == ">", At: t0.Add(time.Duration(f.at * float64(time.Second))), Data: []byte(f.data)}
		if f.bin {
			fr.Binary, fr.Data = true, gzipped(f.data)
		}
		s.Frames = append(s.Frames, fr)
	}
	return &Capture{Creator: "test", Entries: 1, Sessions: []Session{s}}
}

// quotes appends n quote frames per symbol from render, 0.1 s apart.
func quotes(at float64, n int, syms []string, render func(sym string, k int) string) []frameSpec {
	var out []frameSpec
	for k := range n {
		for _, s := range syms {
			out = append(out, frameSpec{"<", at, render(s, k), false})
			at += 0.1
		}
	}
	return out
}

func TestInferPatterns(t *testing.T) {
	binance := func(s string, k int) string {
		return fmt.Sprintf(`{"stream":"%s@trade","data":{"e":"trade","s":"%s","p":"%d.5","T":%d}}`, s, strings.ToUpper(s), 97000+k, 1764494401000+int64(k))
	}
	kraken := func(s string, k int) string {
		return fmt.Sprintf(`[42,{"a":["%d.1",1,"1.0"],"b":["%d.0",2,"2.0"],"c":["%d.0","0.1"]},"ticker","%s"]`, 97000+k, 96999+k, 97000+k, s)
	}
	seedQuote := func(s string, k int) string {
		return fmt.Sprintf(`{"group":"QuoteBin5m:%s","data":[{"close":"%d.5"}]}`, s, 50+k)
	}
	for _, tc := range []struct {
		name   string
		cap    *Capture
		opts   Options
		want   want
		errMsg string
	}{
		{
			// Request ids that count up become {id}; an ack shares no key with data.
			name: "binance ids",
			cap: synth("wss://stream.binance.com:9443/ws", append([]frameSpec{
				{">", 0, `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`, false},
				{"<", 0.05, `{"result":null,"id":1}`, false},
				{">", 0.06, `{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":2}`, false},
				{"<", 0.1, `{"result":null,"id":2}`, false},
			}, quotes(0.2, 5, []string{"btcusdt", "ethusdt"}, binance)...)...),
			want: want{subscribe: []string{`{"method":"SUBSCRIBE","params":["{symbol}@trade"],"id":{id}}`},
				symbols: []string{"btcusdt", "ethusdt"}, accept: "/data"},
		},
		{
			// -symbol in another case: the template uses {symbol_lower}.
			name: "symbol flag, lower case in the frame",
			cap: synth("wss://stream.binance.com:9443/ws", append([]frameSpec{
				{">", 0, `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`, false},
				{"<", 0.05, `{"result":null,"id":1}`, false},
			}, quotes(0.2, 5, []string{"btcusdt"}, binance)...)...),
			opts: Options{Symbols: []string{"BTCUSDT", "ETHUSDT"}},
			want: want{subscribe: []string{`{"method":"SUBSCRIBE","params":["{symbol_lower}@trade"],"id":1}`},
				symbols: []string{"btcusdt", "ETHUSDT=ethusdt"}},
		},
		{
			// One frame subscribes several symbols: the template keeps one item;
			// a symbol that is not a valid name gets {name, ref}.
			name: "kraken batch",
			cap: synth("wss://ws.kraken.com", append([]frameSpec{
				{">", 0, `{"event":"subscribe","pair":["XBT/USD","ETH/USD"],"subscription":{"name":"ticker"}}`, false},
				{"<", 0.05, `{"channelID":42,"channelName":"ticker","event":"subscriptionStatus","pair":"XBT/USD","status":"subscribed"}`, false},
				{"<", 0.05, `{"channelID":43,"channelName":"ticker","event":"subscriptionStatus","pair":"ETH/USD","status":"subscribed"}`, false},
			}, quotes(0.2, 5, []string{"XBT/USD", "ETH/USD"}, kraken)...)...),
			want: want{subscribe: []string{`{"event":"subscribe","pair":["{symbol}"],"subscription":{"name":"ticker"}}`},
				symbols: []string{"XBT-USD=XBT/USD", "ETH-USD=ETH/USD"}, accept: "/1", lowest: Medium},
		},
		{
			// A hello without a symbol before the subscribes: a list, sent once per connection.
			name: "hello then subscribe",
			cap: synth("ws://127.0.0.1:9001/", append([]frameSpec{
				{">", 0, `{"action":"hello","client":"web"}`, false},
				{"<", 0.01, `{"event":"welcome"}`, false},
				{">", 0.02, `{"action":"subscribe","args":["QuoteBin5m:14"]}`, false},
				{">", 0.03, `{"action":"subscribe","args":["QuoteBin5m:15"]}`, false},
				{">", 9, `{"action":"stats"}`, false},
			}, quotes(0.2, 5, []string{"14", "15"}, seedQuote)...)...),
			want: want{subscribe: []string{`{"action":"hello","client":"web"}`, `{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}`},
				symbols: []string{"14", "15"}, accept: "/data"},
		},
		{
			// The server pings with text, the page answers with text.
			name: "text ping from the server",
			cap: synth("wss://feed.example.com/ws", append(append([]frameSpec{
				{">", 0, `{"type":"subscribe","symbol":"AAA"}`, false},
				{">", 0.01, `{"type":"subscribe","symbol":"BBB"}`, false},
				{"<", 1, "ping", false}, {">", 1.01, "pong", false},
				{"<", 6, "ping", false}, {">", 6.01, "pong", false},
			}, quotes(0.2, 5, []string{"AAA", "BBB"}, func(s string, k int) string {
				return fmt.Sprintf(`{"type":"ticker","symbol":"%s","price":%d}`, s, 10+k)
			})...), frameSpec{"<", 9, `{"type":"subscribed","symbol":"AAA"}`, false})...),
			want: want{pong: `"" = "ping" -> pong`, accept: `/type = "ticker"`, symbols: []string{"AAA", "BBB"}},
		},
		{
			// Heartbeats the client never answers.
			name: "server heartbeat",
			cap: synth("wss://ws-feed.example.com", append([]frameSpec{
				{">", 0, `{"type":"subscribe","product_ids":["BTC-USD"],"channels":["ticker"]}`, false},
				{">", 0.01, `{"type":"subscribe","product_ids":["ETH-USD"],"channels":["ticker"]}`, false},
				{"<", 1, `{"type":"heartbeat","sequence":1,"time":"2025-11-30T09:20:01Z"}`, false},
				{"<", 2, `{"type":"heartbeat","sequence":2,"time":"2025-11-30T09:20:02Z"}`, false},
			}, quotes(0.2, 5, []string{"BTC-USD", "ETH-USD"}, func(s string, k int) string {
				return fmt.Sprintf(`{"type":"ticker","product_id":"%s","price":"%d.0","sequence":%d}`, s, 100+k, k)
			})...)...),
			want: want{heartbeat: `/type = "heartbeat"`, accept: `/type = "ticker"`},
		},
		{
			// A timestamp in every quote must not become a ping rule.
			name: "echo of a quote field is no pong",
			cap: synth("wss://feed.example.com/ws", append([]frameSpec{
				{">", 0, `{"sub":"a.X1"}`, false}, {">", 0.01, `{"sub":"a.X2"}`, false},
				{"<", 0.3, `{"ch":"a.X1","ts":1764494401300,"tick":{"p":1}}`, false},
				{">", 0.31, `{"ack":1764494401300}`, false},
			}, quotes(0.5, 5, []string{"X1", "X2"}, func(s string, k int) string {
				return fmt.Sprintf(`{"ch":"a.%s","ts":%d,"tick":{"p":%d}}`, s, 1764494401500+k, k)
			})...)...),
			want: want{accept: "/tick", symbols: []string{"X1", "X2"}},
		},
		{
			// Socket.IO in a namespace, with a token in the connect, and
			// another namespace's chatter on the same socket.
			name: "socket.io namespace",
			cap: synth("wss://live.example.com/socket.io/?EIO=4&transport=websocket", append([]frameSpec{
				{"<", 0, `0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`, false},
				{">", 0.01, `40/live,{"token":"abcdEFGH1234ijklMNOP5678"}`, false},
				{">", 0.01, `40/chat,`, false},
				{"<", 0.02, `40/live,{"sid":"n1"}`, false},
				{">", 0.03, `42/live,["subscribe","A1"]`, false},
				{">", 0.04, `42/live,["subscribe","B2"]`, false},
				{"<", 0.5, `42/chat,["msg",{"text":"hi"}]`, false},
				{"<", 0.6, `42/chat,["msg",{"text":"ho"}]`, false},
			}, quotes(0.2, 5, []string{"A1", "B2"}, func(s string, k int) string {
				return fmt.Sprintf(`42/live,["quote",{"s":"%s","p":%d}]`, s, k)
			})...)...),
			want: want{framing: "socketio", subscribe: []string{`["subscribe","{symbol}"]`}, accept: `/0 = "quote"`, extract: "/1",
				url: "wss://live.example.com/socket.io/?EIO=4&transport=websocket"},
		},
		{
			// Nothing the page sent shows the symbol: exit 2 asking for -symbol.
			name: "single subscribe without a clue",
			cap: synth("wss://feed.example.com/ws", append([]frameSpec{
				{">", 0, `{"op":"sub","topic":"all"}`, false},
			}, quotes(0.2, 5, []string{"x"}, func(s string, k int) string { return fmt.Sprintf(`{"v":%d}`, k) })...)...),
			errMsg: "name it with -symbol",
		},
		{
			// Nothing sent at all.
			name:   "no frame sent",
			cap:    synth("wss://feed.example.com/ws/btcusdt@trade", quotes(0.2, 5, []string{"x"}, func(s string, k int) string { return fmt.Sprintf(`{"v":%d}`, k) })...),
			errMsg: "pushes without a subscribe",
		},
		{
			// ... unless -symbol names the symbol in the URL.
			name: "symbol in the URL",
			cap:  synth("wss://feed.example.com/ws/btcusdt@trade", quotes(0.2, 5, []string{"x"}, func(s string, k int) string { return fmt.Sprintf(`{"v":%d}`, k) })...),
			opts: Options{Symbols: []string{"BTCUSDT"}},
			want: want{url: "wss://feed.example.com/ws/{symbol_lower}@trade", symbols: []string{"btcusdt"}},
		},
		{
			// A client ping with a steady rhythm, gzip quotes.
			name: "client ping and gzip",
			cap: synth("wss://feed.example.com/ws", append(binary(quotes(0.2, 20, []string{"AA1", "BB2"}, func(s string, k int) string {
				return fmt.Sprintf(`{"ch":"%s","tick":{"p":%d}}`, s, k)
			})), frameSpec{">", 0, `{"sub":"AA1"}`, false}, frameSpec{">", 0.01, `{"sub":"BB2"}`, false},
				frameSpec{">", 1, `{"op":"ping"}`, false}, frameSpec{"<", 1.02, `{"op":"pong"}`, true},
				frameSpec{">", 2.1, `{"op":"ping"}`, false}, frameSpec{"<", 2.12, `{"op":"pong"}`, true},
				frameSpec{">", 3, `{"op":"ping"}`, false}, frameSpec{"<", 3.02, `{"op":"pong"}`, true},
			)...),
			want: want{appPing: `{"op":"ping"}`, interval: time.Second, heartbeat: `/op = "pong"`, decompress: "auto", accept: "/tick"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sortFrames(tc.cap)
			res, err := Infer(tc.cap, tc.opts)
			if tc.errMsg != "" {
				if !errors.Is(err, ErrCannotRelay) || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("err %v, want %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkUpstream(t, res, tc.want)
			if tc.name == "socket.io namespace" {
				u := res.Upstream
				if u.Namespace != "/live" || u.NamespaceAuth != "" || !strings.Contains(strings.Join(u.Comments["namespace"], " "), "left out: namespace_auth") {
					t.Errorf("namespace %q auth %q comments %q", u.Namespace, u.NamespaceAuth, u.Comments["namespace"])
				}
				kept, err := Infer(tc.cap, Options{KeepSecrets: true})
				if err != nil || kept.Upstream.NamespaceAuth != `{"token":"abcdEFGH1234ijklMNOP5678"}` {
					t.Errorf("kept: %v %q", err, kept.Upstream.NamespaceAuth)
				}
			}
		})
	}
}

// binary makes frames gzipped binary frames.
func binary(fs []frameSpec) []frameSpec {
	for i := range fs {
		fs[i].bin = true
	}
	return fs
}

func sortFrames(c *Capture) {
	for i := range c.Sessions {
		slices.SortStableFunc(c.Sessions[i].Frames, func(a, b Frame) int { return a.At.Compare(b.At) })
	}
}

func TestVaryingPart(t *testing.T) {
	for _, tc := range []struct {
		vals           []string
		prefix, suffix string
		ok             bool
	}{
		{[]string{"QuoteBin5m:14", "QuoteBin5m:15"}, "QuoteBin5m:", "", true},
		{[]string{"btcusdt@trade", "ethusdt@trade"}, "", "@trade", true},
		{[]string{"market.btcusdt.ticker", "market.ethusdt.ticker"}, "market.", ".ticker", true},
		{[]string{"BTC-USDT", "ETH-USDT"}, "", "", true},
		{[]string{"tBTCUSD", "tETHUSD"}, "", "", true},
		{[]string{"ticker.BTC-PERPETUAL.100ms", "ticker.ETH-PERPETUAL.100ms"}, "ticker.", ".100ms", true},
		{[]string{"XBT/USD", "ETH/USD"}, "", "", true},
		{[]string{"/market/btc/ticker", "/market/eth/ticker"}, "/market/", "/ticker", true},
		{[]string{"same", "same"}, "", "", false},
	} {
		p, s, ok := varyingPart(tc.vals)
		if p != tc.prefix || s != tc.suffix || ok != tc.ok {
			t.Errorf("varyingPart(%q) = %q, %q, %v", tc.vals, p, s, ok)
		}
	}
}

func TestSecretsDetection(t *testing.T) {
	for name, want := range map[string]bool{"token": true, "access_token": true, "X-Api-Key": true, "sessionToken": true,
		"sign": true, "Authorization": true, "instId": false, "channel": false, "signal": false, "key": false, "symbol": false} {
		if secretName(name) != want {
			t.Errorf("secretName(%q) = %v", name, !want)
		}
	}
	for v, want := range map[string]bool{"Zk8sJ3nQ5vX2mL9pR4tW7yB1": true, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl": true,
		"9c1e5a77b2d04f0e8a6b3c21d9f47e10": true, "market.btcusdt.ticker": false, "QuoteBin5m:14": false, "BTC-USDT-SWAP": false,
		"ticker.BTC-PERPETUAL.100ms": false} {
		if tokenLike(v) != want {
			t.Errorf("tokenLike(%q) = %v", v, !want)
		}
	}
	red, changed := redactDoc([]byte(`{"op":"login","args":[{"apiKey":"ak-1","sign":"c2ln","n":5}],"token":"Zk8sJ3nQ5vX2mL9pR4tW7yB1"}`))
	if !changed || !json.Valid(red) || bytes.Contains(red, []byte("ak-1")) || bytes.Contains(red, []byte("Zk8s")) || !bytes.Contains(red, []byte(`"n":5`)) {
		t.Fatalf("redactDoc: %s", red)
	}
}
