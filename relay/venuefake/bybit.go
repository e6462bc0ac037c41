package venuefake

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Bybit v5 public spot WebSocket. Sources: EXCHANGES.md §3, which cites
// bybit-exchange/docs (read again here at commit 072c197, 2026-07-24):
// docs/v5/websocket/wss-authentication.mdx ("Connect": IP limits, args
// limits, heartbeat, subscription responses), docs/v5/rate-limit/
// rate-limit.mdx ("Websocket IP limit"), docs/v5/websocket/public/
// {ticker,trade,orderbook}.mdx [DOC]; nautilus_trader
// ws_subscription_failure.json [LIB]; captures [CAP-3P].

// BybitConfig configures the Bybit fake. Zero fields are Bybit's
// documented values, scaled by Config.TimeScale.
type BybitConfig struct {
	Config
	// Idle: "if there is no "ping-pong" and no stream data sent from server
	// end, the connection will be cut off after 10 minutes" [DOC "Connect"].
	Idle time.Duration
}

// Bybit is the Bybit v5 public spot fake at /v5/public/spot. Symbols are
// Bybit's (BTCUSDT). Topics: tickers.{symbol} (ChannelTicker),
// publicTrade.{symbol} (ChannelTrades), orderbook.1.{symbol} (ChannelBBO).
// Safe for concurrent use.
type Bybit struct {
	*Server
}

type bybitConn struct{ id string }

var bybitSymbols = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}

// NewBybit returns a Bybit fake; serve it with httptest.
func NewBybit(cfg BybitConfig) *Bybit {
	b := &Bybit{}
	idle := scaler(cfg.TimeScale)(cfg.Idle, 10*time.Minute)
	set := settings{
		path:    "/v5/public/spot",
		symbols: bybitSymbols,
		// "Push frequency: … Spot - 50ms" [DOC ticker.mdx].
		push: 50 * time.Millisecond,
		// "Do not establish more than 500 connections within a 5-minute
		// window" (per WebSocket domain; the fake counts per client IP,
		// which on loopback is the same) and "Do not establish more than
		// 1,000 connections per IP for market data" [DOC rate-limit.mdx].
		hsLimit:  500,
		hsWindow: 5 * time.Minute,
		maxConns: 1000,
		// Bybit documents no shutdown notice: Announce is a plain close
		// after the grace.
		grace: 5 * time.Second,
		idle:  idle,
	}
	b.Server = newServer("bybit", b, cfg.Config, set)
	return b
}

func (b *Bybit) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/v5/public/spot" {
		return nil, http.StatusNotFound, "Not Found"
	}
	u := rand.Uint64()
	return &bybitConn{id: fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(u), uint16(u>>32), uint16(u>>48), rand.Uint32()&0xffff, rand.Uint64()&0xffffffffffff)}, 0, ""
}

func (b *Bybit) opened(c *conn) {}

// bybitReply is an ack, failure or pong in the public spot shape [DOC
// "Understanding the Subscription Response", "How to Send the Heartbeat
// Packet"]: {"success","ret_msg","conn_id","req_id"?,"op"}.
type bybitReply struct {
	Success bool    `json:"success"`
	RetMsg  string  `json:"ret_msg"`
	ConnID  string  `json:"conn_id"`
	ReqID   *string `json:"req_id,omitempty"`
	Op      string  `json:"op,omitempty"`
}

// bybitTopic maps a topic to the fake's stream; known reports whether
// the topic's kind exists at all.
func (b *Bybit) bybitTopic(topic string) (k streamKey, known bool) {
	switch {
	case strings.HasPrefix(topic, "tickers."):
		return streamKey{ChannelTicker, strings.TrimPrefix(topic, "tickers.")}, true
	case strings.HasPrefix(topic, "publicTrade."):
		return streamKey{ChannelTrades, strings.TrimPrefix(topic, "publicTrade.")}, true
	case strings.HasPrefix(topic, "orderbook.1."):
		return streamKey{ChannelBBO, strings.TrimPrefix(topic, "orderbook.1.")}, true
	case strings.HasPrefix(topic, "orderbook.50."), strings.HasPrefix(topic, "orderbook.200."),
		strings.HasPrefix(topic, "orderbook.1000."), strings.HasPrefix(topic, "kline."):
		i := strings.LastIndexByte(topic, '.')
		return streamKey{"", topic[i+1:]}, true
	}
	return streamKey{}, false
}

func (b *Bybit) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*bybitConn)
	var req struct {
		ReqID *string         `json:"req_id"`
		Op    string          `json:"op"`
		Args  json.RawMessage `json:"args"`
	}
	if json.Unmarshal(p, &req) != nil {
		// The reply to text that is not a request is not documented.
		c.sendJSON(bybitReply{RetMsg: "Invalid request: " + string(p), ConnID: st.id})
		return
	}
	reply := bybitReply{ConnID: st.id, ReqID: req.ReqID, Op: req.Op}
	switch req.Op {
	case "ping":
		// Spot pong: {"success":true,"ret_msg":"pong","conn_id":…,"op":"ping"}
		// [DOC "How to Send the Heartbeat Packet"].
		reply.Success, reply.RetMsg = true, "pong"
		c.sendJSON(reply)
		return
	case "subscribe", "unsubscribe":
	default:
		// Not documented: the fake answers like a failed subscribe.
		reply.RetMsg = "Invalid op: " + req.Op
		c.sendJSON(reply)
		return
	}
	var args []string
	if json.Unmarshal(req.Args, &args) != nil || len(args) == 0 {
		reply.RetMsg = "Invalid request: args must be a non-empty array of topics"
		c.sendJSON(reply)
		return
	}
	// "Spot can input up to 10 args for each subscription request" [DOC
	// "Public channel - Args limits"]; the reply text is not documented.
	if len(args) > 10 {
		reply.RetMsg = fmt.Sprintf("args size %d exceeds the limit of 10", len(args))
		c.sendJSON(reply)
		return
	}
	// A request with a bad topic fails as a whole (the docs do not say
	// whether the others are subscribed): "Invalid topic: invalid.topic.
	// BTCUSDT" [LIB nautilus ws_subscription_failure.json], "Invalid symbol
	// :[orderbook.50.X]" [CAP-3P].
	var keys []streamKey
	var badTopic, badSymbol []string
	for _, a := range args {
		k, known := b.bybitTopic(a)
		switch {
		case !known:
			badTopic = append(badTopic, a)
		case !b.Listed(k.symbol):
			badSymbol = append(badSymbol, a)
		default:
			keys = append(keys, k)
		}
	}
	if len(badTopic) > 0 {
		reply.RetMsg = "Invalid topic: " + badTopic[0]
		c.sendJSON(reply)
		return
	}
	if len(badSymbol) > 0 {
		reply.RetMsg = "Invalid symbol :[" + strings.Join(badSymbol, ",") + "]"
		c.sendJSON(reply)
		return
	}
	if req.Op == "unsubscribe" {
		for _, k := range keys {
			if k.channel != "" {
				b.unsubscribe(c, k)
			}
		}
	}
	// Spot ack: "ret_msg": "subscribe" [DOC, "Public Spot" tab]; the
	// unsubscribe ack is assumed to mirror it.
	reply.Success, reply.RetMsg = true, req.Op
	c.sendJSON(reply)
	if req.Op == "subscribe" {
		for _, k := range keys {
			if k.channel != "" {
				b.subscribe(c, k, false)
			}
		}
	}
}

type bybitTicker struct {
	Symbol        string `json:"symbol"`
	LastPrice     string `json:"lastPrice"`
	HighPrice24h  string `json:"highPrice24h"`
	LowPrice24h   string `json:"lowPrice24h"`
	PrevPrice24h  string `json:"prevPrice24h"`
	Volume24h     string `json:"volume24h"`
	Turnover24h   string `json:"turnover24h"`
	Price24hPcnt  string `json:"price24hPcnt"`
	UsdIndexPrice string `json:"usdIndexPrice"`
}

type bybitTrade struct {
	T   int64  `json:"T"`
	S   string `json:"s"`
	Sd  string `json:"S"`
	V   string `json:"v"`
	P   string `json:"p"`
	L   string `json:"L"`
	I   string `json:"i"`
	BT  bool   `json:"BT"`
	Seq uint64 `json:"seq"`
}

type bybitBook struct {
	S   string      `json:"s"`
	B   [][2]string `json:"b"`
	A   [][2]string `json:"a"`
	U   uint64      `json:"u"`
	Seq uint64      `json:"seq"`
}

func (b *Bybit) render(c *conn, k streamKey, e *event, _ bool) []byte {
	ts := e.at.UnixMilli()
	switch k.channel {
	case ChannelTicker:
		// Spot tickers are snapshot only, no bid/ask [DOC ticker.mdx, spot
		// tab]. The data has no counter field: the fake's counter is
		// volume24h (a 24 h volume growing by one per event), and the
		// frame's cs (cross sequence) carries it too.
		return marshal(struct {
			Topic string      `json:"topic"`
			Ts    int64       `json:"ts"`
			Type  string      `json:"type"`
			Cs    uint64      `json:"cs"`
			Data  bybitTicker `json:"data"`
		}{"tickers." + k.symbol, ts, "snapshot", e.seq, bybitTicker{
			Symbol: k.symbol, LastPrice: num(e.price, 2), HighPrice24h: num(e.high, 2),
			LowPrice24h: num(e.low, 2), PrevPrice24h: num(e.open, 2),
			Volume24h: strconv.FormatUint(e.seq, 10), Turnover24h: num(float64(e.seq)*e.price, 8),
			Price24hPcnt: num((e.price-e.open)/e.open, 4), UsdIndexPrice: num(e.price, 7)}})
	case ChannelTrades:
		// publicTrade [DOC trade.mdx]; seq is the counter.
		side, tick := "Sell", "MinusTick"
		if e.buy {
			side, tick = "Buy", "PlusTick"
		}
		return marshal(struct {
			Topic string       `json:"topic"`
			Type  string       `json:"type"`
			Ts    int64        `json:"ts"`
			Data  []bybitTrade `json:"data"`
		}{"publicTrade." + k.symbol, "snapshot", ts, []bybitTrade{{T: ts, S: k.symbol, Sd: side,
			V: num(e.qty, 6), P: num(e.price, 2), L: tick,
			I: fmt.Sprintf("%08x-0000-5000-8000-%012x", e.seq>>48, e.seq&0xffffffffffff), Seq: e.seq}}})
	case ChannelBBO:
		// orderbook.1, spot: "ts" before "type", snapshot only [DOC
		// orderbook.mdx]; u (update id) is the counter. The re-sent
		// snapshot after 3 s without change (same u) is not modelled: the
		// fake's book changes on every event.
		return marshal(struct {
			Topic string    `json:"topic"`
			Ts    int64     `json:"ts"`
			Type  string    `json:"type"`
			Data  bybitBook `json:"data"`
			Cts   int64     `json:"cts"`
		}{"orderbook.1." + k.symbol, ts, "snapshot", bybitBook{S: k.symbol,
			B: [][2]string{{num(e.bid, 2), num(e.bidQty, 6)}}, A: [][2]string{{num(e.ask, 2), num(e.askQty, 6)}},
			U: e.seq, Seq: e.seq}, ts})
	}
	return nil
}

func (b *Bybit) announce(c *conn) {}

// Seq reads the counter back from a published Bybit quote: the /data of
// a push (tickers volume24h, orderbook.1 u, publicTrade data[0].seq) or a
// whole push.
func (b *Bybit) Seq(data []byte) (uint64, bool) {
	var list []json.RawMessage
	if json.Unmarshal(data, &list) == nil {
		if len(list) == 0 {
			return 0, false
		}
		return b.Seq(list[0])
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	if inner, ok := m["data"]; ok {
		return b.Seq(inner)
	}
	for _, k := range []string{"u", "seq", "volume24h"} {
		if _, ok := m[k]; ok {
			return uintField(m, k)
		}
	}
	return 0, false
}
