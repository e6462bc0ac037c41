package venuefake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Binance spot market streams. Sources: EXCHANGES.md §1, which cites
// binance/binance-spot-api-docs web-socket-streams.md [DOC] (read again
// here at commit a5e0bc3, 2026-07-21); frames as captured there.

// BinanceConfig configures the Binance fake. Zero fields are Binance's
// documented values, scaled by Config.TimeScale.
type BinanceConfig struct {
	Config
	// PingPeriod: "The WebSocket server will send a ping frame every 20
	// seconds" [DOC web-socket-streams.md "General WSS information"].
	PingPeriod time.Duration
	// PongDeadline: "If the WebSocket server does not receive a pong frame
	// back from the connection within a minute the connection will be
	// disconnected" [DOC ibid.].
	PongDeadline time.Duration
	// MaxAge: "A single connection to stream.binance.com is only valid for
	// 24 hours; expect to be disconnected at the 24 hour mark" [DOC ibid.].
	MaxAge time.Duration
	// MessageLimit per MessageWindow: "WebSocket connections have a limit
	// of 5 incoming messages per second. A message is considered: A PING
	// frame, A PONG frame, A JSON controlled message" [DOC "WebSocket
	// Limits"]. Defaults 5 per 1 s (the window is scaled).
	MessageLimit  int
	MessageWindow time.Duration
}

// Binance is the Binance spot market-stream fake. Symbols are listed in
// Binance's spelling (BTCUSDT); streams are named in lowercase
// (btcusdt@ticker). Paths: /ws (raw payloads, subscribe with SUBSCRIBE),
// /ws/<stream> (raw, subscribed at connect), /stream?streams=a/b
// (combined payloads {"stream":…,"data":…}). Safe for concurrent use.
type Binance struct {
	*Server
}

// binanceConn is a connection's state: whether payloads are combined
// (SET_PROPERTY can change it).
type binanceConn struct {
	combined atomic.Bool
	mu       sync.Mutex
	streams  []string // subscribed stream names, in order, for LIST_SUBSCRIPTIONS
}

// Default listed symbols of the Binance fake.
var binanceSymbols = []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"}

// NewBinance returns a Binance fake; serve it with httptest.
func NewBinance(cfg BinanceConfig) *Binance {
	b := &Binance{}
	d := scaler(cfg.TimeScale)
	limit := cfg.MessageLimit
	if limit == 0 {
		limit = 5
	}
	set := settings{
		path:    "/ws",
		symbols: binanceSymbols,
		// @ticker is "1000ms" [DOC "Individual Symbol Ticker Streams"];
		// the fake pushes every stream at one interval.
		push: time.Second,
		// "There is a limit of 300 connections per attempt every 5 minutes
		// per IP" [DOC "WebSocket Limits"]. No cap on open connections is
		// documented for market streams: none here.
		hsLimit:  300,
		hsWindow: 5 * time.Minute,
		// The grace between serverShutdown and the disconnect is not
		// documented ("sent when the server is about to shut down,
		// resulting in disconnection" [DOC "Server Shutdown"]): 10 s here.
		grace:          10 * time.Second,
		wsPing:         d(cfg.PingPeriod, 20*time.Second),
		wsPongDeadline: d(cfg.PongDeadline, time.Minute),
		maxAge:         d(cfg.MaxAge, 24*time.Hour),
		inLimit:        limit,
		inWindow:       d(cfg.MessageWindow, time.Second),
		inControl:      true,
		// The close code past the message limit is not in Binance's docs;
		// nautilus documents 1008 "Too many requests" [LIB, EXCHANGES.md §1.6].
		inCode:   websocket.StatusPolicyViolation,
		inReason: "Too many requests",
	}
	b.Server = newServer("binance", b, cfg.Config, set)
	return b
}

// binanceStreamRE is a stream name: lowercase symbol, @, a stream type.
var binanceStreamRE = regexp.MustCompile(`^([a-z0-9]+)@(ticker|trade|bookTicker|aggTrade|miniTicker|avgPrice|depth|depth@100ms|depth(5|10|20)(@100ms)?|kline_(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)|ticker_(1h|4h|1d))$`)

// streamKey maps a valid stream name to the fake's stream, or reports
// that it carries no data (a type the fake does not push, a symbol in the
// wrong case or not listed: Binance accepts those silently and sends
// nothing, see message).
func (b *Binance) streamKey(name string) (streamKey, bool) {
	m := binanceStreamRE.FindStringSubmatch(name)
	if m == nil {
		return streamKey{}, false
	}
	sym := strings.ToUpper(m[1])
	if !b.Listed(sym) {
		return streamKey{}, false
	}
	switch m[2] {
	case "ticker":
		return streamKey{ChannelTicker, sym}, true
	case "trade":
		return streamKey{ChannelTrades, sym}, true
	case "bookTicker":
		return streamKey{ChannelBBO, sym}, true
	}
	return streamKey{}, false
}

func (b *Binance) handshake(r *http.Request) (any, int, string) {
	st := &binanceConn{}
	switch {
	case r.URL.Path == "/ws":
	case strings.HasPrefix(r.URL.Path, "/ws/"):
		st.streams = []string{strings.TrimPrefix(r.URL.Path, "/ws/")}
	case r.URL.Path == "/stream" || r.URL.Path == "/stream/":
		st.combined.Store(true)
		if s := r.URL.Query().Get("streams"); s != "" {
			st.streams = strings.Split(s, "/")
		}
	default:
		return nil, http.StatusNotFound, "Not Found"
	}
	return st, 0, ""
}

func (b *Binance) opened(c *conn) {
	st := c.state.(*binanceConn)
	// Streams named in the URL are subscribed at connect; an unknown one
	// connects and sends nothing (Binance.Net issue #620: "It doesn't return
	// an error if you try to subscribe…" for /stream?streams=xrpxrp@miniTicker).
	for _, name := range st.streams {
		if k, ok := b.streamKey(name); ok {
			b.subscribe(c, k, false)
		}
	}
}

// binanceError is Binance's error reply: the documented {"code","msg"}
// body nested under "error" on the wire [CAP-3P, EXCHANGES.md §1.3].
type binanceError struct {
	Error struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"error"`
	ID json.RawMessage `json:"id"`
}

func (b *Binance) sendError(c *conn, code int, msg string, id json.RawMessage) {
	var e binanceError
	e.Error.Code, e.Error.Msg = code, msg
	e.ID = id
	if e.ID == nil {
		e.ID = json.RawMessage("null")
	}
	c.sendJSON(e)
}

// binanceMethods is the message of an unknown method [DOC "Error Messages"].
const binanceMethods = "expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"

func (b *Binance) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*binanceConn)
	col := len(bytes.TrimRight(p, " \r\n\t"))
	// {"code":3,"msg":"Invalid JSON: expected value at line %s column %s"}
	// [DOC "Error Messages"].
	if err := json.Unmarshal(p, new(any)); err != nil {
		at := 1
		var se *json.SyntaxError
		if errors.As(err, &se) {
			at = int(se.Offset)
		}
		b.sendError(c, 3, fmt.Sprintf("Invalid JSON: expected value at line 1 column %d", at), nil)
		return
	}
	var req struct {
		Method *string          `json:"method"`
		Params *json.RawMessage `json:"params"`
	}
	var obj map[string]json.RawMessage
	isObj := json.Unmarshal(p, &obj) == nil && obj != nil
	if isObj {
		_ = json.Unmarshal(p, &req)
	}
	if !isObj || req.Method == nil {
		b.sendError(c, 2, fmt.Sprintf("Invalid request: missing field `method` at line 1 column %d", col), nil)
		return
	}
	// "The id … formats are accepted: 64-bit signed integer, alphanumeric
	// strings; max length 36, null" [DOC "Live Subscribing"]; otherwise
	// {"code": 2, "msg": "Invalid request: request ID must be an unsigned
	// integer"} [DOC "Error Messages"].
	idVal, present := obj["id"]
	id, okID := binanceID(idVal, present)
	if !okID {
		b.sendError(c, 2, "Invalid request: request ID must be an unsigned integer", nil)
		return
	}
	switch *req.Method {
	case "SUBSCRIBE", "UNSUBSCRIBE":
		var names []string
		if req.Params == nil || json.Unmarshal(*req.Params, &names) != nil {
			// Captured wire text for a bad stream [CAP-3P, EXCHANGES.md §1.3];
			// the reply to missing params is not documented: the same.
			b.sendError(c, 2, "Invalid request: invalid stream", id)
			return
		}
		for _, n := range names {
			// The symbol's case does not make a stream invalid (an
			// uppercase one is accepted and silent); the stream type's
			// does: bookTicker is camel case in the docs.
			sym, typ, _ := strings.Cut(n, "@")
			if !binanceStreamRE.MatchString(strings.ToLower(sym) + "@" + typ) {
				b.sendError(c, 2, "Invalid request: invalid stream", id)
				return
			}
		}
		// Ack {"result": null, "id": 1} [DOC "Subscribe to a stream"]. A
		// well-formed stream of a symbol Binance does not list is accepted
		// silently and sends nothing (Binance.Net issue #620; spot-api-docs
		// issue #14: "{"id":1,"result":null}" then no data). An unsubscribe
		// takes effect before its ack, a subscribe after it (so the ack
		// precedes the data).
		sub := *req.Method == "SUBSCRIBE"
		if !sub {
			b.apply(c, st, names, false)
		}
		c.sendJSON(struct {
			Result json.RawMessage `json:"result"`
			ID     json.RawMessage `json:"id"`
		}{json.RawMessage("null"), id})
		if sub {
			b.apply(c, st, names, true)
		}
	case "LIST_SUBSCRIPTIONS":
		st.mu.Lock()
		list := append([]string{}, st.streams...)
		st.mu.Unlock()
		c.sendJSON(struct {
			Result []string        `json:"result"`
			ID     json.RawMessage `json:"id"`
		}{list, id})
	case "SET_PROPERTY", "GET_PROPERTY":
		var params []any
		if req.Params == nil || json.Unmarshal(*req.Params, &params) != nil || len(params) == 0 {
			b.sendError(c, 2, "Invalid request: property name must be a string", id)
			return
		}
		name, ok := params[0].(string)
		if !ok {
			b.sendError(c, 2, "Invalid request: property name must be a string", id)
			return
		}
		if name != "combined" {
			b.sendError(c, 0, "Unknown property", id)
			return
		}
		if *req.Method == "GET_PROPERTY" {
			c.sendJSON(struct {
				Result bool            `json:"result"`
				ID     json.RawMessage `json:"id"`
			}{st.combined.Load(), id})
			return
		}
		v, ok := paramBool(params)
		if !ok {
			b.sendError(c, 1, "Invalid value type: expected Boolean", id)
			return
		}
		st.combined.Store(v)
		c.sendJSON(struct {
			Result json.RawMessage `json:"result"`
			ID     json.RawMessage `json:"id"`
		}{json.RawMessage("null"), id})
	default:
		b.sendError(c, 2, fmt.Sprintf("Invalid request: unknown variant `%s`, %s at line 1 column %d", *req.Method, binanceMethods, col), nil)
	}
}

// apply subscribes or unsubscribes c to the named streams.
func (b *Binance) apply(c *conn, st *binanceConn, names []string, sub bool) {
	for _, n := range names {
		st.mu.Lock()
		if sub {
			if !contains(st.streams, n) {
				st.streams = append(st.streams, n)
			}
		} else {
			st.streams = remove(st.streams, n)
		}
		st.mu.Unlock()
		k, data := b.streamKey(n)
		switch {
		case !data:
		case sub:
			b.subscribe(c, k, false)
		default:
			b.unsubscribe(c, k)
		}
	}
}

func paramBool(params []any) (bool, bool) {
	if len(params) != 2 {
		return false, false
	}
	v, ok := params[1].(bool)
	return v, ok
}

// binanceID validates a request id (raw JSON) and returns it as the raw
// JSON of the reply: an int64, an alphanumeric string of at most 36
// characters, or null.
func binanceID(raw json.RawMessage, present bool) (json.RawMessage, bool) {
	if !present {
		return nil, false
	}
	t := string(raw)
	switch {
	case t == "null":
		return raw, true
	case strings.HasPrefix(t, `"`):
		var x string
		if json.Unmarshal(raw, &x) != nil || len(x) == 0 || len(x) > 36 {
			return nil, false
		}
		for _, r := range x {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return nil, false
			}
		}
		return raw, true
	}
	if _, err := strconv.ParseInt(t, 10, 64); err != nil {
		return nil, false
	}
	return raw, true
}

func (b *Binance) render(c *conn, k streamKey, e *event, _ bool) []byte {
	st := c.state.(*binanceConn)
	ms := e.at.UnixMilli()
	var data any
	var stream string
	lower := strings.ToLower(k.symbol)
	switch k.channel {
	case ChannelTicker:
		// 24hrTicker, field for field as documented [DOC "Individual
		// Symbol Ticker Streams"]; the counter is L (last trade id), with
		// F = 1 so n (number of trades) = L.
		stream = lower + "@ticker"
		data = binanceTicker{
			E: "24hrTicker", ET: ms, S: k.symbol,
			P: num(e.price-e.open, 8), PP: num((e.price-e.open)/e.open*100, 3),
			W: num((e.high+e.low)/2, 8), X: num(e.open, 8), C: num(e.price, 8),
			Q: num(e.qty, 8), B: num(e.bid, 8), BQ: num(e.bidQty, 8),
			A: num(e.ask, 8), AQ: num(e.askQty, 8), O: num(e.open, 8),
			H: num(e.high, 8), L: num(e.low, 8), V: num(e.volume, 8),
			QV: num(e.volume*e.price, 8), OT: ms - 86400000, CT: ms,
			F: 1, LT: e.seq, N: e.seq,
		}
	case ChannelTrades:
		// Trade stream as captured 2026 (no b/a since 2024-06-18)
		// [CAP-3P, EXCHANGES.md §1.3]; the counter is t.
		stream = lower + "@trade"
		data = binanceTrade{E: "trade", ET: ms, S: k.symbol, T: e.seq,
			P: num(e.price, 8), Q: num(e.qty, 8), TT: ms, M: !e.buy, MM: true}
	case ChannelBBO:
		// Spot bookTicker has no e/E [CAP-3P, EXCHANGES.md §1.3]; the
		// counter is u (order book update id).
		stream = lower + "@bookTicker"
		data = binanceBook{U: e.seq, S: k.symbol, B: num(e.bid, 8), BQ: num(e.bidQty, 8),
			A: num(e.ask, 8), AQ: num(e.askQty, 8)}
	default:
		return nil
	}
	if st.combined.Load() {
		return marshal(struct {
			Stream string `json:"stream"`
			Data   any    `json:"data"`
		}{stream, data})
	}
	return marshal(data)
}

type binanceTicker struct {
	E  string `json:"e"`
	ET int64  `json:"E"`
	S  string `json:"s"`
	P  string `json:"p"`
	PP string `json:"P"`
	W  string `json:"w"`
	X  string `json:"x"`
	C  string `json:"c"`
	Q  string `json:"Q"`
	B  string `json:"b"`
	BQ string `json:"B"`
	A  string `json:"a"`
	AQ string `json:"A"`
	O  string `json:"o"`
	H  string `json:"h"`
	L  string `json:"l"`
	V  string `json:"v"`
	QV string `json:"q"`
	OT int64  `json:"O"`
	CT int64  `json:"C"`
	F  uint64 `json:"F"`
	LT uint64 `json:"L"`
	N  uint64 `json:"n"`
}

type binanceTrade struct {
	E  string `json:"e"`
	ET int64  `json:"E"`
	S  string `json:"s"`
	T  uint64 `json:"t"`
	P  string `json:"p"`
	Q  string `json:"q"`
	TT int64  `json:"T"`
	M  bool   `json:"m"`
	MM bool   `json:"M"`
}

type binanceBook struct {
	U  uint64 `json:"u"`
	S  string `json:"s"`
	B  string `json:"b"`
	BQ string `json:"B"`
	A  string `json:"a"`
	AQ string `json:"A"`
}

// announce sends serverShutdown, raw or combined [DOC "Server Shutdown"].
func (b *Binance) announce(c *conn) {
	ev := struct {
		E  string `json:"e"`
		ET int64  `json:"E"`
	}{"serverShutdown", time.Now().UnixMilli()}
	if c.state.(*binanceConn).combined.Load() {
		c.send(marshal(struct {
			Stream string `json:"stream"`
			Data   any    `json:"data"`
		}{"!serverShutdown", ev}))
		return
	}
	c.send(marshal(ev))
}

// Seq reads the stream counter back from a published payload: a raw
// 24hrTicker (L), trade (t) or bookTicker (u), or any of them wrapped in
// a combined {"stream","data"} frame.
func (b *Binance) Seq(data []byte) (uint64, bool) {
	data = firstOf(data)
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	if inner, ok := m["data"]; ok {
		return b.Seq(inner)
	}
	var e string
	_ = json.Unmarshal(m["e"], &e)
	switch e {
	case "24hrTicker":
		return uintField(m, "L")
	case "trade":
		return uintField(m, "t")
	case "":
		return uintField(m, "u")
	}
	return 0, false
}
