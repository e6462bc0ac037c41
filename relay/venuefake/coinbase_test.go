package venuefake

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newCoinbaseTest(t *testing.T, cfg CoinbaseConfig) (*Coinbase, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	cb := NewCoinbase(cfg)
	return cb, serve(t, cb)
}

func TestCoinbaseSubscribeHeartbeatAndCounter(t *testing.T) {
	ctx := testCtx(t)
	cb, u := newCoinbaseTest(t, CoinbaseConfig{HeartbeatPeriod: 20 * time.Millisecond})
	c := dial(t, ctx, u)
	send(t, ctx, c, `{"type":"subscribe","product_ids":["BTC-USD"],"channels":["ticker","heartbeat"]}`)
	f, _ := read(ctx, c)
	if string(f.data) != `{"type":"subscriptions","channels":[{"name":"ticker","product_ids":["BTC-USD"],"account_ids":null},{"name":"heartbeat","product_ids":["BTC-USD"],"account_ids":null}]}` {
		t.Fatalf("ack %s", f.data)
	}
	tick := readUntil(t, ctx, c, 100, has(`"type":"ticker"`))
	m := obj(t, tick)
	for _, k := range []string{"sequence", "product_id", "price", "open_24h", "volume_24h", "low_24h", "high_24h", "volume_30d", "best_bid", "best_bid_size", "best_ask", "best_ask_size", "side", "time", "trade_id", "last_size"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("ticker lacks %s: %s", k, tick)
		}
	}
	hb := readUntil(t, ctx, c, 1000, has(`"type":"heartbeat"`))
	if m := obj(t, hb); m["product_id"] != "BTC-USD" || m["sequence"] == nil || m["last_trade_id"] == nil || m["time"] == nil {
		t.Fatalf("heartbeat %s", hb)
	}
	seqRun(t, ctx, c, 20, cb.Seq)
	// Per-channel product lists; unsubscribe answers with what is left.
	send(t, ctx, c, `{"type":"subscribe","channels":[{"name":"matches","product_ids":["ETH-USD"]}]}`)
	readUntil(t, ctx, c, 1000, has(`{"name":"matches","product_ids":["ETH-USD"],"account_ids":null}`))
	readUntil(t, ctx, c, 1000, has(`"type":"match"`, `"product_id":"ETH-USD"`))
	send(t, ctx, c, `{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["ticker","heartbeat"]}`)
	readUntil(t, ctx, c, 1000, has(`{"type":"subscriptions","channels":[{"name":"matches","product_ids":["ETH-USD"],"account_ids":null}]}`))
	if cb.Subscribers(ChannelTicker, "BTC-USD") != 0 {
		t.Fatal("still subscribed")
	}
}

func TestCoinbaseErrors(t *testing.T) {
	ctx := testCtx(t)
	cb, u := newCoinbaseTest(t, CoinbaseConfig{})
	c := dial(t, ctx, u)
	for _, tc := range []struct{ in, want string }{
		{`{"type":"subscribe","product_ids":["BTC-USD"]}`, `{"type":"error","message":"Failed to subscribe","reason":"No channels provided"}`},
		{`{"type":"subscribe","product_ids":["LMR-USD"],"channels":["ticker"]}`, `{"type":"error","message":"Failed to subscribe","reason":"LMR-USD is not a valid product"}`},
		{`{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2"]}`, `"reason":"level2 now requires authentication"`},
		{`{"type":"subscribe","channels":["ticker"]}`, `"reason":" is not a valid product"`},
		{`{"type":"subscribe","product_ids":["BTC-USD"],"channels":["tickers"]}`, `"reason":"tickers is not a valid channel"`},
		{`{"type":"sub"}`, `{"type":"error","message":"Failed to parse message"`},
		{`hello`, `{"type":"error"`},
	} {
		send(t, ctx, c, tc.in)
		f, err := read(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(f.data), tc.want) {
			t.Errorf("%s\n got %s\nwant %s", tc.in, f.data, tc.want)
		}
	}
	// The valid products of a message with a bad one are still subscribed.
	send(t, ctx, c, `{"type":"subscribe","product_ids":["ETH-USD","NOPE-USD"],"channels":["ticker"]}`)
	readUntil(t, ctx, c, 10, has(`"reason":"NOPE-USD is not a valid product"`))
	readUntil(t, ctx, c, 10, has(`"type":"subscriptions"`, `"ETH-USD"`))
	if cb.Subscribers(ChannelTicker, "ETH-USD") != 1 {
		t.Fatal("valid product not subscribed")
	}
}

// TestCoinbaseSubscribeDeadline: no subscribe within SubscribeWithin
// closes; a subscribed connection stays.
func TestCoinbaseSubscribeDeadline(t *testing.T) {
	ctx := testCtx(t)
	within := 200 * time.Millisecond
	_, u := newCoinbaseTest(t, CoinbaseConfig{SubscribeWithin: within})
	lazy := dial(t, ctx, u)
	quick := dial(t, ctx, u)
	send(t, ctx, quick, `{"type":"subscribe","product_ids":["BTC-USD"],"channels":["heartbeat"]}`)
	took, err := closedWithin(t, lazy, 5*time.Second)
	if took < within-50*time.Millisecond || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("closed after %v: %v", took, err)
	}
	time.Sleep(within)
	send(t, ctx, quick, `{"type":"subscribe","product_ids":["BTC-USD"],"channels":["ticker"]}`)
	readUntil(t, ctx, quick, 1000, has(`"type":"ticker"`))
}

func TestCoinbaseHandshakeBurst(t *testing.T) {
	ctx := testCtx(t)
	// TimeScale 10: 8 per 10 s refill, so a slow machine cannot refill
	// the bucket during the test.
	cb, u := newCoinbaseTest(t, CoinbaseConfig{Config: Config{TimeScale: 10}})
	if _, ok := cb.limiter.(*bucketLimiter); !ok || cb.maxConns != 0 {
		t.Fatalf("default limiter %T cap %d", cb.limiter, cb.maxConns)
	}
	// 20 at once pass (the burst), then the bucket is empty.
	for i := range 20 {
		if st := dialStatus(t, ctx, u); st != http.StatusSwitchingProtocols {
			t.Fatalf("handshake %d of the burst: %d", i, st)
		}
	}
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || cb.Refused429() != 1 {
		t.Fatalf("past the burst: %d", st)
	}
}
