package venuefake

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// OKX v5 public WebSocket. Sources: EXCHANGES.md §2, which cites OKX's
// docs text (okx.com/docs-v5 "Connect", "Subscribe", "Notification",
// error and close-code tables, read again here in stored copies of the
// docs page) [DOC], nautilus_trader fixtures [LIB] and captures [CAP-3P];
// plus a probe of OKJ's copy of the OKX v5 engine (2026-09-23) that
// captured the wire texts of 60012 and the 4004 close [CAP-3P].

// OKXConfig configures the OKX fake. Zero fields are OKX's documented
// values, scaled by Config.TimeScale.
type OKXConfig struct {
	Config
	// Idle: "The connection will break automatically if the subscription
	// is not established or data has not been pushed for more than 30
	// seconds" [DOC "Connect"]. Anything the server sends counts (a pong
	// too): a probe kept an unsubscribed socket open with a ping every 20 s
	// and saw an idle one closed at 30 000 ms [CAP-3P].
	Idle time.Duration
	// OpsLimit per OpsWindow: "The total number of
	// 'subscribe'/'unsubscribe'/'login' requests per connection is limited
	// to 480 times per hour" [DOC "Connect"]. Past it the fake answers
	// 60014 "Requests too frequent" (the reply is not documented).
	OpsLimit  int
	OpsWindow time.Duration
}

// OKX is the OKX v5 public WebSocket fake at /ws/v5/public. Symbols are
// instIds (BTC-USDT). Channels: tickers (ChannelTicker), trades
// (ChannelTrades), bbo-tbt (ChannelBBO). Safe for concurrent use.
type OKX struct {
	*Server
	opsLimit  int
	opsWindow time.Duration
}

type okxConn struct {
	id  string // connId
	ops rateCounter
}

var okxSymbols = []string{"BTC-USDT", "ETH-USDT", "SOL-USDT", "BTC-USDT-SWAP", "ETH-USDT-SWAP"}

// NewOKX returns an OKX fake; serve it with httptest.
func NewOKX(cfg OKXConfig) *OKX {
	o := &OKX{}
	d := scaler(cfg.TimeScale)
	o.opsLimit = cfg.OpsLimit
	if o.opsLimit == 0 {
		o.opsLimit = 480
	}
	o.opsWindow = d(cfg.OpsWindow, time.Hour)
	set := settings{
		path:    "/ws/v5/public",
		symbols: okxSymbols,
		// Tickers: "fastest rate is 1 update/100ms" [DOC via EXCHANGES.md §2.3].
		push: 100 * time.Millisecond,
		// "Connection limit: 3 requests per second (based on IP)" [DOC
		// "Connect"]. The connection-count limit of the docs applies to
		// private channels only ("Orders channel, Account channel, …"):
		// no cap here.
		hsLimit:  3,
		hsWindow: time.Second,
		// 64008: "60 seconds prior to the upgrade, the notification message
		// will be sent" [DOC "Notification"; EXCHANGES.md §2.3 says 30 s].
		grace: 60 * time.Second,
		idle:  d(cfg.Idle, 30*time.Second),
		// Close 4004 "No data received in 30s" [DOC close-code table]; the
		// wire reason ends with a period [CAP-3P probe].
		idleCode:   4004,
		idleReason: "No data received in 30s.",
		// Close 1009 "Request message exceeds the maximum frame length"
		// [DOC close-code table]; "the total length of multiple channels
		// cannot exceed 64 KB" [DOC "Subscribe"].
		readLimit: 64 << 10,
	}
	o.Server = newServer("okx", o, cfg.Config, set)
	return o
}

func (o *OKX) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/ws/v5/public" {
		return nil, http.StatusNotFound, "Not Found"
	}
	return &okxConn{id: fmt.Sprintf("%08x", rand.Uint32()),
		ops: rateCounter{n: o.opsLimit, w: o.opsWindow}}, 0, ""
}

// opened: OKX greets with nothing.
func (o *OKX) opened(c *conn) {}

type okxArg struct {
	Channel string `json:"channel"`
	InstID  string `json:"instId"`
}

// okxEvent is an ack or error, in the field order OKX sends.
type okxEvent struct {
	ID     string  `json:"id,omitempty"`
	Event  string  `json:"event"`
	Arg    *okxArg `json:"arg,omitempty"`
	Msg    *string `json:"msg,omitempty"`
	Code   string  `json:"code,omitempty"`
	ConnID string  `json:"connId"`
}

func (o *OKX) sendError(c *conn, id, code, msg string) {
	c.sendJSON(okxEvent{ID: id, Event: "error", Code: code, Msg: &msg, ConnID: c.state.(*okxConn).id})
}

// okxChannels maps OKX public channel names to the fake's streams; a
// channel that exists but is not modelled is acknowledged and silent.
var okxChannels = map[string]string{
	"tickers": ChannelTicker, "trades": ChannelTrades, "bbo-tbt": ChannelBBO,
	"books": "", "books5": "", "books-elp": "", "instruments": "", "open-interest": "",
	"funding-rate": "", "price-limit": "", "mark-price": "", "index-tickers": "",
}

func (o *OKX) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*okxConn)
	// Keepalive: "send the String 'ping'. Expect a 'pong' as a response"
	// [DOC "Connect"]: bare text, not JSON.
	if string(p) == "ping" {
		c.send([]byte("pong"))
		return
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(p, &raw); err != nil {
		// Text that is not JSON: 60012 "Illegal request: …" with the
		// request's text [CAP-3P probe, §4 "Unknown, closed and wrong
		// symbols"].
		o.sendError(c, "", "60012", "Illegal request: "+string(p))
		return
	}
	var id string
	if v, ok := raw["id"]; ok && json.Unmarshal(v, &id) != nil {
		o.sendError(c, "", "60012", "Invalid request: "+string(p))
		return
	}
	var op string
	_ = json.Unmarshal(raw["op"], &op)
	var args []map[string]json.RawMessage
	okShape := json.Unmarshal(raw["args"], &args) == nil && len(args) > 0
	for k := range raw {
		if k != "id" && k != "op" && k != "args" {
			okShape = false // "argss" in the docs' failure example
		}
	}
	switch {
	case op != "subscribe" && op != "unsubscribe" && op != "login":
		if _, has := raw["op"]; has {
			// 60019 "Invalid op: {op}" [DOC error-code table].
			o.sendError(c, id, "60019", "Invalid op: "+op)
			return
		}
		fallthrough
	case !okShape:
		// 60012 with the request echoed: {"id":"1512","event":"error",
		// "code":"60012","msg":"Invalid request: {\"op\": \"subscribe\",
		// \"argss\":[…]}"} [DOC "Subscribe" failure example].
		o.sendError(c, id, "60012", "Invalid request: "+string(p))
		return
	case op == "login":
		o.sendError(c, id, "60009", "Login failed.")
		return
	}
	c.mu.Lock()
	okRate := st.ops.add(time.Now())
	c.mu.Unlock()
	if !okRate {
		o.sendError(c, id, "60014", "Requests too frequent.")
		return
	}
	for _, a := range args {
		var arg okxArg
		if json.Unmarshal(a["channel"], &arg.Channel) != nil || arg.Channel == "" {
			o.sendError(c, id, "60012", "Invalid request: "+string(p))
			continue
		}
		_ = json.Unmarshal(a["instId"], &arg.InstID)
		canon, known := okxChannels[arg.Channel]
		if !known || !o.Listed(arg.InstID) {
			// 60018, captured: "Wrong URL or channel:tickers,instId:NMR-USDT
			// doesn't exist. Please use the correct URL, channel and
			// parameters referring to API document." [CAP-3P, EXCHANGES.md
			// §2.3]; the socket stays open [CAP-3P probe].
			o.sendError(c, id, "60018", fmt.Sprintf("Wrong URL or channel:%s,instId:%s doesn't exist. Please use the correct URL, channel and parameters referring to API document.", arg.Channel, arg.InstID))
			continue
		}
		k := streamKey{canon, arg.InstID}
		if op == "unsubscribe" && canon != "" {
			o.unsubscribe(c, k)
		}
		// One ack per arg [DOC "Subscribe"/"Unsubscribe" examples; CAP-3P
		// probe: "one ack per arg", each before the first data frame].
		c.sendJSON(okxEvent{ID: id, Event: op, Arg: &arg, ConnID: st.id})
		if op == "subscribe" && canon != "" {
			o.subscribe(c, k, false)
		}
	}
}

// okxPush is a data frame: {"arg":{…},"data":[…]}.
type okxPush struct {
	Arg  okxArg `json:"arg"`
	Data []any  `json:"data"`
}

type okxTicker struct {
	InstType  string `json:"instType"`
	InstID    string `json:"instId"`
	Last      string `json:"last"`
	LastSz    string `json:"lastSz"`
	AskPx     string `json:"askPx"`
	AskSz     string `json:"askSz"`
	BidPx     string `json:"bidPx"`
	BidSz     string `json:"bidSz"`
	Open24h   string `json:"open24h"`
	High24h   string `json:"high24h"`
	Low24h    string `json:"low24h"`
	VolCcy24h string `json:"volCcy24h"`
	Vol24h    string `json:"vol24h"`
	SodUtc0   string `json:"sodUtc0"`
	SodUtc8   string `json:"sodUtc8"`
	Ts        string `json:"ts"`
}

type okxTrade struct {
	InstID  string `json:"instId"`
	TradeID string `json:"tradeId"`
	Px      string `json:"px"`
	Sz      string `json:"sz"`
	Side    string `json:"side"`
	Ts      string `json:"ts"`
	Count   string `json:"count"`
}

type okxBBO struct {
	Asks  [][4]string `json:"asks"`
	Bids  [][4]string `json:"bids"`
	Ts    string      `json:"ts"`
	SeqID uint64      `json:"seqId"`
}

func (o *OKX) render(c *conn, k streamKey, e *event, _ bool) []byte {
	ts := strconv.FormatInt(e.at.UnixMilli(), 10)
	instType := "SPOT"
	if len(k.symbol) > 5 && k.symbol[len(k.symbol)-5:] == "-SWAP" {
		instType = "SWAP"
	}
	var data any
	var channel string
	switch k.channel {
	case ChannelTicker:
		// tickers, field for field as documented [DOC via nautilus
		// ws_tickers.json, EXCHANGES.md §2.3]. The ticker has no counter
		// field (the probe: "Ticker, which carries no anchor field"): the
		// fake's counter is vol24h, a 24 h volume that grows by one per event.
		channel = "tickers"
		data = okxTicker{InstType: instType, InstID: k.symbol, Last: num(e.price, 2),
			LastSz: num(e.qty, 8), AskPx: num(e.ask, 2), AskSz: num(e.askQty, 8),
			BidPx: num(e.bid, 2), BidSz: num(e.bidQty, 8), Open24h: num(e.open, 2),
			High24h: num(e.high, 2), Low24h: num(e.low, 2),
			VolCcy24h: num(float64(e.seq)*e.price, 2), Vol24h: strconv.FormatUint(e.seq, 10),
			SodUtc0: num(e.open, 2), SodUtc8: num(e.open, 2), Ts: ts}
	case ChannelTrades:
		// trades: tradeId is the counter [CAP, EXCHANGES.md §2.3; "count"
		// per current docs].
		channel = "trades"
		side := "sell"
		if e.buy {
			side = "buy"
		}
		data = okxTrade{InstID: k.symbol, TradeID: strconv.FormatUint(e.seq, 10),
			Px: num(e.price, 2), Sz: num(e.qty, 8), Side: side, Ts: ts, Count: "1"}
	case ChannelBBO:
		// bbo-tbt as captured [CAP-3P probe]: seqId is the counter.
		channel = "bbo-tbt"
		data = okxBBO{Asks: [][4]string{{num(e.ask, 2), num(e.askQty, 8), "0", "1"}},
			Bids: [][4]string{{num(e.bid, 2), num(e.bidQty, 8), "0", "1"}}, Ts: ts, SeqID: e.seq}
	default:
		return nil
	}
	return marshal(okxPush{Arg: okxArg{channel, k.symbol}, Data: []any{data}})
}

// announce sends notice 64008 [DOC "Notification"].
func (o *OKX) announce(c *conn) {
	msg := "The connection will soon be closed for a service upgrade. Please reconnect."
	c.sendJSON(okxEvent{Event: "notice", Code: "64008", Msg: &msg, ConnID: c.state.(*okxConn).id})
}

// Seq reads the counter back from a published OKX quote: data[0] of a
// push (bbo-tbt seqId, trades tradeId, tickers vol24h), or the whole push.
func (o *OKX) Seq(data []byte) (uint64, bool) {
	data = firstOf(data)
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	if inner, ok := m["data"]; ok {
		var list []json.RawMessage
		if json.Unmarshal(inner, &list) != nil || len(list) == 0 {
			return 0, false
		}
		return o.Seq(list[0])
	}
	for _, k := range []string{"seqId", "tradeId", "vol24h"} {
		if _, ok := m[k]; ok {
			return uintField(m, k)
		}
	}
	return 0, false
}
