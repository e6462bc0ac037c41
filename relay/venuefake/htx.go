package venuefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// HTX (Huobi) spot market WebSocket. Sources: EXCHANGES.md §6, which cites
// HuobiRDCenter/huobi_Golang (official SDK) [LIB], huobius.readme.io
// "General Information" (the Huobi US copy of the spot docs: heartbeat,
// "invalid ping") [DOC, read again here], tardis-node, cryptofeed and
// crypto-msg-parser [LIB], captures [CAP-3P].

// HTXConfig configures the HTX fake. Zero fields are HTX's documented
// values, scaled by Config.TimeScale.
type HTXConfig struct {
	Config
	// PingPeriod: "The server will send a ping message to the client
	// through the websocket every 5s" [DOC "Heartbeat"].
	PingPeriod time.Duration
	// MissedPings: "If server don't get 'pong' response within two 'ping'
	// period (will be 10s for now) the connection will be closed" [DOC
	// "Heartbeat"]. Default 2.
	MissedPings int
}

// HTX is the HTX spot market fake at /ws. Every server frame is a gzip
// binary message [CAP-3P; LIB SDK, cryptofeed, tardis]. Symbols are
// lowercase (btcusdt). Topics: market.{symbol}.ticker (ChannelTicker),
// market.{symbol}.trade.detail (ChannelTrades), market.{symbol}.bbo
// (ChannelBBO). Safe for concurrent use.
type HTX struct {
	*Server
	ping   time.Duration
	missed int
}

type htxConn struct {
	mu      sync.Mutex
	pending map[int64]bool // pings sent and not answered
	last    int64
}

var htxSymbols = []string{"btcusdt", "ethusdt", "solusdt", "xrpusdt", "htxusdt"}

// NewHTX returns an HTX fake; serve it with httptest.
func NewHTX(cfg HTXConfig) *HTX {
	h := &HTX{}
	h.ping = scaler(cfg.TimeScale)(cfg.PingPeriod, 5*time.Second)
	h.missed = cfg.MissedPings
	if h.missed == 0 {
		h.missed = 2
	}
	set := settings{
		path:    "/ws",
		symbols: htxSymbols,
		// The ticker push rate is not documented (EXCHANGES.md §6.6).
		push: 500 * time.Millisecond,
		// No handshake rate or connection cap is published for the market
		// WebSocket (EXCHANGES.md §6.6; HTX answers 429 at the handshake
		// under load, a 2018 log on pastebin.com/mUd1Mad3). The fake's
		// decision: 10 handshakes per second per IP, no cap.
		hsLimit:  10,
		hsWindow: time.Second,
		// HTX documents no shutdown notice: Announce is a plain close.
		grace: 5 * time.Second,
		gzip:  true,
	}
	h.Server = newServer("htx", h, cfg.Config, set)
	return h
}

func (h *HTX) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/ws" {
		return nil, http.StatusNotFound, "Not Found"
	}
	return &htxConn{pending: map[int64]bool{}}, 0, ""
}

// opened starts the server pings: {"ping":1788335119660} [CAP-3P], each
// to be answered with the same integer within MissedPings periods.
func (h *HTX) opened(c *conn) {
	st := c.state.(*htxConn)
	c.every(h.ping, func() {
		st.mu.Lock()
		ts := max(time.Now().UnixMilli(), st.last+1) // distinct even when scaled
		st.last = ts
		st.pending[ts] = true
		st.mu.Unlock()
		c.send(fmt.Appendf(nil, `{"ping":%d}`, ts))
		c.after(time.Duration(h.missed)*h.ping, func() {
			st.mu.Lock()
			missed := st.pending[ts]
			st.mu.Unlock()
			if missed {
				c.close(websocket.StatusPolicyViolation, "pong timeout")
			}
		})
	})
}

// htxReply is an ack or error; field order as captured.
type htxReply struct {
	ID       string `json:"id,omitempty"`
	Status   string `json:"status"`
	Subbed   string `json:"subbed,omitempty"`
	Unsubbed string `json:"unsubbed,omitempty"`
	Ts       int64  `json:"ts"`
	ErrCode  string `json:"err-code,omitempty"`
	ErrMsg   string `json:"err-msg,omitempty"`
}

func (h *HTX) sendError(c *conn, id, msg string) {
	// {"status":"error","ts":…,"id":"id488","err-code":"bad-request",
	// "err-msg":"invalid symbol lmrusdt"} [CAP-3P].
	c.sendJSON(struct {
		Status  string `json:"status"`
		Ts      int64  `json:"ts"`
		ID      string `json:"id,omitempty"`
		ErrCode string `json:"err-code"`
		ErrMsg  string `json:"err-msg"`
	}{"error", time.Now().UnixMilli(), id, "bad-request", msg})
}

// htxTopic parses market.{symbol}.{kind}.
func htxTopic(topic string) (sym, kind string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "market.")
	if !ok {
		return "", "", false
	}
	sym, kind, ok = strings.Cut(rest, ".")
	return sym, kind, ok && sym != ""
}

func (h *HTX) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*htxConn)
	var req map[string]json.RawMessage
	if json.Unmarshal(p, &req) != nil {
		// Not documented: the fake answers bad-request "invalid json".
		h.sendError(c, "", "invalid json")
		return
	}
	if raw, ok := req["pong"]; ok {
		// The pong must carry the ping's integer [DOC "Heartbeat"]; any
		// other value answers nothing.
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			st.mu.Lock()
			delete(st.pending, n)
			st.mu.Unlock()
		}
		return
	}
	if raw, ok := req["ping"]; ok {
		// A client ping: answered with its integer; a non-integer gets
		// {"ts":…,"status":"error","err-code":"bad-request","err-msg":
		// "invalid ping"} [DOC "Heartbeat"].
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			c.sendJSON(struct {
				Ts      int64  `json:"ts"`
				Status  string `json:"status"`
				ErrCode string `json:"err-code"`
				ErrMsg  string `json:"err-msg"`
			}{time.Now().UnixMilli(), "error", "bad-request", "invalid ping"})
			return
		}
		c.send(fmt.Appendf(nil, `{"pong":%d}`, n))
		return
	}
	var id string
	if raw, ok := req["id"]; ok {
		if json.Unmarshal(raw, &id) != nil {
			id = strings.Trim(string(raw), `"`)
		}
	}
	var topic string
	var sub bool
	if raw, ok := req["sub"]; ok {
		sub = true
		_ = json.Unmarshal(raw, &topic)
	} else if raw, ok := req["unsub"]; ok {
		_ = json.Unmarshal(raw, &topic)
	} else {
		h.sendError(c, id, "invalid request")
		return
	}
	sym, kind, ok := htxTopic(topic)
	var canon string
	switch kind {
	case "ticker":
		canon = ChannelTicker
	case "trade.detail":
		canon = ChannelTrades
	case "bbo":
		canon = ChannelBBO
	case "detail", "depth.step0", "depth.step1", "kline.1min":
		canon = ""
	default:
		ok = false
	}
	if !ok {
		// Not documented: in the style of the symbol error.
		h.sendError(c, id, "invalid topic "+topic)
		return
	}
	if !h.Listed(sym) {
		h.sendError(c, id, "invalid symbol "+sym)
		return
	}
	k := streamKey{canon, sym}
	if !sub {
		if canon != "" {
			h.unsubscribe(c, k)
		}
		// {"id":"id4","status":"ok","unsubbed":…,"ts":…} [LIB SDK].
		c.sendJSON(htxReply{ID: id, Status: "ok", Unsubbed: topic, Ts: time.Now().UnixMilli()})
		return
	}
	// {"id":"1","status":"ok","subbed":"market.btcusdt.trade.detail",
	// "ts":1788335115914} [CAP-3P].
	c.sendJSON(htxReply{ID: id, Status: "ok", Subbed: topic, Ts: time.Now().UnixMilli()})
	if canon != "" {
		h.subscribe(c, k, false)
	}
}

// htxNum prints a number as HTX does: plain, or in Java's exponent form
// for small sizes ("amount":1.8E-4, "lastSize":9.47E-4) [CAP-3P].
func htxNum(v float64) json.Number {
	if v != 0 && v < 1e-3 {
		s := strconv.FormatFloat(v, 'E', 4, 64)
		mant, exp, _ := strings.Cut(s, "E")
		mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
		e, _ := strconv.Atoi(exp)
		return json.Number(mant + "E" + strconv.Itoa(e))
	}
	return json.Number(strconv.FormatFloat(v, 'f', -1, 64))
}

type htxTicker struct {
	Open      json.Number `json:"open"`
	High      json.Number `json:"high"`
	Low       json.Number `json:"low"`
	Close     json.Number `json:"close"`
	Amount    json.Number `json:"amount"`
	Vol       json.Number `json:"vol"`
	Count     uint64      `json:"count"`
	Bid       json.Number `json:"bid"`
	BidSize   json.Number `json:"bidSize"`
	Ask       json.Number `json:"ask"`
	AskSize   json.Number `json:"askSize"`
	LastPrice json.Number `json:"lastPrice"`
	LastSize  json.Number `json:"lastSize"`
}

type htxTrade struct {
	ID         json.Number `json:"id"`
	Ts         int64       `json:"ts"`
	TradeID    uint64      `json:"tradeId"`
	Amount     json.Number `json:"amount"`
	Price      json.Number `json:"price"`
	Direction  string      `json:"direction"`
	IsRpiTrade bool        `json:"isRpiTrade"`
}

type htxBBO struct {
	SeqID     uint64      `json:"seqId"`
	Ask       json.Number `json:"ask"`
	AskSize   json.Number `json:"askSize"`
	Bid       json.Number `json:"bid"`
	BidSize   json.Number `json:"bidSize"`
	QuoteTime int64       `json:"quoteTime"`
	Symbol    string      `json:"symbol"`
}

func round2(v float64) float64 { f, _ := strconv.ParseFloat(num(v, 2), 64); return f }

func (h *HTX) render(c *conn, k streamKey, e *event, _ bool) []byte {
	ms := e.at.UnixMilli()
	var kind string
	var tick any
	switch k.channel {
	case ChannelTicker:
		// Ticker as captured 2023-05 [CAP-3P]; count (number of trades)
		// is the counter. lastSize is small, so in exponent form.
		kind = "ticker"
		tick = htxTicker{Open: htxNum(round2(e.open)), High: htxNum(round2(e.high)), Low: htxNum(round2(e.low)),
			Close: htxNum(round2(e.price)), Amount: htxNum(e.volume), Vol: htxNum(round2(e.volume * e.price)),
			Count: e.seq, Bid: htxNum(round2(e.bid)), BidSize: htxNum(round2(e.bidQty)),
			Ask: htxNum(round2(e.ask)), AskSize: htxNum(round2(e.askQty)),
			LastPrice: htxNum(round2(e.price)), LastSize: htxNum(e.qty / 1000)}
	case ChannelTrades:
		// trade.detail as captured 2026-09-02 [CAP-3P]: data[].id beyond
		// 2^53 (1931506477151671992419320033), tradeId the counter.
		kind = "trade.detail"
		dir := "sell"
		if e.buy {
			dir = "buy"
		}
		tick = struct {
			ID   uint64     `json:"id"`
			Ts   int64      `json:"ts"`
			Data []htxTrade `json:"data"`
		}{193150647715 + e.seq, ms, []htxTrade{{ID: json.Number(fmt.Sprintf("19315064771516719924%08d", e.seq)),
			Ts: ms, TradeID: e.seq, Amount: htxNum(e.qty / 1000), Price: htxNum(round2(e.price)), Direction: dir}}}
	case ChannelBBO:
		// bbo as captured 2022-05-31 [LIB crypto-msg-parser]; seqId the counter.
		kind = "bbo"
		tick = htxBBO{SeqID: e.seq, Ask: htxNum(round2(e.ask)), AskSize: htxNum(round2(e.askQty)),
			Bid: htxNum(round2(e.bid)), BidSize: htxNum(round2(e.bidQty)), QuoteTime: ms, Symbol: k.symbol}
	default:
		return nil
	}
	return marshal(struct {
		Ch   string `json:"ch"`
		Ts   int64  `json:"ts"`
		Tick any    `json:"tick"`
	}{"market." + k.symbol + "." + kind, ms, tick})
}

func (h *HTX) announce(c *conn) {}

// Seq reads the counter back from a published HTX quote: the tick (the
// preset's extract) or the whole frame; trade.detail data[0].tradeId,
// bbo seqId, ticker count.
func (h *HTX) Seq(data []byte) (uint64, bool) {
	data = firstOf(data)
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	if inner, ok := m["tick"]; ok {
		return h.Seq(inner)
	}
	if inner, ok := m["data"]; ok {
		var list []map[string]json.RawMessage
		if json.Unmarshal(inner, &list) != nil || len(list) == 0 {
			return 0, false
		}
		return uintField(list[0], "tradeId")
	}
	for _, f := range []string{"seqId", "count"} {
		if _, ok := m[f]; ok {
			return uintField(m, f)
		}
	}
	return 0, false
}
