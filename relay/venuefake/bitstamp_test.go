package venuefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newBitstampTest(t *testing.T, cfg BitstampConfig) (*Bitstamp, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	b := NewBitstamp(cfg)
	return b, serve(t, b) + "/"
}

func bitstampSub(event, channel string) string {
	return fmt.Sprintf(`{"event":%q,"data":{"channel":%q}}`, event, channel)
}

func TestBitstampSubscribeAndCounter(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBitstampTest(t, BitstampConfig{})
	c := dial(t, ctx, u)
	send(t, ctx, c, bitstampSub("bts:subscribe", "live_trades_btcusd"))
	if f, _ := read(ctx, c); string(f.data) != `{"event":"bts:subscription_succeeded","channel":"live_trades_btcusd","data":{}}` {
		t.Fatalf("ack %s", f.data)
	}
	f, _ := read(ctx, c)
	if !regexp.MustCompile(`^\{"data":\{"id":\d+,"timestamp":"\d{10}","amount":[0-9.]+,"amount_str":"[0-9.]+","price":[0-9.]+,"price_str":"[0-9.]+","type":[01],"microtimestamp":"\d{16}","buy_order_id":\d+,"sell_order_id":\d+\},"channel":"live_trades_btcusd","event":"trade"\}$`).Match(f.data) {
		t.Fatalf("trade %s", f.data)
	}
	var m struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(f.data, &m)
	if n, ok := b.Seq(m.Data); !ok || n == 0 {
		t.Fatalf("Seq(/data) %d %v", n, ok)
	}
	seqRun(t, ctx, c, 20, b.Seq)
	send(t, ctx, c, bitstampSub("bts:subscribe", "order_book_ethusd"))
	readUntil(t, ctx, c, 1000, has(`{"event":"bts:subscription_succeeded","channel":"order_book_ethusd","data":{}}`))
	isBook := has(`"channel":"order_book_ethusd","event":"data"`)
	book := readUntil(t, ctx, c, 1000, isBook)
	if !regexp.MustCompile(`^\{"data":\{"timestamp":"\d{10}","microtimestamp":"\d{16}","bids":\[\["[0-9.]+","[0-9.]+"\],`).Match(book) {
		t.Fatalf("book %s", book)
	}
	seqRun(t, ctx, c, 10, func(p []byte) (uint64, bool) {
		if !isBook(p) {
			return 0, false
		}
		return b.Seq(p)
	})
	send(t, ctx, c, bitstampSub("bts:unsubscribe", "live_trades_btcusd"))
	readUntil(t, ctx, c, 1000, has(`{"event":"bts:unsubscription_succeeded","channel":"live_trades_btcusd","data":{}}`))
	if b.Subscribers(ChannelTrades, "btcusd") != 0 || b.Subscribers(ChannelBBO, "ethusd") != 1 {
		t.Fatal("subscriptions after unsubscribe")
	}
}

func TestBitstampErrorsAndHeartbeat(t *testing.T) {
	ctx := testCtx(t)
	_, u := newBitstampTest(t, BitstampConfig{Config: Config{PushInterval: -1}})
	c := dial(t, ctx, u)
	errFrame := func(msg string) string {
		return `{"event":"bts:error","channel":"","data":{"code":null,"message":"` + msg + `"}}`
	}
	for _, tc := range []struct{ in, want string }{
		{`not json`, errFrame("Incorrect JSON format.")},
		{`{"event":"bts:ping"}`, errFrame("Bad subscription string.")},
		{`{"event":"bts:subscribe","data":{}}`, errFrame("Bad subscription string.")},
		{bitstampSub("bts:subscribe", "order_book_BTCUSD-PERP"), errFrame("Invalid channel provided.")},
		{bitstampSub("bts:subscribe", "order_book_btc/usd-perp"), errFrame("Invalid channel provided.")},
		{bitstampSub("bts:subscribe", "ticker_btcusd"), errFrame("Invalid channel provided.")},
		{`{"event":"bts:heartbeat"}`, `{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}`},
	} {
		send(t, ctx, c, tc.in)
		f, err := read(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if string(f.data) != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, f.data, tc.want)
		}
	}
}

// TestBitstampUnknownPairSilent: a well-formed lowercase pair the venue
// does not list is acknowledged and then nothing comes.
func TestBitstampUnknownPairSilent(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBitstampTest(t, BitstampConfig{})
	c := dial(t, ctx, u)
	send(t, ctx, c, bitstampSub("bts:subscribe", "order_book_fooxyz-perp"))
	if f, _ := read(ctx, c); string(f.data) != `{"event":"bts:subscription_succeeded","channel":"order_book_fooxyz-perp","data":{}}` {
		t.Fatalf("ack %s", f.data)
	}
	time.Sleep(100 * time.Millisecond) // 20 push intervals
	send(t, ctx, c, `{"event":"bts:heartbeat"}`)
	if f, _ := read(ctx, c); !strings.HasPrefix(string(f.data), `{"event":"bts:heartbeat"`) {
		t.Fatalf("data for an unknown pair: %s", f.data)
	}
	if b.Pushed("fooxyz-perp") != 0 {
		t.Fatal("a stream ran for an unknown pair")
	}
}

// TestBitstampFrameLimits: a client frame of 512 bytes is read, one of
// 513 closes the connection with 1009 "read limited at 513 bytes"; the
// 1,025th subscription closes it silently.
func TestBitstampFrameLimits(t *testing.T) {
	ctx := testCtx(t)
	_, u := newBitstampTest(t, BitstampConfig{MaxSubscriptions: 3, Config: Config{PushInterval: -1}})
	frame := func(n int) string {
		s := `{"event":"bts:heartbeat","pad":""}`
		return strings.Replace(s, `""`, `"`+strings.Repeat("x", n-len(s))+`"`, 1)
	}
	c := dial(t, ctx, u)
	send(t, ctx, c, frame(512))
	readUntil(t, ctx, c, 1, has(`"status":"success"`))
	send(t, ctx, c, frame(513))
	_, err := closedWithin(t, c, 5*time.Second)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig || !strings.Contains(err.Error(), "read limited at 513 bytes") {
		t.Fatalf("513-byte frame: %v", err)
	}
	c = dial(t, ctx, u)
	for _, ch := range []string{"live_trades_btcusd", "live_trades_ethusd", "order_book_btcusd"} {
		send(t, ctx, c, bitstampSub("bts:subscribe", ch))
		readUntil(t, ctx, c, 1, has(`"bts:subscription_succeeded"`))
	}
	send(t, ctx, c, bitstampSub("bts:subscribe", "live_trades_btcusd")) // again: no new subscription
	readUntil(t, ctx, c, 1, has(`"bts:subscription_succeeded"`))
	send(t, ctx, c, bitstampSub("bts:subscribe", "order_book_ethusd"))
	if _, err := closedWithin(t, c, 5*time.Second); isClose(err) {
		t.Fatalf("past the subscription limit: %v", err)
	}
}

// TestBitstampServerPing: the server pings every period; a client that
// does not answer is closed when the next ping is due, one that answers
// stays.
func TestBitstampServerPing(t *testing.T) {
	ctx := testCtx(t)
	period := 200 * time.Millisecond
	b, u := newBitstampTest(t, BitstampConfig{PingPeriod: period, Config: Config{PushInterval: -1}})
	good := dial(t, ctx, u)
	gctx := good.CloseRead(ctx)
	bad := dialNoPong(t, ctx, u)
	took, err := closedWithin(t, bad, 5*time.Second)
	if took < 2*period-30*time.Millisecond || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("unanswering client closed after %v: %v", took, err)
	}
	time.Sleep(3 * period)
	if gctx.Err() != nil {
		t.Fatal("answering client closed")
	}
	if cl := b.Closes(); len(cl) != 1 || cl[0] != "pong timeout" {
		t.Fatalf("closes %q", cl)
	}
}

func TestBitstampRequestReconnect(t *testing.T) {
	ctx := testCtx(t)
	b := NewBitstamp(BitstampConfig{})
	if b.grace != 3*time.Second || b.set.readLimit != 512 || b.set.wsPing != 54*time.Second || b.set.maxAge != 90*24*time.Hour || b.maxSubs != 1024 {
		t.Fatalf("defaults %v %d %v %v %d", b.grace, b.set.readLimit, b.set.wsPing, b.set.maxAge, b.maxSubs)
	}
	b.Close()
	grace := 100 * time.Millisecond
	b, u := newBitstampTest(t, BitstampConfig{Config: Config{AnnounceGrace: grace}})
	c := dial(t, ctx, u)
	send(t, ctx, c, bitstampSub("bts:subscribe", "live_trades_btcusd"))
	start := time.Now()
	b.Announce()
	readUntil(t, ctx, c, 1000, has(`{"event":"bts:request_reconnect","channel":"","data":null}`))
	closedWithin(t, c, 5*time.Second)
	if time.Since(start) < grace-10*time.Millisecond {
		t.Fatal("closed before the grace")
	}
}

func TestBitstampHandshakeLimit(t *testing.T) {
	ctx := testCtx(t)
	b := NewBitstamp(BitstampConfig{})
	if l := b.limiter.(*windowLimiter); l.n != 20 || l.w != time.Second || b.maxConns != 0 {
		t.Fatalf("defaults %+v %d", l, b.maxConns)
	}
	b.Close()
	b, u := newBitstampTest(t, BitstampConfig{Config: Config{HandshakeLimit: 2, HandshakeWindow: time.Hour}})
	dialStatus(t, ctx, u)
	dialStatus(t, ctx, u)
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || b.Refused429() != 1 {
		t.Fatalf("past the rate: %d", st)
	}
}
