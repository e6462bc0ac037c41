package venuefake

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newBybitTest(t *testing.T, cfg BybitConfig) (*Bybit, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	b := NewBybit(cfg)
	return b, serve(t, b) + "/v5/public/spot"
}

func TestBybitSubscribeAckPongAndCounter(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBybitTest(t, BybitConfig{})
	c := dial(t, ctx, u)
	send(t, ctx, c, `{"op":"subscribe","args":["tickers.BTCUSDT"]}`)
	f, _ := read(ctx, c)
	if !regexp.MustCompile(`^\{"success":true,"ret_msg":"subscribe","conn_id":"[0-9a-f-]{36}","op":"subscribe"\}$`).Match(f.data) {
		t.Fatalf("ack %s", f.data)
	}
	f, _ = read(ctx, c)
	m := obj(t, f.data)
	if m["topic"] != "tickers.BTCUSDT" || m["type"] != "snapshot" || m["cs"] == nil {
		t.Fatalf("ticker %s", f.data)
	}
	d := m["data"].(map[string]any)
	for _, k := range []string{"symbol", "lastPrice", "highPrice24h", "lowPrice24h", "prevPrice24h", "volume24h", "turnover24h", "price24hPcnt", "usdIndexPrice"} {
		if _, ok := d[k]; !ok {
			t.Fatalf("ticker data lacks %s", k)
		}
	}
	seqRun(t, ctx, c, 20, b.Seq)
	// The preset's extract is /data: the counter reads back from it.
	data := f.data[strings.Index(string(f.data), `"data":`)+7 : len(f.data)-1]
	if _, ok := b.Seq(data); !ok {
		t.Fatalf("Seq(/data) on %s", data)
	}
	send(t, ctx, c, `{"req_id":"100001","op":"ping"}`)
	readUntil(t, ctx, c, 1000, func(p []byte) bool {
		return regexp.MustCompile(`^\{"success":true,"ret_msg":"pong","conn_id":"[0-9a-f-]{36}","req_id":"100001","op":"ping"\}$`).Match(p)
	})
	send(t, ctx, c, `{"op":"subscribe","args":["publicTrade.ETHUSDT","orderbook.1.ETHUSDT"]}`)
	readUntil(t, ctx, c, 1000, has(`"ret_msg":"subscribe"`))
	seqRun(t, ctx, c, 10, func(p []byte) (uint64, bool) {
		if !strings.Contains(string(p), `"topic":"publicTrade.ETHUSDT"`) {
			return 0, false
		}
		return b.Seq(p)
	})
	seqRun(t, ctx, c, 10, func(p []byte) (uint64, bool) {
		if !strings.Contains(string(p), `"topic":"orderbook.1.ETHUSDT"`) {
			return 0, false
		}
		return b.Seq(p)
	})
	send(t, ctx, c, `{"op":"unsubscribe","args":["tickers.BTCUSDT"],"req_id":"u1"}`)
	readUntil(t, ctx, c, 1000, has(`"success":true,"ret_msg":"unsubscribe"`, `"req_id":"u1","op":"unsubscribe"`))
	if b.Subscribers(ChannelTicker, "BTCUSDT") != 0 {
		t.Fatal("still subscribed")
	}
}

func TestBybitErrors(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBybitTest(t, BybitConfig{})
	c := dial(t, ctx, u)
	for _, tc := range []struct{ in, want string }{
		{`{"op":"subscribe","args":["invalid.topic.BTCUSDT"]}`, `{"success":false,"ret_msg":"Invalid topic: invalid.topic.BTCUSDT","conn_id":"`},
		{`{"op":"subscribe","args":["orderbook.50.X"]}`, `{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.X]","conn_id":"`},
		{`{"op":"subscribe","args":["tickers.BTCUSDT","tickers.LMRUSDT"]}`, `"success":false,"ret_msg":"Invalid symbol :[tickers.LMRUSDT]"`},
		{`{"op":"subscribe","args":["tickers.A","tickers.B","tickers.C","tickers.D","tickers.E","tickers.F","tickers.G","tickers.H","tickers.I","tickers.J","tickers.K"]}`, `"success":false,"ret_msg":"args size 11 exceeds the limit of 10"`},
		{`{"op":"subscribe","args":"tickers.BTCUSDT"}`, `"success":false`},
		{`{"op":"sub","args":["tickers.BTCUSDT"]}`, `"success":false,"ret_msg":"Invalid op: sub"`},
		{`ping`, `"success":false`},
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
	if b.Subscribers(ChannelTicker, "BTCUSDT") != 0 {
		t.Fatal("a failed request subscribed its good topic")
	}
	if st := dialStatus(t, ctx, strings.TrimSuffix(u, "spot")+"linear"); st != http.StatusNotFound {
		t.Fatalf("other path %d", st)
	}
}

// TestBybitIdleCut: no ping and no data for Idle cuts the connection; a
// client pinging within it stays.
func TestBybitIdleCut(t *testing.T) {
	ctx := testCtx(t)
	idle := 300 * time.Millisecond
	_, u := newBybitTest(t, BybitConfig{Idle: idle})
	quiet := dial(t, ctx, u)
	pinger := dial(t, ctx, u)
	errc := make(chan error, 1)
	go func() {
		for range 6 {
			time.Sleep(idle / 3)
			if err := pinger.Write(ctx, websocket.MessageText, []byte(`{"op":"ping"}`)); err != nil {
				errc <- err
				return
			}
			if _, err := read(ctx, pinger); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	took, _ := closedWithin(t, quiet, 5*time.Second)
	if took < idle-50*time.Millisecond {
		t.Fatalf("cut after %v, before %v", took, idle)
	}
	if err := <-errc; err != nil {
		t.Fatalf("pinging client: %v", err)
	}
}

func TestBybitHandshakeLimitAndCap(t *testing.T) {
	ctx := testCtx(t)
	b := NewBybit(BybitConfig{})
	if b.limiter.(*windowLimiter).n != 500 || b.limiter.(*windowLimiter).w != 5*time.Minute || b.maxConns != 1000 {
		t.Fatalf("defaults %+v %d", b.limiter, b.maxConns)
	}
	b.Close()
	b, u := newBybitTest(t, BybitConfig{Config: Config{MaxConns: 2}})
	dial(t, ctx, u)
	dial(t, ctx, u)
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || b.Refused429() != 1 {
		t.Fatalf("3rd connection %d", st)
	}
	b2, u2 := newBybitTest(t, BybitConfig{Config: Config{HandshakeLimit: 2, HandshakeWindow: time.Hour}})
	dialStatus(t, ctx, u2)
	dialStatus(t, ctx, u2)
	if st := dialStatus(t, ctx, u2); st != http.StatusTooManyRequests || b2.Refused429() != 1 {
		t.Fatalf("3rd handshake %d", st)
	}
}

func TestBybitAnnounceCloses(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBybitTest(t, BybitConfig{Config: Config{AnnounceGrace: 50 * time.Millisecond}})
	c := dial(t, ctx, u)
	b.Announce()
	_, err := closedWithin(t, c, 5*time.Second)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close %v", err)
	}
}
