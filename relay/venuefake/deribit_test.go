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

func newDeribitTest(t *testing.T, cfg DeribitConfig) (*Deribit, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	x := NewDeribit(cfg)
	return x, serve(t, x) + "/ws/api/v2"
}

// deribitAck matches a result reply to id with the given JSON result.
func deribitAck(id, result string) *regexp.Regexp {
	return regexp.MustCompile(`^\{"jsonrpc":"2\.0","id":` + regexp.QuoteMeta(id) + `,"result":` + regexp.QuoteMeta(result) +
		`,"usIn":\d{16},"usOut":\d{16},"usDiff":\d+,"testnet":false\}$`)
}

func deribitSub(id int, channels ...string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"public/subscribe","params":{"channels":%s}}`, id, marshal(channels))
}

// paramsData returns /params/data of a notification (the preset's extract).
func paramsData(t *testing.T, b []byte) json.RawMessage {
	t.Helper()
	var n struct {
		Params struct {
			Data json.RawMessage `json:"data"`
		} `json:"params"`
	}
	if json.Unmarshal(b, &n) != nil || n.Params.Data == nil {
		t.Fatalf("not a notification: %s", b)
	}
	return n.Params.Data
}

func TestDeribitSubscribeAckAndCounter(t *testing.T) {
	ctx := testCtx(t)
	x, u := newDeribitTest(t, DeribitConfig{})
	c := dial(t, ctx, u)
	send(t, ctx, c, deribitSub(3, "ticker.BTC-PERPETUAL.100ms"))
	if f, _ := read(ctx, c); !deribitAck("3", `["ticker.BTC-PERPETUAL.100ms"]`).Match(f.data) {
		t.Fatalf("ack %s", f.data)
	}
	f, _ := read(ctx, c)
	if !strings.HasPrefix(string(f.data), `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":{"timestamp":`) {
		t.Fatalf("ticker %s", f.data)
	}
	data := obj(t, paramsData(t, f.data))
	for _, k := range []string{"timestamp", "state", "stats", "index_price", "instrument_name", "last_price", "mark_price", "best_ask_price", "best_bid_price", "best_ask_amount", "best_bid_amount", "open_interest", "funding_8h"} {
		if _, ok := data[k]; !ok {
			t.Fatalf("ticker lacks %s: %s", k, f.data)
		}
	}
	if n, ok := x.Seq(paramsData(t, f.data)); !ok || n == 0 {
		t.Fatalf("Seq(/params/data) %d %v", n, ok)
	}
	seqRun(t, ctx, c, 20, x.Seq)

	// A second subscribe on the same connection, two channels at once;
	// trades' data is an array whose trade_seq is the counter.
	send(t, ctx, c, deribitSub(4, "trades.ETH-PERPETUAL.100ms", "quote.ETH-PERPETUAL"))
	readUntil(t, ctx, c, 1000, func(b []byte) bool {
		return deribitAck("4", `["trades.ETH-PERPETUAL.100ms","quote.ETH-PERPETUAL"]`).Match(b)
	})
	isTrades := has(`"channel":"trades.ETH-PERPETUAL.100ms"`)
	tr := readUntil(t, ctx, c, 1000, isTrades)
	if !regexp.MustCompile(`"data":\[\{"timestamp":\d{13},"price":[0-9.]+,"amount":[0-9.]+,"direction":"(buy|sell)",.*"trade_seq":\d+,`).Match(tr) {
		t.Fatalf("trades %s", tr)
	}
	n1, ok1 := x.Seq(paramsData(t, tr))
	n2, ok2 := x.Seq(tr)
	if !ok1 || n1 != n2 {
		t.Fatalf("trade Seq %d %v %d %v", n1, ok1, n2, ok2)
	}
	seqRun(t, ctx, c, 10, func(b []byte) (uint64, bool) {
		if !isTrades(b) {
			return 0, false
		}
		return x.Seq(b)
	})
	seqRun(t, ctx, c, 10, func(b []byte) (uint64, bool) {
		if !has(`"channel":"quote.ETH-PERPETUAL"`)(b) {
			return 0, false
		}
		return x.Seq(b)
	})
	// Subscribing again lists the channel and adds nothing.
	send(t, ctx, c, deribitSub(5, "ticker.BTC-PERPETUAL.100ms"))
	readUntil(t, ctx, c, 1000, func(b []byte) bool { return deribitAck("5", `["ticker.BTC-PERPETUAL.100ms"]`).Match(b) })
	if x.Subscribers(ChannelTicker, "BTC-PERPETUAL") != 1 {
		t.Fatal("subscribed twice")
	}
	// Unsubscribe answers the channels it removed, then none.
	for i, want := range []string{`["ticker.BTC-PERPETUAL.100ms"]`, `[]`} {
		send(t, ctx, c, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"public/unsubscribe","params":{"channels":["ticker.BTC-PERPETUAL.100ms"]}}`, 6+i))
		readUntil(t, ctx, c, 1000, func(b []byte) bool { return deribitAck(fmt.Sprint(6+i), want).Match(b) })
	}
	if x.Subscribers(ChannelTicker, "BTC-PERPETUAL") != 0 {
		t.Fatal("still subscribed")
	}
}

func TestDeribitUnknownAndErrors(t *testing.T) {
	ctx := testCtx(t)
	x, u := newDeribitTest(t, DeribitConfig{Config: Config{PushInterval: -1}})
	c := dial(t, ctx, u)
	for _, tc := range []struct{ in, want string }{
		// Unknown instrument or interval: an empty result, no error.
		{deribitSub(1, "ticker.NOPE-PERPETUAL.100ms"), `^\{"jsonrpc":"2\.0","id":1,"result":\[\],"usIn":\d+,"usOut":\d+,"usDiff":\d+,"testnet":false\}$`},
		{deribitSub(2, "ticker.BTC-PERPETUAL.50ms", "book.BTC-PERPETUAL.none.50.100ms"), `"id":2,"result":\[\],`},
		// Mixed: only the valid channel is listed.
		{deribitSub(3, "quote.NOPE", "quote.BTC-PERPETUAL"), `"id":3,"result":\["quote\.BTC-PERPETUAL"\],`},
		// raw refuses the whole request.
		{deribitSub(4, "trades.ETH-PERPETUAL.100ms", "trades.ETH-PERPETUAL.raw"),
			`^\{"jsonrpc":"2\.0","id":4,"error":\{"code":13778,"message":"raw_subscriptions_not_available_for_unauthorized"\},"usIn":\d+,"usOut":\d+,"usDiff":\d+,"testnet":false\}$`},
		{`not json`, `^\{"jsonrpc":"2\.0","error":\{"code":11050,"data":"invalid json","message":"bad_request"\},"usIn":`},
		{`{"jsonrpc":"2.0","id":5,"method":"public/nope","params":{}}`, `"id":5,"error":\{"code":-32601,"message":"Method not found"\}`},
		{`{"jsonrpc":"2.0","id":6,"method":"public/subscribe","params":{}}`, `"id":6,"error":\{"code":-32602,"message":"Invalid params","data":\{"reason":"value required","param":"channels"\}\}`},
		{`{"jsonrpc":"2.0","id":7,"method":"private/subscribe","params":{"channels":["user.orders.any.any.raw"]}}`, `"id":7,"error":\{"code":13009,"message":"unauthorized"`},
		// A request without id is answered without one.
		{`{"jsonrpc":"2.0","method":"public/test","params":{}}`, `^\{"jsonrpc":"2\.0","result":\{"version":"[0-9.]+"\},"usIn"`},
		{`{"jsonrpc":"2.0","id":"s1","method":"public/set_heartbeat","params":{"interval":5}}`, `"id":"s1","error":\{"code":-32602,"message":"Invalid params","data":\{"reason":"must be greater or equal to 10","param":"interval"\}\}`},
		{`{"jsonrpc":"2.0","id":8,"method":"public/set_heartbeat","params":{}}`, `"data":\{"reason":"value required","param":"interval"\}`},
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
	if x.Subscribers(ChannelTrades, "ETH-PERPETUAL") != 0 || x.Subscribers(ChannelBBO, "BTC-PERPETUAL") != 1 {
		t.Fatal("subscriptions after the refusals")
	}
}

// TestDeribitHeartbeat: after set_heartbeat the server sends test_request
// every interval; a client answering with public/test stays, one that
// does not is closed with 4000 one interval after the test_request, not
// before; an idle socket also gets heartbeat frames.
func TestDeribitHeartbeat(t *testing.T) {
	ctx := testCtx(t)
	scale := 0.04 // interval 10 s → 400 ms
	period := 400 * time.Millisecond
	x, u := newDeribitTest(t, DeribitConfig{Config: Config{TimeScale: scale}})
	setHB := `{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":10}}`
	good := dial(t, ctx, u)
	silent := dial(t, ctx, u)
	send(t, ctx, good, setHB)
	send(t, ctx, silent, setHB)
	start := time.Now()
	goodErr := make(chan error, 1)
	go func() {
		requests, beats := 0, 0
		for time.Since(start) < 6*period {
			f, err := read(ctx, good)
			if err != nil {
				goodErr <- err
				return
			}
			switch {
			case strings.Contains(string(f.data), `"type":"test_request"`):
				requests++
				if err := good.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":9,"method":"public/test","params":{}}`)); err != nil {
					goodErr <- err
					return
				}
			case string(f.data) == `{"params":{"type":"heartbeat"},"method":"heartbeat","jsonrpc":"2.0"}`:
				beats++
			}
		}
		if requests < 3 || beats < 3 {
			goodErr <- fmt.Errorf("%d test_requests, %d heartbeats", requests, beats)
			return
		}
		goodErr <- nil
	}()
	took, err := closedWithin(t, silent, 5*time.Second)
	if took < 2*period-30*time.Millisecond || websocket.CloseStatus(err) != 4000 || !strings.Contains(err.Error(), "heartbeat close") {
		t.Fatalf("unanswering client closed after %v: %v", took, err)
	}
	if err := <-goodErr; err != nil {
		t.Fatalf("answering client: %v", err)
	}
	if cl := x.Closes(); len(cl) != 1 {
		t.Fatalf("closes %q", cl)
	}
}

// TestDeribitSubscribeCredits: past the burst of public/subscribe credits
// the request gets 10028 and the session ends.
func TestDeribitSubscribeCredits(t *testing.T) {
	ctx := testCtx(t)
	x := NewDeribit(DeribitConfig{})
	if x.subN != 10 || x.subW != 3*time.Second || x.reqN != 100 || x.reqW != 5*time.Second || x.maxConns != 32 || x.limiter != nil || x.silence != time.Minute {
		t.Fatalf("defaults %d %v %d %v %d %v", x.subN, x.subW, x.reqN, x.reqW, x.maxConns, x.silence)
	}
	x.Close()
	_, u := newDeribitTest(t, DeribitConfig{SubscribeWindow: time.Hour, Config: Config{PushInterval: -1}})
	c := dial(t, ctx, u)
	for i := range 10 {
		send(t, ctx, c, deribitSub(i, "quote.BTC-PERPETUAL"))
		readUntil(t, ctx, c, 10, has(fmt.Sprintf(`"id":%d,"result":`, i)))
	}
	// Other requests draw from the other pool.
	send(t, ctx, c, `{"jsonrpc":"2.0","id":50,"method":"public/test","params":{}}`)
	readUntil(t, ctx, c, 10, has(`"id":50,"result":{"version"`))
	send(t, ctx, c, deribitSub(11, "quote.ETH-PERPETUAL"))
	readUntil(t, ctx, c, 10, has(`"id":11,"error":{"code":10028,"message":"too_many_requests","data":null}`))
	if _, err := closedWithin(t, c, 5*time.Second); !isClose(err) {
		t.Fatalf("session after 10028: %v", err)
	}
}

func TestDeribitConnectionCap(t *testing.T) {
	ctx := testCtx(t)
	x, u := newDeribitTest(t, DeribitConfig{})
	var conns []*websocket.Conn
	for range 32 {
		conns = append(conns, dial(t, ctx, u))
	}
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || x.Refused429() != 1 {
		t.Fatalf("33rd handshake: %d", st)
	}
	conns[0].Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for x.Open() > 31 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := dialStatus(t, ctx, u); st != http.StatusSwitchingProtocols {
		t.Fatalf("after a close: %d", st)
	}
}

// TestDeribitSilence: an unsubscribed socket whose client sends nothing
// is cut without a close frame after Silence; a subscribed one stays.
func TestDeribitSilence(t *testing.T) {
	ctx := testCtx(t)
	quiet := 300 * time.Millisecond
	_, u := newDeribitTest(t, DeribitConfig{Silence: quiet, Config: Config{PushInterval: -1}})
	silent := dial(t, ctx, u)
	sub := dial(t, ctx, u)
	send(t, ctx, sub, deribitSub(1, "quote.BTC-PERPETUAL"))
	took, err := closedWithin(t, silent, 5*time.Second)
	if took < quiet-50*time.Millisecond || isClose(err) {
		t.Fatalf("silent socket cut after %v: %v", took, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 2*quiet)
	defer cancel()
	for {
		if _, err := read(sctx, sub); err != nil {
			if sctx.Err() == nil {
				t.Fatalf("subscribed socket: %v", err)
			}
			break
		}
	}
}

func TestDeribitAnnounceIsAPlainClose(t *testing.T) {
	ctx := testCtx(t)
	grace := 100 * time.Millisecond
	x, u := newDeribitTest(t, DeribitConfig{Config: Config{AnnounceGrace: grace, PushInterval: -1}})
	c := dial(t, ctx, u)
	send(t, ctx, c, deribitSub(1, "quote.BTC-PERPETUAL"))
	readUntil(t, ctx, c, 10, has(`"id":1,"result"`))
	start := time.Now()
	x.Announce()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, _, err := c.Read(rctx) // nothing before the close
	if websocket.CloseStatus(err) != websocket.StatusGoingAway || time.Since(start) < grace-10*time.Millisecond {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}
