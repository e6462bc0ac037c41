package venuefake

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Kraken Spot WebSocket v2. Sources: EXCHANGES.md §5, which cites
// docs.kraken.com/exchange/api-reference/spot-websocket-v2/{ticker,trade,
// ping,heartbeat} [DOC] and captures [CAP-3P]; the connection rules of
// docs.kraken.com/api/docs/guides/spot-ws-intro, quoted verbatim in a
// public design note and in Kraken's older WebSocket docs ("Cloudflare
// imposes a connection/re-connection rate limit … of approximately 150
// attempts per rolling 10 minutes. If this is exceeded, the IP is banned
// for 10 minutes"; "The server closes any open websocket connection
// within approximately one minute of inactivity") [DOC quoted]; the
// malformed-request reply from rustrade-data's Kraken module [LIB].

// KrakenConfig configures the Kraken fake. Zero fields are Kraken's
// documented values, scaled by Config.TimeScale.
type KrakenConfig struct {
	Config
	// Idle: "The server closes any open websocket connection within
	// approximately one minute of inactivity"; "Any, for example a ping,
	// request can be used to keep the connection alive" [DOC quoted]. The
	// fake counts what the server sends (a pong, the heartbeat channel,
	// data): a subscribed socket is kept alive by the heartbeats.
	Idle time.Duration
	// Heartbeat: {"channel":"heartbeat"} "approximately once every second
	// in the absence of any other channel updates", after subscribing to
	// any channel [DOC heartbeat].
	Heartbeat time.Duration
}

// Kraken is the Kraken v2 fake at /v2. Symbols are Kraken's v2 pairs
// (BTC/USD). Channels: ticker (ChannelTicker; with event_trigger bbo,
// ChannelBBO) and trade (ChannelTrades). Safe for concurrent use.
type Kraken struct {
	*Server
	heartbeat time.Duration
}

type krakenConn struct {
	id uint64 // connection_id of the status frame
	mu sync.Mutex
	// triggers remembers the ticker streams a symbol is subscribed with.
	triggers map[string][]string
}

var krakenSymbols = []string{"BTC/USD", "ETH/USD", "SOL/USD", "BTC/EUR", "ETH/BTC"}

// NewKraken returns a Kraken fake; serve it with httptest.
func NewKraken(cfg KrakenConfig) *Kraken {
	k := &Kraken{}
	d := scaler(cfg.TimeScale)
	k.heartbeat = d(cfg.Heartbeat, time.Second)
	set := settings{
		path:    "/v2",
		symbols: krakenSymbols,
		push:    500 * time.Millisecond,
		// ~150 handshakes per rolling 10 minutes per IP, then a 10 minute
		// ban [DOC quoted above]. No cap on open connections is documented.
		hsLimit:  150,
		hsWindow: 10 * time.Minute,
		hsBan:    10 * time.Minute,
		// Announce sends a status update with system "maintenance"; the
		// lead time Kraken gives is not documented.
		grace: 5 * time.Second,
		idle:  d(cfg.Idle, time.Minute),
	}
	k.Server = newServer("kraken", k, cfg.Config, set)
	return k
}

func (k *Kraken) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/v2" {
		return nil, http.StatusNotFound, "Not Found"
	}
	return &krakenConn{id: rand.Uint64() >> 1, triggers: map[string][]string{}}, 0, ""
}

// krakenTime is the time_in/time_out format (RFC 3339, µs).
func krakenTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// opened sends the status frame [CAP-3P: {"channel":"status","type":
// "update","data":[{"version":"2.0.10","system":"online","api_version":
// "v2","connection_id":…}]}] and starts the heartbeat.
func (k *Kraken) opened(c *conn) {
	k.status(c, "online")
	c.every(k.heartbeat, func() {
		if !c.hasSubscribed() {
			return
		}
		if time.Since(time.Unix(0, c.lastOut.Load())) >= k.heartbeat {
			c.send([]byte(`{"channel":"heartbeat"}`))
		}
	})
}

func (k *Kraken) status(c *conn, system string) {
	type status struct {
		Version      string `json:"version"`
		System       string `json:"system"`
		APIVersion   string `json:"api_version"`
		ConnectionID uint64 `json:"connection_id"`
	}
	c.sendJSON(struct {
		Channel string   `json:"channel"`
		Type    string   `json:"type"`
		Data    []status `json:"data"`
	}{"status", "update", []status{{"2.0.10", system, "v2", c.state.(*krakenConn).id}}})
}

// krakenReply is an ack, error or pong.
type krakenReply struct {
	Error   string          `json:"error,omitempty"`
	Method  string          `json:"method"`
	Result  json.RawMessage `json:"result,omitempty"`
	Success *bool           `json:"success,omitempty"`
	Symbol  string          `json:"symbol,omitempty"`
	TimeIn  string          `json:"time_in"`
	TimeOut string          `json:"time_out"`
	ReqID   *int64          `json:"req_id,omitempty"`
}

func (k *Kraken) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*krakenConn)
	in := time.Now()
	var req struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
		ReqID  *int64          `json:"req_id"`
	}
	no := false
	if json.Unmarshal(p, &req) != nil || (req.Method != "ping" && req.Method != "subscribe" && req.Method != "unsubscribe") {
		// {"error":"Malformed request","method":"error",…} [LIB rustrade-data
		// kraken/subscription.rs].
		c.sendJSON(krakenReply{Error: "Malformed request", Method: "error", Success: &no,
			TimeIn: krakenTime(in), TimeOut: krakenTime(time.Now())})
		return
	}
	if req.Method == "ping" {
		// {"method":"pong","req_id":…,"time_in":…,"time_out":…} [DOC ping;
		// LIB nautilus ws_pong.json].
		c.sendJSON(krakenReply{Method: "pong", ReqID: req.ReqID, TimeIn: krakenTime(in), TimeOut: krakenTime(time.Now())})
		return
	}
	var params struct {
		Channel      string   `json:"channel"`
		Symbol       []string `json:"symbol"`
		EventTrigger *string  `json:"event_trigger"`
		Snapshot     *bool    `json:"snapshot"`
	}
	bad := json.Unmarshal(req.Params, &params) != nil || params.Channel == "" || len(params.Symbol) == 0
	trigger := "trades"
	if params.EventTrigger != nil {
		trigger = *params.EventTrigger
		// event_trigger: "bbo" or "trades" (default) [DOC ticker].
		bad = bad || params.Channel != "ticker" || (trigger != "bbo" && trigger != "trades")
	}
	if bad {
		// The exact text for bad params is not documented.
		c.sendJSON(krakenReply{Error: "Malformed request", Method: req.Method, Success: &no, ReqID: req.ReqID,
			TimeIn: krakenTime(in), TimeOut: krakenTime(time.Now())})
		return
	}
	snapshot := params.Snapshot == nil || *params.Snapshot // default true [DOC]
	for _, sym := range params.Symbol {
		var canon string
		switch params.Channel {
		case "ticker":
			canon = ChannelTicker
			if trigger == "bbo" {
				canon = ChannelBBO
			}
		case "trade":
			canon = ChannelTrades
		case "book", "ohlc", "instrument", "level3":
			canon = ""
		default:
			// Not documented; in the style of the pair error below.
			c.sendJSON(krakenReply{Error: "Channel not supported " + params.Channel, Method: req.Method, Success: &no,
				Symbol: sym, ReqID: req.ReqID, TimeIn: krakenTime(in), TimeOut: krakenTime(time.Now())})
			continue
		}
		if !k.Listed(sym) {
			// {"error":"Currency pair not supported XBT/USD","method":
			// "subscribe","success":false,"symbol":"XBT/USD",…} [CAP-3P].
			c.sendJSON(krakenReply{Error: "Currency pair not supported " + sym, Method: req.Method, Success: &no,
				Symbol: sym, ReqID: req.ReqID, TimeIn: krakenTime(in), TimeOut: krakenTime(time.Now())})
			continue
		}
		// One ack per symbol [CAP-3P; LIB nautilus ws_subscribe_response.json].
		var result any
		if params.Channel == "ticker" {
			result = struct {
				Channel      string `json:"channel"`
				EventTrigger string `json:"event_trigger"`
				Snapshot     bool   `json:"snapshot"`
				Symbol       string `json:"symbol"`
			}{"ticker", trigger, snapshot, sym}
		} else {
			result = struct {
				Channel  string `json:"channel"`
				Snapshot bool   `json:"snapshot"`
				Symbol   string `json:"symbol"`
			}{params.Channel, snapshot, sym}
		}
		yes := true
		if req.Method == "unsubscribe" {
			for _, ch := range k.unsubStreams(st, params.Channel, params.EventTrigger, sym) {
				k.unsubscribe(c, streamKey{ch, sym})
			}
		}
		c.sendJSON(krakenReply{Method: req.Method, Result: marshal(result), Success: &yes, ReqID: req.ReqID,
			TimeIn: krakenTime(in), TimeOut: krakenTime(time.Now())})
		if req.Method == "subscribe" {
			c.markSubscribed()
			if canon != "" {
				st.mu.Lock()
				if params.Channel == "ticker" && !contains(st.triggers[sym], canon) {
					st.triggers[sym] = append(st.triggers[sym], canon)
				}
				st.mu.Unlock()
				k.subscribe(c, streamKey{canon, sym}, snapshot)
			}
		}
	}
}

// unsubStreams names the streams an unsubscribe ends: for the ticker,
// the one of the given event_trigger or, without one, every trigger the
// symbol was subscribed with.
func (k *Kraken) unsubStreams(st *krakenConn, channel string, trigger *string, sym string) []string {
	switch channel {
	case "trade":
		return []string{ChannelTrades}
	case "ticker":
		st.mu.Lock()
		defer st.mu.Unlock()
		if trigger != nil {
			ch := ChannelTicker
			if *trigger == "bbo" {
				ch = ChannelBBO
			}
			st.triggers[sym] = remove(st.triggers[sym], ch)
			return []string{ch}
		}
		out := st.triggers[sym]
		delete(st.triggers, sym)
		return out
	}
	return nil
}

// krakenTicker is a ticker entry as captured 2026-09-04 [CAP-3P]: prices
// are JSON numbers. Its counter is "trades" (the number of trades, a
// field of the captured frame).
type krakenTicker struct {
	Symbol    string      `json:"symbol"`
	Bid       json.Number `json:"bid"`
	BidQty    json.Number `json:"bid_qty"`
	Ask       json.Number `json:"ask"`
	AskQty    json.Number `json:"ask_qty"`
	Last      json.Number `json:"last"`
	Volume    json.Number `json:"volume"`
	Vwap      json.Number `json:"vwap"`
	Low       json.Number `json:"low"`
	High      json.Number `json:"high"`
	Change    json.Number `json:"change"`
	ChangePct json.Number `json:"change_pct"`
	Trades    uint64      `json:"trades"`
	Timestamp string      `json:"timestamp"`
}

// krakenTrade is a trade entry as captured 2026-09-04 [CAP-3P]; its
// counter is trade_id.
type krakenTrade struct {
	Symbol    string      `json:"symbol"`
	Side      string      `json:"side"`
	Price     json.Number `json:"price"`
	Qty       json.Number `json:"qty"`
	OrdType   string      `json:"ord_type"`
	TradeID   uint64      `json:"trade_id"`
	Timestamp string      `json:"timestamp"`
}

func jnum(v float64, dec int) json.Number { return json.Number(num(v, dec)) }

func (k *Kraken) render(c *conn, key streamKey, e *event, snapshot bool) []byte {
	typ := "update"
	if snapshot {
		typ = "snapshot"
	}
	ts := e.at.UTC().Format("2006-01-02T15:04:05.000000Z")
	var channel string
	var data any
	switch key.channel {
	case ChannelTicker, ChannelBBO:
		channel = "ticker"
		data = []krakenTicker{{Symbol: key.symbol, Bid: jnum(e.bid, 1), BidQty: jnum(e.bidQty, 8),
			Ask: jnum(e.ask, 1), AskQty: jnum(e.askQty, 8), Last: jnum(e.price, 1), Volume: jnum(e.volume, 8),
			Vwap: jnum((e.high+e.low)/2, 1), Low: jnum(e.low, 1), High: jnum(e.high, 1),
			Change: jnum(e.price-e.open, 1), ChangePct: jnum((e.price-e.open)/e.open*100, 2),
			Trades: e.seq, Timestamp: ts}}
	case ChannelTrades:
		channel = "trade"
		side := "sell"
		if e.buy {
			side = "buy"
		}
		data = []krakenTrade{{Symbol: key.symbol, Side: side, Price: jnum(e.price, 1), Qty: jnum(e.qty, 8),
			OrdType: "limit", TradeID: e.seq, Timestamp: ts}}
	default:
		return nil
	}
	return marshal(struct {
		Channel string `json:"channel"`
		Type    string `json:"type"`
		Data    any    `json:"data"`
	}{channel, typ, data})
}

// announce sends a status update with system "maintenance" (status
// values other than "online" arrive on the status channel; the exact list
// is not confirmed, EXCHANGES.md §5.6).
func (k *Kraken) announce(c *conn) { k.status(c, "maintenance") }

// Seq reads the counter back from a published Kraken quote: /data/0 of a
// ticker ("trades") or trade ("trade_id") frame, or the whole frame.
func (k *Kraken) Seq(data []byte) (uint64, bool) {
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
		return k.Seq(list[0])
	}
	for _, f := range []string{"trade_id", "trades"} {
		if _, ok := m[f]; ok {
			return uintField(m, f)
		}
	}
	return 0, false
}
