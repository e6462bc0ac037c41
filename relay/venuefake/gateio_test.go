package venuefake

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newGateTest(t *testing.T, cfg GateConfig) (*Gate, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	g := NewGate(cfg)
	return g, serve(t, g) + "/ws/v4/"
}

func gateSub(channel, event string, pairs ...string) string {
	return fmt.Sprintf(`{"time":%d,"channel":%q,"event":%q,"payload":%s}`, time.Now().Unix(), channel, event, marshal(pairs))
}

// result returns /result of an update (the preset's extract).
func gateResult(t *testing.T, b []byte) json.RawMessage {
	t.Helper()
	var m struct {
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(b, &m) != nil || m.Result == nil {
		t.Fatalf("no result: %s", b)
	}
	return m.Result
}

func TestGateSubscribeAckAndCounter(t *testing.T) {
	ctx := testCtx(t)
	g, u := newGateTest(t, GateConfig{})
	c := dial(t, ctx, u)
	send(t, ctx, c, gateSub("spot.tickers", "subscribe", "BTC_USDT"))
	f, _ := read(ctx, c)
	if !regexp.MustCompile(`^\{"time":\d{10},"time_ms":\d{13},"conn_id":"[0-9a-f]{16}","trace_id":"[0-9a-f]{32}","channel":"spot\.tickers","event":"subscribe","payload":\["BTC_USDT"\],"result":\{"status":"success"\}\}$`).Match(f.data) {
		t.Fatalf("ack %s", f.data)
	}
	f, _ = read(ctx, c)
	if !regexp.MustCompile(`^\{"time":\d{10},"time_ms":\d{13},"channel":"spot\.tickers","event":"update","result":\{"currency_pair":"BTC_USDT","last":"[0-9.]+","lowest_ask":"[0-9.]+","highest_bid":"[0-9.]+","change_percentage":"-?[0-9.]+","base_volume":"\d+","quote_volume":"[0-9.]+","high_24h":"[0-9.]+","low_24h":"[0-9.]+"\}\}$`).Match(f.data) {
		t.Fatalf("ticker %s", f.data)
	}
	if n, ok := g.Seq(gateResult(t, f.data)); !ok || n == 0 {
		t.Fatalf("Seq(/result) %d %v", n, ok)
	}
	seqRun(t, ctx, c, 20, g.Seq)
	// Two pairs in one payload get one ack, with an id echoed.
	send(t, ctx, c, `{"time":1,"id":77,"channel":"spot.book_ticker","event":"subscribe","payload":["ETH_USDT", "SOL_USDT"]}`)
	readUntil(t, ctx, c, 1000, has(`"id":77,`, `"channel":"spot.book_ticker","event":"subscribe","payload":["ETH_USDT","SOL_USDT"],"result":{"status":"success"}}`))
	bbo := readUntil(t, ctx, c, 1000, has(`"channel":"spot.book_ticker"`, `"s":"SOL_USDT"`))
	if !regexp.MustCompile(`"result":\{"t":\d{13},"u":\d+,"s":"SOL_USDT","b":"[0-9.]+","B":"[0-9.]+","a":"[0-9.]+","A":"[0-9.]+"\}\}$`).Match(bbo) {
		t.Fatalf("book_ticker %s", bbo)
	}
	send(t, ctx, c, gateSub("spot.trades", "subscribe", "ETH_USDT"))
	tr := readUntil(t, ctx, c, 1000, has(`"channel":"spot.trades","event":"update"`))
	if !regexp.MustCompile(`"result":\{"id":\d+,"create_time":\d{10},"create_time_ms":"\d{13}\.\d{3}","side":"(buy|sell)","currency_pair":"ETH_USDT","amount":"[0-9.]+","price":"[0-9.]+"\}\}$`).Match(tr) {
		t.Fatalf("trade %s", tr)
	}
	seqRun(t, ctx, c, 10, func(b []byte) (uint64, bool) {
		if !has(`"channel":"spot.trades"`, `"event":"update"`)(b) {
			return 0, false
		}
		return g.Seq(gateResult(t, b))
	})
	send(t, ctx, c, gateSub("spot.tickers", "unsubscribe", "BTC_USDT"))
	readUntil(t, ctx, c, 1000, has(`"channel":"spot.tickers","event":"unsubscribe","payload":["BTC_USDT"],"result":{"status":"success"}}`))
	if g.Subscribers(ChannelTicker, "BTC_USDT") != 0 || g.Subscribers(ChannelBBO, "ETH_USDT") != 1 {
		t.Fatal("subscriptions after unsubscribe")
	}
}

func TestGateErrorsAndPing(t *testing.T) {
	ctx := testCtx(t)
	g, u := newGateTest(t, GateConfig{Config: Config{PushInterval: -1}})
	c := dial(t, ctx, u)
	for _, tc := range []struct{ in, want string }{
		{gateSub("spot.tickers", "subscribe", "GIBBERISH_USD"),
			`"channel":"spot\.tickers","event":"subscribe","payload":\["GIBBERISH_USD"\],"error":\{"code":2,"message":"unknown currency pair GIBBERISH_USD"\},"result":null\}$`},
		{gateSub("spot.trades", "subscribe", "BTC_USDT", "btc_usdt"), `"error":\{"code":2,"message":"unknown currency pair btc_usdt"\}`},
		{gateSub("spot.nope", "subscribe", "BTC_USDT"), `"error":\{"code":2,"message":"Unknown channel spot\.nope"\},"result":null\}$`},
		{`{"time":1,"channel":"spot.tickers","event":"subscribe"}`, `"error":\{"code":2,"message":"invalid argument"\}`},
		{gateSub("spot.tickers", "sub", "BTC_USDT"), `"error":\{"code":2,"message":"Unknown event sub"\}`},
		{`not json`, `^\{"time":\d+,"time_ms":\d+,"conn_id":"[0-9a-f]{16}","trace_id":"[0-9a-f]{32}","channel":"","event":"","error":\{"code":1,"message":"request message need json scheme"\},"result":null\}$`},
		{`{"time":1,"channel":"spot.ping"}`, `^\{"time":\d{10},"time_ms":\d{13},"conn_id":"[0-9a-f]{16}","channel":"spot\.pong","event":"","result":null\}$`},
		{`{"time":1,"id":5,"channel":"spot.ping"}`, `^\{"time":\d{10},"time_ms":\d{13},"id":5,"conn_id":"[0-9a-f]{16}","channel":"spot\.pong"`},
		// Channels that exist but are not modelled are acknowledged.
		{`{"time":1,"channel":"spot.order_book","event":"subscribe","payload":["BTC_USDT","5","100ms"]}`, `"payload":\["BTC_USDT","5","100ms"\],"result":\{"status":"success"\}\}$`},
	} {
		send(t, ctx, c, tc.in)
		f, err := read(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(tc.want).Match(f.data) {
			t.Errorf("%s\n got %s\nwant %s", tc.in, f.data, tc.want)
		}
	}
	if g.Subscribers(ChannelTrades, "BTC_USDT") != 0 {
		t.Fatal("a refused request subscribed")
	}
}

// TestGateSilence: an unsubscribed socket whose client sends nothing is
// cut after Silence without a close frame; app pings, WebSocket pings or
// a subscription keep one open.
func TestGateSilence(t *testing.T) {
	ctx := testCtx(t)
	quiet := 500 * time.Millisecond
	g, u := newGateTest(t, GateConfig{Silence: quiet, Config: Config{PushInterval: -1}})
	silent := dial(t, ctx, u)
	app := dial(t, ctx, u)
	proto := dial(t, ctx, u)
	sub := dial(t, ctx, u)
	send(t, ctx, sub, gateSub("spot.tickers", "subscribe", "BTC_USDT"))
	readUntil(t, ctx, sub, 10, has(`"status":"success"`))
	// proto's reader runs so that its pings complete.
	proto.CloseRead(ctx)
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				errc <- nil
				return
			case <-time.After(quiet / 10):
			}
			if err := app.Write(ctx, websocket.MessageText, []byte(`{"channel":"spot.ping"}`)); err != nil {
				errc <- err
				return
			}
			if f, err := read(ctx, app); err != nil || !strings.Contains(string(f.data), "spot.pong") {
				errc <- fmt.Errorf("%s %v", f.data, err)
				return
			}
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := proto.Ping(pctx)
			cancel()
			if err != nil {
				errc <- fmt.Errorf("protocol ping: %w", err)
				return
			}
		}
	}()
	took, err := closedWithin(t, silent, 5*time.Second)
	if took < quiet-50*time.Millisecond || isClose(err) {
		t.Fatalf("silent socket cut after %v: %v", took, err)
	}
	time.Sleep(quiet)
	close(stop)
	if err := <-errc; err != nil {
		t.Fatalf("pinging sockets: %v (closes %q)", err, g.Closes())
	}
	if cl := g.Closes(); len(cl) != 1 {
		t.Fatalf("closes %q", cl)
	}
}

func TestGateHandshakeLimitAndCap(t *testing.T) {
	ctx := testCtx(t)
	g := NewGate(GateConfig{})
	if l := g.limiter.(*windowLimiter); l.n != 20 || l.w != time.Second || g.maxConns != 100 || g.silence != 30*time.Second {
		t.Fatalf("defaults %+v %d %v", l, g.maxConns, g.silence)
	}
	g.Close()
	g, u := newGateTest(t, GateConfig{Config: Config{HandshakeLimit: 2, HandshakeWindow: time.Hour, MaxConns: -1}})
	dialStatus(t, ctx, u)
	dialStatus(t, ctx, u)
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || g.Refused429() != 1 {
		t.Fatalf("past the rate: %d", st)
	}
	g, u = newGateTest(t, GateConfig{Config: Config{MaxConns: 2}})
	first := dial(t, ctx, u)
	dial(t, ctx, u)
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || g.Refused429() != 1 {
		t.Fatalf("past the cap: %d", st)
	}
	first.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for g.Open() > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := dialStatus(t, ctx, u); st != http.StatusSwitchingProtocols {
		t.Fatalf("after a close: %d", st)
	}
}

func TestGateAnnounceIsAPlainClose(t *testing.T) {
	ctx := testCtx(t)
	g, u := newGateTest(t, GateConfig{Config: Config{AnnounceGrace: 50 * time.Millisecond, PushInterval: -1}})
	c := dial(t, ctx, u)
	g.Announce()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := c.Read(rctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after Announce: %v", err)
	}
}
