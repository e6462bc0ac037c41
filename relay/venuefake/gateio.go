package venuefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Gate.io spot WebSocket v4. Sources: EXCHANGES.md §9, which cites
// gateio/gatews (official SDK) [LIB], the v4 docs' examples as quoted by
// barter-data [DOC quoted], the maintainer's answer in gatews issue #25
// [DOC] and captures [LIB crypto-msg-parser]; a probe report of Gate's
// futures WebSocket v4 (2026-09-15, "Gate WebSocket Profile"), the same
// v4 engine, with the current ack shape (time_ms, conn_id, trace_id,
// payload), the error texts for text that is not JSON and for unknown
// channels, the pong shape and the 30 s cut of a silent socket [CAP-3P].

// GateConfig configures the Gate.io fake. Zero fields are Gate's
// documented or decided values, scaled by Config.TimeScale.
type GateConfig struct {
	Config
	// Silence: no timeout is published. On the futures socket "a socket
	// with no subscription and no client frame closed at 30.47 to 30.54 s
	// … with code 1006 and no close frame"; "a subscription …, an
	// application ping every 25 s, or a protocol ping every 10 s each kept
	// a socket open" [CAP-3P probe]. The fake applies that to spot.
	Silence time.Duration
}

// Gate is the Gate.io spot v4 fake at /ws/v4/. Symbols are currency
// pairs (BTC_USDT). Channels: spot.tickers (ChannelTicker), spot.trades
// (ChannelTrades), spot.book_ticker (ChannelBBO); spot.order_book,
// spot.order_book_update, spot.obu and spot.candlesticks are
// acknowledged and silent. Safe for concurrent use.
type Gate struct {
	*Server
	silence time.Duration
}

type gateConn struct {
	id   string // conn_id
	mu   sync.Mutex
	subs map[string]bool // channel|pair, modelled or not
}

var gateSymbols = []string{"BTC_USDT", "ETH_USDT", "SOL_USDT", "GT_USDT", "ETH_BTC"}

// gateChannels maps the public spot channels onto streams; "" is
// acknowledged and silent.
var gateChannels = map[string]string{
	"spot.tickers": ChannelTicker, "spot.trades": ChannelTrades, "spot.book_ticker": ChannelBBO,
	"spot.order_book": "", "spot.order_book_update": "", "spot.obu": "", "spot.candlesticks": "",
}

// NewGate returns a Gate.io fake; serve it with httptest.
func NewGate(cfg GateConfig) *Gate {
	g := &Gate{}
	g.silence = scaler(cfg.TimeScale)(cfg.Silence, 30*time.Second)
	set := settings{
		path:    "/ws/v4/",
		symbols: gateSymbols,
		// spot.tickers pushes about once a second (not in the stored
		// docs; the fake's choice).
		push: time.Second,
		// "No limit on subscriptions; No limit for message sent; No
		// connections limit for now, but 100 connections at most from one
		// host are recommended" [DOC gatews issue #25, maintainer]. The
		// fake's decision: the recommendation is the cap (429 past 100
		// open connections per IP), and 20 handshakes per second per IP
		// (none is published; twice the preset's dial_rate).
		maxConns: 100,
		hsLimit:  20,
		hsWindow: time.Second,
		// Spot documents no shutdown notice (futures.system "upgrade" is
		// the futures socket's): Announce is a plain close.
		grace: 5 * time.Second,
	}
	g.Server = newServer("gateio", g, cfg.Config, set)
	return g
}

func (g *Gate) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/ws/v4/" {
		return nil, http.StatusNotFound, "Not Found"
	}
	return &gateConn{id: fmt.Sprintf("%016x", rand.Uint64()), subs: map[string]bool{}}, 0, ""
}

func (g *Gate) opened(c *conn) {
	st := c.state.(*gateConn)
	silenceCut(c, g.silence, "silent without subscription", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.subs) > 0
	})
}

// gateReply renders an answer in the current v4 shape: time, time_ms,
// [id,] conn_id, trace_id, channel, event, payload, [error,] result
// [CAP-3P probe: {"time":1789456334,"time_ms":1789456334999,"conn_id":
// "c59a69fd3702aa1d","trace_id":"5597c780565cf57ad16784743225b18b",
// "channel":"futures.obu","event":"subscribe","payload":[…],"result":
// {"status":"success"}}]. id is echoed when the request had one ("id:
// Optional request id which will be sent back by the server") [DOC v4].
func (g *Gate) reply(c *conn, id json.RawMessage, channel, event string, payload json.RawMessage, errCode int, errMsg string) {
	now := time.Now()
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"time":%d,"time_ms":%d`, now.Unix(), now.UnixMilli())
	if len(id) > 0 {
		b.WriteString(`,"id":`)
		b.Write(id)
	}
	fmt.Fprintf(&b, `,"conn_id":%q,"trace_id":"%016x%016x","channel":%s,"event":%s`,
		c.state.(*gateConn).id, rand.Uint64(), rand.Uint64(), marshal(channel), marshal(event))
	if len(payload) > 0 {
		b.WriteString(`,"payload":`)
		_ = json.Compact(&b, payload)
	}
	if errCode != 0 {
		// {"error":{"code":2,"message":"unknown currency pair
		// GIBBERISH_USD"},"result":null} [DOC example, quoted by
		// barter-data; EXCHANGES.md §9.3].
		fmt.Fprintf(&b, `,"error":{"code":%d,"message":%s},"result":null}`, errCode, marshal(errMsg))
	} else {
		b.WriteString(`,"result":{"status":"success"}}`)
	}
	c.send(b.Bytes())
}

func (g *Gate) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*gateConn)
	var req map[string]json.RawMessage
	if json.Unmarshal(p, &req) != nil {
		// "text that is not JSON: code 1 request message need json
		// scheme", the socket stays open [CAP-3P probe].
		g.reply(c, nil, "", "", nil, 1, "request message need json scheme")
		return
	}
	var channel, ev string
	var id json.RawMessage
	if v, ok := req["id"]; ok {
		var n int64
		if json.Unmarshal(v, &n) == nil {
			id = v
		}
	}
	_ = json.Unmarshal(req["channel"], &channel)
	_ = json.Unmarshal(req["event"], &ev)
	if channel == "spot.ping" {
		// {"time":…,"channel":"spot.ping"} → {"time":…,"time_ms":…,
		// "conn_id":…,"channel":"spot.pong","event":"","result":null}
		// [LIB gatews; CAP-3P probe, futures.pong].
		now := time.Now()
		var b bytes.Buffer
		fmt.Fprintf(&b, `{"time":%d,"time_ms":%d`, now.Unix(), now.UnixMilli())
		if len(id) > 0 {
			b.WriteString(`,"id":`)
			b.Write(id)
		}
		fmt.Fprintf(&b, `,"conn_id":%q,"channel":"spot.pong","event":"","result":null}`, st.id)
		c.send(b.Bytes())
		return
	}
	canon, known := gateChannels[channel]
	if !known {
		// "unknown channel futures.nope: code 2 Unknown channel
		// futures.nope" [CAP-3P probe].
		g.reply(c, id, channel, ev, req["payload"], 2, "Unknown channel "+channel)
		return
	}
	if ev != "subscribe" && ev != "unsubscribe" {
		// Not documented: code 2 (invalid argument) naming the event.
		g.reply(c, id, channel, ev, req["payload"], 2, "Unknown event "+ev)
		return
	}
	var pairs []string
	if json.Unmarshal(req["payload"], &pairs) != nil || len(pairs) == 0 {
		// Code 2 "invalid argument" [DOC error codes as quoted by the
		// probe]; the wire text is not probed.
		g.reply(c, id, channel, ev, req["payload"], 2, "invalid argument")
		return
	}
	// The first element is the pair on every public spot channel (the
	// others take interval or level arguments after it) [DOC v4].
	check := pairs
	if canon == "" {
		check = pairs[:1]
	}
	for _, pair := range check {
		if !g.Listed(pair) {
			// "unknown currency pair GIBBERISH_USD" [DOC example]; the whole
			// request is refused (not probed).
			g.reply(c, id, channel, ev, req["payload"], 2, "unknown currency pair "+pair)
			return
		}
	}
	var keys []streamKey
	st.mu.Lock()
	for _, pair := range check {
		if ev == "subscribe" {
			st.subs[channel+"|"+pair] = true
		} else {
			delete(st.subs, channel+"|"+pair)
		}
		if canon != "" {
			keys = append(keys, streamKey{canon, pair})
		}
	}
	st.mu.Unlock()
	if ev == "unsubscribe" {
		for _, k := range keys {
			g.unsubscribe(c, k)
		}
	}
	// One ack for the whole payload [CAP-3P probe: "four streams in one
	// payload array got one ack covering all four"].
	g.reply(c, id, channel, ev, req["payload"], 0, "")
	if ev == "subscribe" {
		for _, k := range keys {
			g.subscribe(c, k, false)
		}
	}
}

type gateTicker struct {
	CurrencyPair     string `json:"currency_pair"`
	Last             string `json:"last"`
	LowestAsk        string `json:"lowest_ask"`
	HighestBid       string `json:"highest_bid"`
	ChangePercentage string `json:"change_percentage"`
	BaseVolume       string `json:"base_volume"`
	QuoteVolume      string `json:"quote_volume"`
	High24h          string `json:"high_24h"`
	Low24h           string `json:"low_24h"`
}

type gateTrade struct {
	ID           uint64 `json:"id"`
	CreateTime   int64  `json:"create_time"`
	CreateTimeMs string `json:"create_time_ms"`
	Side         string `json:"side"`
	CurrencyPair string `json:"currency_pair"`
	Amount       string `json:"amount"`
	Price        string `json:"price"`
}

type gateBookTicker struct {
	T int64  `json:"t"`
	U uint64 `json:"u"`
	S string `json:"s"`
	B string `json:"b"`
	Q string `json:"B"`
	A string `json:"a"`
	R string `json:"A"`
}

func (g *Gate) render(c *conn, k streamKey, e *event, _ bool) []byte {
	var channel string
	var result any
	switch k.channel {
	case ChannelTicker:
		// As captured 2022-06-02 [LIB crypto-msg-parser; EXCHANGES.md
		// §9.3]. The ticker has no counter: base_volume, a 24 h volume
		// that grows by one per event, carries it.
		channel = "spot.tickers"
		result = gateTicker{CurrencyPair: k.symbol, Last: num(e.price, 2), LowestAsk: num(e.ask, 2),
			HighestBid: num(e.bid, 2), ChangePercentage: num((e.price-e.open)/e.open*100, 4),
			BaseVolume: strconv.FormatUint(e.seq, 10), QuoteVolume: num(float64(e.seq)*e.price, 6),
			High24h: num(e.high, 2), Low24h: num(e.low, 2)}
	case ChannelTrades:
		// As captured 2021-09-16 [LIB crypto-msg-parser]; id is the
		// counter.
		channel = "spot.trades"
		side := "sell"
		if e.buy {
			side = "buy"
		}
		ms := fmt.Sprintf("%d.%03d", e.at.UnixMilli(), e.at.Nanosecond()/1000%1000)
		result = gateTrade{ID: e.seq, CreateTime: e.at.Unix(), CreateTimeMs: ms, Side: side,
			CurrencyPair: k.symbol, Amount: num(e.qty, 5), Price: num(e.price, 2)}
	case ChannelBBO:
		// As captured 2022-05-31 [LIB crypto-msg-parser]; u, the order
		// book update id, is the counter.
		channel = "spot.book_ticker"
		result = gateBookTicker{T: e.at.UnixMilli(), U: e.seq, S: k.symbol, B: num(e.bid, 2),
			Q: num(e.bidQty, 4), A: num(e.ask, 2), R: num(e.askQty, 4)}
	default:
		return nil
	}
	return marshal(struct {
		Time    int64  `json:"time"`
		TimeMs  int64  `json:"time_ms"`
		Channel string `json:"channel"`
		Event   string `json:"event"`
		Result  any    `json:"result"`
	}{e.at.Unix(), e.at.UnixMilli(), channel, "update", result})
}

// announce: no shutdown notice is documented for spot; a plain close.
func (g *Gate) announce(c *conn) {}

// Seq reads the counter back from a published Gate quote: the result
// (the preset's extract) or a whole update; book_ticker u, trades id,
// tickers base_volume.
func (g *Gate) Seq(data []byte) (uint64, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	if inner, ok := m["result"]; ok {
		return g.Seq(inner)
	}
	for _, f := range []string{"u", "id", "base_volume"} {
		if _, ok := m[f]; ok {
			return uintField(m, f)
		}
	}
	return 0, false
}
