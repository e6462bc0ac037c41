package venuefake

import (
	"strings"
	"testing"
	"time"
)

// TestGarbageKeepsTheConnection: frames of every wrong shape get the
// venue's error (or nothing) and never end the connection or the fake:
// the venue's own ping still gets its pong afterwards.
func TestGarbageKeepsTheConnection(t *testing.T) {
	ctx := testCtx(t)
	garbage := []string{
		``, ` `, `{}`, `[]`, `null`, `true`, `42`, `"x"`, `{"a":`, `[1,2`, `{}{}`, `\u0000`,
		`{"event":null}`, `{"event":5}`, `{"event":"subscribe","channel":[],"symbol":{}}`,
		`{"event":"unsubscribe","chanId":"x"}`, `{"event":"unsubscribe","chanId":1e99}`,
		`{"event":"conf","flags":-1}`, `{"method":5}`, `{"jsonrpc":"2.0","id":{},"method":"public/subscribe","params":[]}`,
		`{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels":[1,2]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels":["ticker","ticker.","..",""]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":"10"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":1e308}}`,
		`{"channel":"spot.tickers","event":"subscribe","payload":"BTC_USDT"}`, `{"channel":5,"event":[]}`,
		`{"id":[],"type":"subscribe","topic":":,,,"}`, `{"id":"1","type":"subscribe","topic":"/market/ticker:"}`,
		`{"type":"unsubscribe","topic":"/market/candles:BTC-USDT"}`,
		`{"event":"bts:subscribe","data":"live_trades_btcusd"}`, `{"event":"bts:subscribe","data":{"channel":5}}`,
		`{"event":"bts:subscribe","data":{"channel":"live_trades_"}}`, `{"event":"bts:unsubscribe","data":{"channel":"order_book_nope"}}`,
		strings.Repeat("[", 400), `{"a":"` + strings.Repeat("é", 100) + `"}`,
	}
	for _, tc := range []struct {
		name       string
		f          fake
		path, ping string
		pong       string
		prepare    func(*testing.T, string) string // the URL to dial, given the ws base
	}{
		{"bitfinex", NewBitfinex(BitfinexConfig{Config: Config{PushInterval: -1}}), "/ws/2", `{"event":"ping","cid":99}`, `"cid":99`, nil},
		{"deribit", NewDeribit(DeribitConfig{Config: Config{PushInterval: -1}}), "/ws/api/v2", `{"jsonrpc":"2.0","id":99,"method":"public/test","params":{}}`, `"id":99,"result"`, nil},
		{"gateio", NewGate(GateConfig{Config: Config{PushInterval: -1}}), "/ws/v4/", `{"id":99,"channel":"spot.ping"}`, `"id":99,`, nil},
		{"kucoin", NewKuCoin(KuCoinConfig{Config: Config{PushInterval: -1}}), "", `{"id":"99","type":"ping"}`, `{"id":"99","type":"pong"`, nil},
		{"bitstamp", NewBitstamp(BitstampConfig{Config: Config{PushInterval: -1}}), "/", `{"event":"bts:heartbeat"}`, `"status":"success"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := serve(t, tc.f)
			u := base + tc.path
			if k, ok := tc.f.(*KuCoin); ok {
				u = k.WSURL("http" + strings.TrimPrefix(base, "ws"))
			}
			c := dial(t, ctx, u)
			if tc.name == "kucoin" {
				readUntil(t, ctx, c, 1, has(`"type":"welcome"`))
			}
			for _, g := range garbage {
				send(t, ctx, c, g)
			}
			send(t, ctx, c, tc.ping)
			readUntil(t, ctx, c, 2*len(garbage)+10, has(tc.pong))
			// The fake still serves new connections.
			if tc.name != "kucoin" {
				dial(t, ctx, u)
			}
			time.Sleep(10 * time.Millisecond)
		})
	}
}
