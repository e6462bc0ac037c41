package relay

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

const seedSub = simfeed.Subscribe
const seedUnsub = simfeed.Unsubscribe

type fixture struct {
	feed  *simfeed.Feed
	srv   *httptest.Server
	b     *Broker
	r     *Relay
	wsURL string
}

// newFixture starts a simulated feed and a relay subscribed to syms on it;
// edit tweaks the upstream config first. Everything stops at cleanup.
func newFixture(t *testing.T, feedCfg simfeed.Config, edit func(*UpstreamConfig), syms ...Symbol) *fixture {
	t.Helper()
	f := &fixture{feed: simfeed.New(feedCfg)}
	f.srv = httptest.NewServer(f.feed)
	f.wsURL = "ws" + strings.TrimPrefix(f.srv.URL, "http")
	uc := UpstreamConfig{
		Name: "sim", URL: f.wsURL, Subscribe: []string{seedSub}, Unsubscribe: []string{seedUnsub},
		Symbols: syms, Accept: []Matcher{Exists("/data")},
		PingInterval: time.Second, PingTimeout: time.Second,
		Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	}
	if edit != nil {
		edit(&uc)
	}
	var err error
	if f.b, err = NewBroker(BrokerConfig{}); err != nil {
		t.Fatal(err)
	}
	if f.r, err = New(Config{Upstreams: []UpstreamConfig{uc}}, f.b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.r.Close()
		f.b.Close()
		f.feed.Close()
		f.srv.Close()
	})
	return f
}

// eventually polls cond every 5 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) status(t *testing.T, sym string) SymbolStatus {
	t.Helper()
	st, ok := f.r.Status(sym)
	if !ok {
		t.Fatalf("no status for %s", sym)
	}
	return st
}

func (f *fixture) count(substr string) int {
	n := 0
	for _, m := range f.feed.Received() {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

func TestUpstreamSubscribeFrameAndHeaders(t *testing.T) {
	f := newFixture(t, simfeed.Config{Rate: 200}, func(u *UpstreamConfig) {
		u.Headers = map[string]string{"Origin": "https://www.example.com", "User-Agent": "wsrelay-test", "Cookie": "sid=secret"}
	}, Symbol{Name: "BTC-USDT", Ref: "BTC/USDT"})
	eventually(t, "a live quote", func() bool { return f.status(t, "BTC-USDT").State == StateLive })
	if got := f.feed.Received()[0]; got != `{"action":"subscribe","args":["QuoteBin5m:BTC/USDT"]}` {
		t.Fatalf("subscribe frame %s", got)
	}
	h := f.feed.Headers()
	if h.Get("Origin") != "https://www.example.com" || h.Get("User-Agent") != "wsrelay-test" || h.Get("Cookie") != "sid=secret" {
		t.Fatalf("handshake headers %v", h)
	}
	ev, err := f.b.Latest("BTC-USDT")
	if err != nil {
		t.Fatal(err)
	}
	var q struct {
		Symbol string
		Data   struct{ Group string }
	}
	json.Unmarshal(ev.JSON, &q)
	if q.Symbol != "BTC-USDT" || q.Data.Group != "QuoteBin5m:BTC/USDT" {
		t.Fatalf("quote %s", ev.JSON)
	}
	// Injection attempts are refused before anything reaches the upstream.
	before := len(f.feed.Received())
	for _, bad := range []string{`x"]}`, "a b", "../x", "x\n{", strings.Repeat("a", 65), ""} {
		if _, err := f.r.Add("sim", Symbol{Name: bad}); !errors.Is(err, ErrInvalidSymbol) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if after := len(f.feed.Received()); after != before || f.feed.Accepted() != 1 {
		t.Fatalf("something reached the upstream: %d frames, %d conns", after-before, f.feed.Accepted())
	}
}

// collectStatus records the status events of sym until the test ends.
func collectStatus(t *testing.T, b *Broker, sym string) func() []string {
	get, stop := watchStates(t, b, sym)
	t.Cleanup(stop)
	return func() []string {
		var out []string
		for _, s := range get() {
			out = append(out, s.State)
		}
		return out
	}
}

type stateAt struct {
	State string
	At    time.Time
}

// watchStates follows sym's status events; get returns them so far and
// stop ends the watch.
func watchStates(t *testing.T, b *Broker, sym string) (get func() []stateAt, stop func()) {
	s, err := b.Subscribe([]string{sym}, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out []stateAt
	done := make(chan struct{})
	go func() {
		defer close(done)
		var batch []*Event
		var err error
		for {
			if batch, err = s.Next(context.Background(), batch); err != nil {
				return
			}
			for _, ev := range batch {
				if ev.Kind == KindStatus {
					var st stateAt
					json.Unmarshal(ev.JSON, &st)
					mu.Lock()
					out = append(out, st)
					mu.Unlock()
				}
			}
		}
	}()
	return func() []stateAt {
			mu.Lock()
			defer mu.Unlock()
			return append([]stateAt(nil), out...)
		}, func() {
			s.Close()
			<-done
		}
}

func TestUpstreamDropReconnectResubscribe(t *testing.T) {
	f := newFixture(t, simfeed.Config{Rate: 200}, nil, Symbol{Name: "A"})
	eventually(t, "live", func() bool { return f.status(t, "A").State == StateLive })
	states := collectStatus(t, f.b, "A")
	sub, _ := f.b.Subscribe([]string{"A"}, SubscribeOptions{})
	defer sub.Close()
	for round := 1; round <= 3; round++ {
		f.feed.Drop("A")
		eventually(t, "reconnect", func() bool { return f.feed.Accepted() == int64(round+1) && f.status(t, "A").State == StateLive })
	}
	if n := f.count(`"subscribe"`); n != 4 {
		t.Fatalf("%d subscribe frames, want 4", n)
	}
	st := f.status(t, "A")
	if st.Reconnects != 3 || st.Drops != 3 || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
	got := states()
	for _, want := range []string{"backoff", "connecting", "live"} {
		if !slices.Contains(got, want) {
			t.Fatalf("status events %v lack %s", got, want)
		}
	}
	// seq has no hole across reconnects.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var last uint64
	var batch []*Event
	var err error
	for n := 0; n < 50; {
		if batch, err = sub.Next(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, ev := range batch {
			if ev.Kind != KindQuote {
				continue
			}
			if last != 0 && ev.Seq != last+1 {
				t.Fatalf("seq %d after %d", ev.Seq, last)
			}
			last = ev.Seq
			n++
		}
	}
}

func TestUpstreamStallPingTimeout(t *testing.T) {
	f := newFixture(t, simfeed.Config{Rate: 100}, func(u *UpstreamConfig) {
		u.PingInterval = 50 * time.Millisecond
		u.PingTimeout = 100 * time.Millisecond
	}, Symbol{Name: "A"})
	eventually(t, "live", func() bool { return f.status(t, "A").State == StateLive })
	f.feed.SetStalled(true)
	eventually(t, "ping timeout", func() bool { return strings.Contains(f.status(t, "A").LastError, "no pong") })
	f.feed.SetStalled(false)
	eventually(t, "live again", func() bool { return f.status(t, "A").State == StateLive && f.status(t, "A").Reconnects >= 1 })
}

func TestUpstreamStale(t *testing.T) {
	t.Run("mark only", func(t *testing.T) {
		f := newFixture(t, simfeed.Config{Rate: 100}, func(u *UpstreamConfig) { u.StaleAfter = 80 * time.Millisecond }, Symbol{Name: "A"})
		eventually(t, "live", func() bool { return f.status(t, "A").State == StateLive })
		f.feed.SetPaused(true)
		eventually(t, "stale", func() bool { return f.status(t, "A").State == StateStale })
		f.feed.SetPaused(false)
		eventually(t, "live again", func() bool { return f.status(t, "A").State == StateLive })
		if f.feed.Accepted() != 1 {
			t.Fatalf("redialled without reconnect_on_stale")
		}
	})
	t.Run("reconnect", func(t *testing.T) {
		f := newFixture(t, simfeed.Config{Rate: 100}, func(u *UpstreamConfig) {
			u.StaleAfter = 80 * time.Millisecond
			u.ReconnectOnStale = true
		}, Symbol{Name: "A"})
		eventually(t, "live", func() bool { return f.status(t, "A").State == StateLive })
		f.feed.SetPaused(true)
		eventually(t, "redial", func() bool { return f.feed.Accepted() >= 2 })
		f.feed.SetPaused(false)
		eventually(t, "live again", func() bool { return f.status(t, "A").State == StateLive })
	})
}

func TestUpstreamBadFrames(t *testing.T) {
	f := newFixture(t, simfeed.Config{Rate: -1}, func(u *UpstreamConfig) { u.ReadLimit = 4096 }, Symbol{Name: "A"})
	eventually(t, "subscribed", func() bool { return f.feed.Subscribed("A") == 1 })
	f.feed.Push("A")
	eventually(t, "first quote", func() bool { return f.status(t, "A").Quotes == 1 })

	// Garbage of every kind is counted, never published, never fatal.
	for _, g := range []struct {
		typ websocket.MessageType
		p   []byte
	}{
		{websocket.MessageText, []byte("not json")},
		{websocket.MessageText, []byte(`{"event":"heartbeat"}`)},
		{websocket.MessageBinary, []byte{0xde, 0xad, 0xbe, 0xef}},
		{websocket.MessageText, []byte(`{"data":`)},
		{websocket.MessageBinary, gz([]byte(strings.Repeat(" ", 64<<10)))}, // inflates past the cap
	} {
		f.feed.Send("A", g.typ, g.p)
	}
	eventually(t, "ignored frames", func() bool { return f.status(t, "A").Ignored == 6 }) // 5 + the subscribe ack
	if st := f.status(t, "A"); st.Quotes != 1 || f.feed.Accepted() != 1 {
		t.Fatalf("garbage changed things: %+v", st)
	}

	// Compressed quotes are inflated and published.
	for i, enc := range []func([]byte) []byte{gz, zl, deflate} {
		f.feed.Send("A", websocket.MessageBinary, enc([]byte(`{"data":{"n":`+string(rune('1'+i))+`}}`)))
	}
	eventually(t, "compressed quotes", func() bool { return f.status(t, "A").Quotes == 4 })
	ev, _ := f.b.Latest("A")
	if !strings.HasSuffix(string(ev.JSON), `"data":{"data":{"n":3}}}`) {
		t.Fatalf("latest %s", ev.JSON)
	}

	// An oversize frame closes the connection with 1009; it is not published.
	f.feed.Send("A", websocket.MessageText, []byte(`{"data":"`+strings.Repeat("x", 5000)+`"}`))
	eventually(t, "redial after oversize", func() bool { return f.feed.Accepted() == 2 && f.feed.Subscribed("A") == 1 })
	if st := f.status(t, "A"); st.Quotes != 4 || !strings.Contains(st.LastError, "read_limit") {
		t.Fatalf("after oversize: %+v", st)
	}
	if codes := f.feed.CloseCodes(); len(codes) == 0 || codes[0] != websocket.StatusMessageTooBig {
		t.Fatalf("close codes %v", codes)
	}
}

func TestUpstreamErrorFrameAndPolicyClose(t *testing.T) {
	f := newFixture(t, simfeed.Config{Rate: -1}, nil, Symbol{Name: "A"})
	eventually(t, "subscribed", func() bool { return f.feed.Subscribed("A") == 1 })
	// An error frame before any quote means the subscription failed: retry.
	f.feed.Send("A", websocket.MessageText, []byte(`{"event":"error","message":"no such channel"}`))
	eventually(t, "retry after error frame", func() bool { return f.feed.Accepted() == 2 && f.feed.Subscribed("A") == 1 })
	if st := f.status(t, "A"); !strings.Contains(st.LastError, "no such channel") {
		t.Fatalf("last error %q", st.LastError)
	}
	// A policy close (1008) is retried with backoff as well.
	f.feed.CloseWith("A", websocket.StatusPolicyViolation, "bad subscription")
	eventually(t, "retry after 1008", func() bool { return f.feed.Accepted() == 3 && f.feed.Subscribed("A") == 1 })
	if st := f.status(t, "A"); !strings.Contains(st.LastError, "1008") {
		t.Fatalf("last error %q", st.LastError)
	}
}

func TestUpstreamAppPings(t *testing.T) {
	f := newFixture(t, simfeed.Config{Rate: -1}, func(u *UpstreamConfig) {
		u.Pong = []PongRule{{Matcher: Exists("/ping"), Reply: `{"pong":{value}}`}}
		u.AppPing = "ping"
		u.PingInterval = 30 * time.Millisecond
	}, Symbol{Name: "A"})
	eventually(t, "subscribed", func() bool { return f.feed.Subscribed("A") == 1 })
	f.feed.Send("A", websocket.MessageBinary, gz([]byte(`{"ping":1492420473027}`)))
	eventually(t, "pong reply", func() bool { return f.count(`{"pong":1492420473027}`) == 1 })
	eventually(t, "app ping", func() bool { return f.count("ping") >= 3 })
	if _, err := f.b.Latest("A"); !errors.Is(err, ErrNoData) {
		t.Fatalf("a ping was published: %v", err)
	}
}

func TestUpstreamAddRemoveAndShutdown(t *testing.T) {
	f := newFixture(t, simfeed.Config{Rate: 100}, nil, Symbol{Name: "A"})
	created, err := f.r.Add("sim", Symbol{Name: "B"})
	if err != nil || !created {
		t.Fatalf("add: %v %v", created, err)
	}
	if created, _ := f.r.Add("sim", Symbol{Name: "B"}); created {
		t.Fatal("second add created")
	}
	if _, err := f.r.Add("nope", Symbol{Name: "C"}); !errors.Is(err, ErrUnknownUpstream) {
		t.Fatalf("unknown upstream: %v", err)
	}
	eventually(t, "B live", func() bool { return f.status(t, "B").State == StateLive })
	if err := f.r.Remove("B"); err != nil {
		t.Fatal(err)
	}
	if f.count(`{"action":"unsubscribe","args":["QuoteBin5m:B"]}`) != 1 {
		t.Fatalf("no unsubscribe frame: %v", f.feed.Received())
	}
	eventually(t, "B closed", func() bool { return slices.Contains(f.feed.CloseCodes(), websocket.StatusNormalClosure) })
	if f.b.Has("B") {
		t.Fatal("broker still has B")
	}
	if _, ok := f.r.Status("B"); ok {
		t.Fatal("relay still has B")
	}
	if err := f.r.Remove("B"); !errors.Is(err, ErrUnknownSymbol) {
		t.Fatalf("second remove: %v", err)
	}
	eventually(t, "A live", func() bool { return f.status(t, "A").State == StateLive })
	f.r.Close()
	f.r.Close()
	eventually(t, "A closed with 1001", func() bool { return slices.Contains(f.feed.CloseCodes(), websocket.StatusGoingAway) })
	if _, err := f.r.Add("sim", Symbol{Name: "C"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
}

func TestRelayConfigValidation(t *testing.T) {
	good := UpstreamConfig{Name: "x", URL: "wss://example.com/ws", Subscribe: []string{seedSub}, Symbols: []Symbol{{Name: "A"}}}
	cases := map[string]func(*UpstreamConfig){
		"url":           func(u *UpstreamConfig) { u.URL = "http://example.com" },
		"subscribe":     func(u *UpstreamConfig) { u.Subscribe = []string{`{"op":"sub"}`} },
		"unsubscribe":   func(u *UpstreamConfig) { u.Unsubscribe = []string{`{"op":"unsub"}`} },
		"symbols[1]":    func(u *UpstreamConfig) { u.Symbols = append(u.Symbols, Symbol{Name: "A"}) },
		"symbols[0]":    func(u *UpstreamConfig) { u.Symbols = []Symbol{{Name: "a b"}} },
		"accept":        func(u *UpstreamConfig) { u.Accept = []Matcher{Exists("data")} },
		"backoff":       func(u *UpstreamConfig) { u.Backoff = Backoff{Min: time.Second, Max: time.Millisecond} },
		"read_limit":    func(u *UpstreamConfig) { u.ReadLimit = 10 },
		"ping_interval": func(u *UpstreamConfig) { u.PingInterval = -1 },
		"headers":       func(u *UpstreamConfig) { u.Headers = map[string]string{"X": "a\r\nb"} },
		"name":          func(u *UpstreamConfig) { u.Name = "" },
		"pong.reply":    func(u *UpstreamConfig) { u.Pong = []PongRule{{Matcher: Exists("/ping")}} },
		"decompress":    func(u *UpstreamConfig) { u.Decompress = "zstd" },
	}
	b, _ := NewBroker(BrokerConfig{})
	defer b.Close()
	for key, edit := range cases {
		u := good
		edit(&u)
		_, err := New(Config{Upstreams: []UpstreamConfig{u}}, b)
		if err == nil || !strings.Contains(err.Error(), "upstreams[0]."+key) {
			t.Errorf("%s: err = %v", key, err)
		}
	}
	_, err := New(Config{Upstreams: []UpstreamConfig{good, {Name: "y", URL: "ws://h/", Subscribe: []string{seedSub}, Symbols: []Symbol{{Name: "A"}}}}}, b)
	if err == nil || !strings.Contains(err.Error(), "upstreams[1].symbols[0]") {
		t.Errorf("duplicate across upstreams: %v", err)
	}
}
