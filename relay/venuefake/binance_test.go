package venuefake

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newBinanceTest(t *testing.T, cfg BinanceConfig) (*Binance, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	b := NewBinance(cfg)
	return b, serve(t, b)
}

// seqRun reads n frames that seq can read and checks that their counters
// follow each other without a gap or a repeat; it returns the last.
func seqRun(t *testing.T, ctx context.Context, c *websocket.Conn, n int, seq func([]byte) (uint64, bool)) uint64 {
	t.Helper()
	var last uint64
	got := 0
	for range n * 20 {
		f, err := read(ctx, c)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		v, ok := seq(f.data)
		if !ok {
			continue
		}
		if got > 0 && v != last+1 {
			t.Fatalf("counter %d after %d: %s", v, last, f.data)
		}
		last = v
		got++
		if got == n {
			return last
		}
	}
	t.Fatalf("only %d of %d counted frames", got, n)
	return 0
}

func TestBinanceSubscribeAndCounter(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBinanceTest(t, BinanceConfig{})
	c := dial(t, ctx, u+"/ws")
	send(t, ctx, c, `{"method":"SUBSCRIBE","params":["btcusdt@ticker"],"id":1}`)
	if f, _ := read(ctx, c); string(f.data) != `{"result":null,"id":1}` {
		t.Fatalf("ack %s", f.data)
	}
	f, err := read(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	m := obj(t, f.data)
	for _, k := range []string{"e", "E", "s", "p", "P", "w", "x", "c", "Q", "b", "B", "a", "A", "o", "h", "l", "v", "q", "O", "C", "F", "L", "n"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("ticker lacks %q: %s", k, f.data)
		}
	}
	if m["e"] != "24hrTicker" || m["s"] != "BTCUSDT" {
		t.Fatalf("ticker %s", f.data)
	}
	last := seqRun(t, ctx, c, 20, b.Seq)
	if p := b.PushedOn(ChannelTicker, "BTCUSDT"); p < last {
		t.Fatalf("pushed %d < read %d", p, last)
	}
	// Unsubscribe is acknowledged the same way and stops the stream.
	send(t, ctx, c, `{"method":"UNSUBSCRIBE","params":["btcusdt@ticker"],"id":"a7"}`)
	readUntil(t, ctx, c, 1000, has(`{"result":null,"id":"a7"}`))
	if n := b.Subscribers(ChannelTicker, "BTCUSDT"); n != 0 {
		t.Fatalf("subscribers after unsubscribe: %d", n)
	}
	send(t, ctx, c, `{"method":"LIST_SUBSCRIPTIONS","id":3}`)
	readUntil(t, ctx, c, 1000, has(`{"result":[],"id":3}`))
}

func TestBinanceTradeAndBBOCombined(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBinanceTest(t, BinanceConfig{})
	c := dial(t, ctx, u+"/stream?streams=btcusdt@trade/ethusdt@bookTicker")
	trade := readUntil(t, ctx, c, 100, has(`"stream":"btcusdt@trade"`))
	if !strings.Contains(string(trade), `"e":"trade"`) {
		t.Fatalf("trade %s", trade)
	}
	seqRun(t, ctx, c, 10, func(p []byte) (uint64, bool) {
		if !strings.Contains(string(p), "ethusdt@bookTicker") {
			return 0, false
		}
		return b.Seq(p)
	})
	// Raw /ws/<stream>: subscribed at connect, payload unwrapped.
	r := dial(t, ctx, u+"/ws/solusdt@bookTicker")
	f, _ := read(ctx, r)
	if m := obj(t, f.data); m["s"] != "SOLUSDT" || m["u"] == nil {
		t.Fatalf("bookTicker %s", f.data)
	}
}

func TestBinanceWrongShapes(t *testing.T) {
	ctx := testCtx(t)
	_, u := newBinanceTest(t, BinanceConfig{MessageLimit: 100})
	c := dial(t, ctx, u+"/ws")
	for _, tc := range []struct{ in, want string }{
		{`{"params":["btcusdt@ticker"],"id":1}`, `{"error":{"code":2,"msg":"Invalid request: missing field ` + "`method`" + ` at line 1 column 36"},"id":null}`},
		{`{"method":"SUBSCRIBE","params":["btcusdt@ticker"],"id":`, `{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column`},
		{`{"method":"SUBSCRIBE","params":["btcusdt@ticker"],"id":1.5}`, `"msg":"Invalid request: request ID must be an unsigned integer"},"id":null}`},
		{`{"method":"SUBSCRIBE","params":["btcusdt@ticker"]}`, `"msg":"Invalid request: request ID must be an unsigned integer"`},
		{`{"method":"SUBSCRIBE","params":["btcusdt@nonsense"],"id":4}`, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":4}`},
		{`{"method":"SUBSCRIBE","params":"btcusdt@ticker","id":5}`, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":5}`},
		{`{"method":"subscribe","params":["btcusdt@ticker"],"id":6}`, "unknown variant `subscribe`, expected one of `SUBSCRIBE`"},
		{`{"method":"LIST_SUBSCRIPTIONS","id":9007199254740993}`, `{"result":[],"id":9007199254740993}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":"a-b"}`, `"msg":"Invalid request: request ID must be an unsigned integer"`},
		{`{"method":"SET_PROPERTY","params":["combined","yes"],"id":7}`, `{"error":{"code":1,"msg":"Invalid value type: expected Boolean"},"id":7}`},
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
	if st := dialStatus(t, ctx, u+"/v3/nope"); st != http.StatusNotFound {
		t.Fatalf("wrong path: %d", st)
	}
}

// TestBinanceUnknownSymbolSilent: Binance acknowledges a well-formed
// stream of a symbol it does not list and then sends nothing.
func TestBinanceUnknownSymbolSilent(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBinanceTest(t, BinanceConfig{})
	c := dial(t, ctx, u+"/ws")
	send(t, ctx, c, `{"method":"SUBSCRIBE","params":["lmrusdt@ticker","BTCUSDT@ticker"],"id":9}`)
	if f, _ := read(ctx, c); string(f.data) != `{"result":null,"id":9}` {
		t.Fatalf("ack %s", f.data)
	}
	rctx, cancel := context.WithTimeout(ctx, 50*b.push)
	defer cancel()
	if f, err := read(rctx, c); err == nil {
		t.Fatalf("data for an unknown symbol: %s", f.data)
	}
	if b.Pushed("LMRUSDT") != 0 || b.Pushed("BTCUSDT") != 0 {
		t.Fatal("pushed for an unlisted or upper-case stream")
	}
}

// TestBinancePingDeadline: the server pings every PingPeriod; a client
// that answers stays (several deadlines), one that does not is closed at
// PingPeriod+PongDeadline, not before.
func TestBinancePingDeadline(t *testing.T) {
	ctx := testCtx(t)
	period, deadline := 40*time.Millisecond, 200*time.Millisecond
	// Pongs count toward the message limit: at this ping rate, lift it.
	b, u := newBinanceTest(t, BinanceConfig{PingPeriod: period, PongDeadline: deadline, MessageLimit: 1000})
	good := dial(t, ctx, u+"/ws")
	goodCtx := good.CloseRead(ctx) // answers pings; no data is subscribed
	bad := dialNoPong(t, ctx, u+"/ws")
	took, err := closedWithin(t, bad, 5*time.Second)
	if took < period+deadline-20*time.Millisecond {
		t.Fatalf("closed after %v, before ping+deadline %v", took, period+deadline)
	}
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("close %v", err)
	}
	time.Sleep(2 * (period + deadline))
	if goodCtx.Err() != nil {
		t.Fatal("a client answering pings was closed")
	}
	if cl := b.Closes(); len(cl) != 1 || cl[0] != "pong timeout" {
		t.Fatalf("closes %q", cl)
	}
}

// TestBinanceMessageRate: more than 5 messages in the window
// disconnect, 5 do not; the client's pongs count as messages.
func TestBinanceMessageRate(t *testing.T) {
	ctx := testCtx(t)
	_, u := newBinanceTest(t, BinanceConfig{MessageWindow: time.Hour})
	c := dial(t, ctx, u+"/ws")
	for i := range 5 {
		send(t, ctx, c, `{"method":"LIST_SUBSCRIPTIONS","id":1}`)
		if _, err := read(ctx, c); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	send(t, ctx, c, `{"method":"LIST_SUBSCRIPTIONS","id":6}`)
	_, err := closedWithin(t, c, 5*time.Second)
	if !isClose(err) || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("6th message: %v", err)
	}
	// Pongs count: with a ping every 10 ms the 6th pong is one too many.
	_, u2 := newBinanceTest(t, BinanceConfig{MessageWindow: time.Hour, PingPeriod: 10 * time.Millisecond})
	p := dial(t, ctx, u2+"/ws")
	took, err := closedWithin(t, p, 5*time.Second)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation || took < 50*time.Millisecond {
		t.Fatalf("pongs: closed after %v: %v", took, err)
	}
}

func TestBinanceHandshakeLimit(t *testing.T) {
	ctx := testCtx(t)
	b := NewBinance(BinanceConfig{})
	if b.limiter == nil || b.limiter.(*windowLimiter).n != 300 || b.limiter.(*windowLimiter).w != 5*time.Minute || b.maxConns != 0 {
		t.Fatalf("default limit %+v cap %d", b.limiter, b.maxConns)
	}
	b.Close()
	b, u := newBinanceTest(t, BinanceConfig{Config: Config{HandshakeLimit: 3, HandshakeWindow: time.Hour}})
	for range 3 {
		dial(t, ctx, u+"/ws")
	}
	if st := dialStatus(t, ctx, u+"/ws"); st != http.StatusTooManyRequests {
		t.Fatalf("4th handshake %d", st)
	}
	if b.Refused429() != 1 || b.MaxOpen() != 3 {
		t.Fatalf("refused %d max %d", b.Refused429(), b.MaxOpen())
	}
}

// TestBinanceShutdownAndAge: Announce sends serverShutdown (raw and
// combined) then closes; a connection is closed at MaxAge.
func TestBinanceShutdownAndAge(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBinanceTest(t, BinanceConfig{Config: Config{AnnounceGrace: 100 * time.Millisecond}})
	raw := dial(t, ctx, u+"/ws/btcusdt@ticker")
	comb := dial(t, ctx, u+"/stream?streams=btcusdt@ticker")
	readUntil(t, ctx, raw, 100, has(`"24hrTicker"`))
	b.Announce()
	f := readUntil(t, ctx, raw, 1000, has("serverShutdown"))
	if m := obj(t, f); m["e"] != "serverShutdown" || m["E"] == nil {
		t.Fatalf("notice %s", f)
	}
	readUntil(t, ctx, comb, 1000, has(`{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":`))
	closedWithin(t, raw, 5*time.Second)
	closedWithin(t, comb, 5*time.Second)

	old, u2 := newBinanceTest(t, BinanceConfig{MaxAge: 150 * time.Millisecond})
	c := dial(t, ctx, u2+"/ws")
	took, err := closedWithin(t, c, 5*time.Second)
	if took < 100*time.Millisecond || websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("age close after %v: %v", took, err)
	}
	if cl := old.Closes(); len(cl) != 1 || cl[0] != "connection age" {
		t.Fatalf("closes %q", cl)
	}
}

// TestBinanceSubscribeBookTicker: the docs name the stream
// <symbol>@bookTicker (camel case); a SUBSCRIBE to it is acked and
// delivers.
func TestBinanceSubscribeBookTicker(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBinanceTest(t, BinanceConfig{})
	c := dial(t, ctx, u+"/ws")
	send(t, ctx, c, `{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":1}`)
	if f, _ := read(ctx, c); string(f.data) != `{"result":null,"id":1}` {
		t.Fatalf("ack %s", f.data)
	}
	seqRun(t, ctx, c, 3, b.Seq)
}
