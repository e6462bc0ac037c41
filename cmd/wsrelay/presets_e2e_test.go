package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/presets"
	"github.com/wsrelay/wsrelay/relay/relaytest"
	"github.com/wsrelay/wsrelay/relay/venuefake"
)

// presetCase runs one preset through the real path — the config file with
// preset: and the normal override keys, run serve, upstream, broker, REST
// and SSE — against the strict fake of its venue, at a fraction of the
// venue's timings.
type presetCase struct {
	preset string
	// fake builds the venue from the shared settings (scale, a handshake
	// budget equal to the dial_rate the test gives the preset, listed).
	fake func(venuefake.Config) venuefake.Fake
	// listed are the instruments the venue lists, in its spelling.
	listed []string
	// symbols are relayed (NAME or NAME=REF); the venue lists them.
	symbols []string
	// unknown is a symbol the venue does not list, and refusal a part of
	// the venue's answer; "" refusal: the venue accepts it silently, so it
	// must become stale instead.
	unknown, refusal string
	// announce: the venue announces disconnects (Announce).
	announce bool
	// keepalive is how long to watch the connections for the venue's
	// keepalive rules (several of its scaled deadlines).
	keepalive time.Duration
	// extra config lines (timings shortened through the normal keys).
	extra string
	// endpoint is the config line that points the preset at the fake;
	// default url: the fake's WebSocket URL.
	endpoint func(f venuefake.Fake, base string) string
}

func (tc presetCase) endpointLine(f venuefake.Fake, base string) string {
	if tc.endpoint != nil {
		return tc.endpoint(f, base)
	}
	return fmt.Sprintf("    url: %q\n", f.WSURL(base))
}

const presetScale = 0.02

func presetCases() []presetCase {
	return []presetCase{
		{
			preset: "binance",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewBinance(venuefake.BinanceConfig{Config: c}) // ping every 0.4 s, pong within 1.2 s
			},
			listed:  []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"},
			symbols: []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"}, unknown: "FOOBARUSDT", refusal: "",
			announce: true, keepalive: 3 * time.Second,
		},
		{
			preset: "okx",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewOKX(venuefake.OKXConfig{Config: c}) // 30 s idle cut scaled to 0.6 s
			},
			listed:  []string{"BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT"},
			symbols: []string{"BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT"}, unknown: "NMR-USDT", refusal: "doesn't exist",
			announce: true, keepalive: 2 * time.Second, extra: "    ping_interval: 200ms\n",
		},
		{
			preset: "bybit",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewBybit(venuefake.BybitConfig{Config: c, Idle: 600 * time.Millisecond})
			},
			listed:  []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"},
			symbols: []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}, unknown: "FOOUSDT", refusal: "Invalid symbol",
			keepalive: 2 * time.Second, extra: "    ping_interval: 200ms\n",
		},
		{
			preset: "coinbase",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewCoinbase(venuefake.CoinbaseConfig{Config: c}) // subscribe within 0.1 s
			},
			listed:  []string{"BTC-USD", "ETH-USD", "SOL-USD", "LTC-USD"},
			symbols: []string{"BTC-USD", "ETH-USD", "SOL-USD", "LTC-USD"}, unknown: "FOO-USD", refusal: "is not a valid product",
			keepalive: 2 * time.Second,
		},
		{
			preset: "kraken",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewKraken(venuefake.KrakenConfig{Config: c}) // idle cut after 1.2 s
			},
			listed:  []string{"BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD"},
			symbols: []string{"BTC-USD=BTC/USD", "ETH-USD=ETH/USD", "SOL-USD=SOL/USD", "XRP-USD=XRP/USD"}, unknown: "XBT-USD=XBT/USD", refusal: "Currency pair not supported",
			keepalive: 3 * time.Second,
		},
		{
			preset: "htx",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewHTX(venuefake.HTXConfig{Config: c, PingPeriod: 250 * time.Millisecond}) // two missed pings close
			},
			listed:  []string{"btcusdt", "ethusdt", "solusdt", "xrpusdt"},
			symbols: []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}, unknown: "LMRUSDT", refusal: "invalid symbol lmrusdt",
			keepalive: 2 * time.Second,
		},
		{
			preset: "bitfinex",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewBitfinex(venuefake.BitfinexConfig{Config: c}) // [id,"hb"] after 0.3 s idle
			},
			listed:  []string{"tBTCUSD", "tETHUSD", "tSOLUSD", "tXMRBTC"},
			symbols: []string{"tBTCUSD", "tETHUSD", "tSOLUSD", "tXMRBTC"}, unknown: "tFOOBAR", refusal: "symbol: invalid",
			announce: true, keepalive: 2 * time.Second,
		},
		{
			// Eleven instruments share one connection (symbols_per_connection
			// 50): twelve subscribes, past the venue's burst of ten, so they
			// must be paced (subscribe_rate, at the venue's scaled window).
			preset: "deribit",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewDeribit(venuefake.DeribitConfig{Config: c}) // test_request every 0.6 s
			},
			listed: []string{"BTC-PERPETUAL", "ETH-PERPETUAL", "SOL_USDC-PERPETUAL", "XRP_USDC-PERPETUAL", "BTC-27MAR26", "ETH-27MAR26",
				"BTC-26JUN26", "ETH-26JUN26", "BTC_USDC-PERPETUAL", "ETH_USDC-PERPETUAL", "ADA_USDC-PERPETUAL"},
			symbols: []string{"BTC-PERPETUAL", "ETH-PERPETUAL", "SOL_USDC-PERPETUAL", "XRP_USDC-PERPETUAL", "BTC-27MAR26", "ETH-27MAR26",
				"BTC-26JUN26", "ETH-26JUN26", "BTC_USDC-PERPETUAL", "ETH_USDC-PERPETUAL", "ADA_USDC-PERPETUAL"},
			unknown: "FOO-PERPETUAL", refusal: `"result":[]`,
			keepalive: 2 * time.Second, extra: "    subscribe_rate: 10/100ms\n",
		},
		{
			preset: "gateio",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewGate(venuefake.GateConfig{Config: c}) // a silent client is cut after 0.6 s
			},
			listed:  []string{"BTC_USDT", "ETH_USDT", "SOL_USDT", "GT_USDT"},
			symbols: []string{"BTC_USDT", "ETH_USDT", "SOL_USDT", "GT_USDT"}, unknown: "FOO_USDT", refusal: "unknown currency pair FOO_USDT",
			keepalive: 2 * time.Second, extra: "    ping_interval: 200ms\n",
		},
		{
			preset: "kucoin",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewKuCoin(venuefake.KuCoinConfig{Config: c}) // pingInterval from the token call, scaled
			},
			listed:  []string{"BTC-USDT", "ETH-USDT", "SOL-USDT", "KCS-USDT"},
			symbols: []string{"BTC-USDT", "ETH-USDT", "SOL-USDT", "KCS-USDT"}, unknown: "FOO-USDT", refusal: "is not found",
			keepalive: 2 * time.Second,
			endpoint: func(f venuefake.Fake, base string) string {
				return fmt.Sprintf("    resolve: {url: %q}\n", f.(*venuefake.KuCoin).BulletURL(base))
			},
		},
		{
			preset: "bitstamp",
			fake: func(c venuefake.Config) venuefake.Fake {
				return venuefake.NewBitstamp(venuefake.BitstampConfig{Config: c}) // WebSocket ping every 1.1 s
			},
			listed:  []string{"btcusd", "ethusd", "btceur", "xrpusd"},
			symbols: []string{"BTCUSD", "ETHUSD", "BTCEUR", "XRPUSD"}, unknown: "FOOUSD", refusal: "",
			announce: true, keepalive: 3 * time.Second,
		},
	}
}

// TestPresetsAgainstTheirVenues: every preset relays its venue's quotes
// over REST and SSE without losing one, keeps its connections through
// several of the venue's keepalive deadlines, never earns a 429 while its
// symbols start within the venue's handshake budget, reports a refused
// symbol as rejected with the venue's message, and hands over announced
// disconnects without a gap or a backoff.
func TestPresetsAgainstTheirVenues(t *testing.T) {
	for _, tc := range presetCases() {
		t.Run(tc.preset, func(t *testing.T) { runPresetCase(t, tc) })
	}
}

func runPresetCase(t *testing.T, tc presetCase) {
	const limit, window = 2, 400 * time.Millisecond // every venue's handshake budget, shrunk alike
	f := tc.fake(venuefake.Config{TimeScale: presetScale, PushInterval: 20 * time.Millisecond, Symbols: tc.listed,
		HandshakeLimit: limit, HandshakeWindow: window, AnnounceGrace: 600 * time.Millisecond})
	srv := httptest.NewServer(f)
	defer srv.Close()
	defer f.Close()
	var syms []string
	for _, s := range append(slices.Clone(tc.symbols), tc.unknown) {
		name, ref, ok := strings.Cut(s, "=")
		if ok {
			syms = append(syms, fmt.Sprintf("{name: %s, ref: %q}", name, ref))
		} else {
			syms = append(syms, name)
		}
	}
	cfg := fmt.Sprintf(`sse: {heartbeat: 1s}
upstreams:
  - name: %[1]s
    preset: %[1]s
%[2]s    symbols: [%[3]s]
    dial_rate: %[4]d/%[5]s
    stale_after: 1s
    backoff: {min: 50ms, max: 2s}
%[6]s`, tc.preset, tc.endpointLine(f, srv.URL), strings.Join(syms, ", "), limit, window, tc.extra)
	path := filepath.Join(t.TempDir(), "wsrelay.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := startRelay(t, ctx, "-config", path, "-log-level", "debug")
	defer func() {
		cancel()
		if err := <-p.done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	base := "http://" + p.addr
	names := make([]string, len(tc.symbols))
	for i, s := range tc.symbols {
		names[i], _, _ = strings.Cut(s, "=")
	}
	unknown, _, _ := strings.Cut(tc.unknown, "=")

	// REST: the latest quote of every symbol, its venue counter readable.
	for _, s := range names {
		relaytest.Eventually(t, s+" over REST", func() bool {
			code, body := httpGet(t, base+"/v1/quotes/"+s)
			var q struct{ Data json.RawMessage }
			return code == 200 && json.Unmarshal(body, &q) == nil && seqOK(f, q.Data)
		})
	}
	if n := f.Refused429(); n != 0 {
		t.Fatalf("the venue answered %d handshakes with 429 at startup; it closed %q; relay log:\n%s", n, f.Closes(), p.logs.String())
	}

	// SSE: every quote of every symbol from here on, checked for gaps.
	stream := openStream(t, ctx, base+"/v1/stream?snapshot=false&symbols="+strings.Join(names, ","))
	relaytest.Eventually(t, "SSE quotes of every symbol", func() bool { return stream.symbolsSeen() == len(names) })
	if tc.announce {
		h := f.Handshakes()
		f.Announce()
		relaytest.Eventually(t, "new connections after the announcement", func() bool { return f.Handshakes() >= h+uint64(len(names)) })
	}
	time.Sleep(tc.keepalive) // several of the venue's (scaled) keepalive deadlines
	stream.stop()

	for _, s := range names {
		seqs := stream.seqs(f, s)
		if len(seqs) < 5 {
			t.Fatalf("%s: only %d quotes over SSE", s, len(seqs))
		}
		// Every number between the first and the last, in any order: a
		// handover publishes the old connection's late quotes after some
		// of the new one's.
		have := map[uint64]bool{}
		for _, n := range seqs {
			have[n] = true
		}
		for n := slices.Min(seqs); n <= slices.Max(seqs); n++ {
			if !have[n] {
				t.Fatalf("%s: quote %d lost over SSE (sequence %v); the venue closed %q; relay log:\n%s", s, n, seqs, f.Closes(), p.logs.String())
			}
		}
	}
	if states := stream.states(); slices.Contains(states, "backoff") {
		t.Fatalf("a symbol went through backoff: %v", states)
	}
	var list struct {
		Symbols []struct {
			Symbol, State, Preset, Channel string
			Reconnects                     int
			LastError                      string `json:"last_error"`
		}
	}
	_, body := httpGet(t, base+"/v1/symbols")
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	wantReconnects := 0
	if tc.announce {
		wantReconnects = 1
	}
	for _, s := range list.Symbols {
		if s.Preset != tc.preset || s.Channel != "ticker" {
			t.Errorf("%s: preset %q channel %q", s.Symbol, s.Preset, s.Channel)
		}
		if s.Symbol == unknown {
			continue
		}
		if s.State != "live" || s.Reconnects != wantReconnects {
			t.Errorf("%s: state %s, %d reconnects (want live, %d): the keepalive or the handover failed; the venue closed %q", s.Symbol, s.State, s.Reconnects, wantReconnects, f.Closes())
		}
	}
	relaytest.Eventually(t, unknown+" refused", func() bool {
		_, body := httpGet(t, base+"/v1/symbols")
		json.Unmarshal(body, &list)
		for _, s := range list.Symbols {
			if s.Symbol != unknown {
				continue
			}
			if tc.refusal == "" {
				return s.State == "stale" // the venue accepts it silently
			}
			return s.State == "rejected" && strings.Contains(s.LastError, tc.refusal)
		}
		return false
	})
	if n := f.Refused429(); n != 0 {
		t.Fatalf("the venue answered %d handshakes with 429", n)
	}
}

// seqOK reports whether the venue's counter can be read from data.
func seqOK(f venuefake.Fake, data json.RawMessage) bool {
	_, ok := f.Seq(data)
	return ok
}

// sseStream collects the quotes and status events of one SSE connection.
type sseStream struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	quotes map[string][]json.RawMessage
	status []string
}

func openStream(t *testing.T, ctx context.Context, url string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	s := &sseStream{cancel: cancel, done: make(chan struct{}), quotes: map[string][]json.RawMessage{}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %s", resp.Status)
	}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "data: "):
				var q struct {
					Symbol string
					State  string
					Data   json.RawMessage
				}
				if json.Unmarshal([]byte(line[6:]), &q) != nil {
					continue
				}
				s.mu.Lock()
				switch event {
				case "quote":
					s.quotes[q.Symbol] = append(s.quotes[q.Symbol], q.Data)
				case "status":
					s.status = append(s.status, q.State)
				}
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *sseStream) stop() {
	s.cancel()
	<-s.done
}

func (s *sseStream) symbolsSeen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.quotes)
}

func (s *sseStream) states() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.status)
}

// seqs returns the venue counters of sym's quotes in arrival order,
// without repeats (a quote both connections of a handover delivered).
func (s *sseStream) seqs(f venuefake.Fake, sym string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for _, d := range s.quotes[sym] {
		n, ok := f.Seq(d)
		if !ok {
			continue
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			continue
		}
		out = append(out, n)
	}
	return out
}

// TestPresetChannelsRelayWithTheirFields: every channel of every preset
// relays its venue's quotes, and the fields it names (last, bid, ask)
// point at values in the published data.
func TestPresetChannelsRelayWithTheirFields(t *testing.T) {
	for _, tc := range presetCases() {
		p, err := presets.Get(tc.preset)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range p.Channels() {
			t.Run(tc.preset+"/"+ch, func(t *testing.T) {
				f := tc.fake(venuefake.Config{TimeScale: presetScale, PushInterval: 20 * time.Millisecond, Symbols: tc.listed})
				srv := httptest.NewServer(f)
				defer srv.Close()
				defer f.Close()
				name, ref, hasRef := strings.Cut(tc.symbols[0], "=")
				sym := name
				if hasRef {
					sym = fmt.Sprintf("{name: %s, ref: %q}", name, ref)
				}
				path := filepath.Join(t.TempDir(), "wsrelay.yaml")
				cfg := fmt.Sprintf("upstreams:\n  - name: v\n    preset: %s\n    channel: %s\n%s    symbols: [%s]\n%s", tc.preset, ch, tc.endpointLine(f, srv.URL), sym, tc.extra)
				if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				rp := startRelay(t, ctx, "-config", path, "-log-level", "debug")
				defer func() {
					if t.Failed() {
						t.Logf("venue received %q closed %q\nrelay log:\n%s", f.Received(), f.Closes(), rp.logs.String())
					}
				}()
				defer func() { cancel(); <-rp.done }()
				var data json.RawMessage
				relaytest.Eventually(t, "a quote", func() bool {
					code, body := httpGet(t, "http://"+rp.addr+"/v1/quotes/"+name)
					var q struct{ Data json.RawMessage }
					if code != 200 || json.Unmarshal(body, &q) != nil || !seqOK(f, q.Data) {
						return false
					}
					data = q.Data
					return true
				})
				_, body := httpGet(t, "http://"+rp.addr+"/v1/symbols")
				var list struct {
					Symbols []struct {
						Channel string
						Fields  map[string]string
					}
				}
				if err := json.Unmarshal(body, &list); err != nil || len(list.Symbols) != 1 {
					t.Fatalf("%s: %v", body, err)
				}
				s := list.Symbols[0]
				if s.Channel != ch || len(s.Fields) == 0 {
					t.Fatalf("channel %q fields %v", s.Channel, s.Fields)
				}
				for k, ptr := range s.Fields {
					if v, ok := jsonAt(data, ptr); !ok || v == "null" {
						t.Errorf("fields.%s %s is not in the data %s", k, ptr, data)
					}
				}
			})
		}
	}
}

// jsonAt returns the JSON at an RFC 6901 pointer in doc.
func jsonAt(doc json.RawMessage, ptr string) (string, bool) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return "", false
	}
	for _, tok := range strings.Split(ptr, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[tok]; !ok {
				return "", false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return "", false
			}
			v = x[i]
		default:
			return "", false
		}
	}
	b, _ := json.Marshal(v)
	return string(b), true
}
