package venuefake

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Coinbase Exchange WebSocket feed (ws-feed). Sources: EXCHANGES.md §4A,
// which cites docs.cdp.coinbase.com/exchange/websocket-feed (overview,
// channels, rate-limits) [DOC, the rate-limits page read again here] and
// captures [CAP-3P]; error texts from issue threads (ctubio/
// Krypto-trading-bot #977, danpaquin/coinbasepro-python #371,
// thrasher-corp/gocryptotrader #1421) [LIB].

// CoinbaseConfig configures the Coinbase fake. Zero fields are Coinbase's
// documented values, scaled by Config.TimeScale.
type CoinbaseConfig struct {
	Config
	// SubscribeWithin: a subscribe message must arrive within 5 s of
	// connecting or the server disconnects [DOC, EXCHANGES.md §4A].
	SubscribeWithin time.Duration
	// HeartbeatPeriod: the heartbeat channel sends one message per second
	// per product [DOC channels].
	HeartbeatPeriod time.Duration
	// MessageLimit per second: "Messages sent by the client every second
	// per IP: 100" [DOC rate-limits]; the fake counts per connection.
	MessageLimit int
}

// Coinbase is the Coinbase Exchange ws-feed fake at "/". Symbols are
// product ids (BTC-USD). Channels: ticker (ChannelTicker), matches
// (ChannelTrades), heartbeat (liveness, not a stream). Safe for
// concurrent use.
type Coinbase struct {
	*Server
	heartbeat time.Duration
}

// coinbaseConn holds a connection's subscriptions in the order they were
// made, as the subscriptions frame lists them.
type coinbaseConn struct {
	mu   sync.Mutex
	subs []coinbaseChannel
}

type coinbaseChannel struct {
	Name       string          `json:"name"`
	ProductIDs []string        `json:"product_ids"`
	AccountIDs json.RawMessage `json:"account_ids"`
}

var coinbaseSymbols = []string{"BTC-USD", "ETH-USD", "SOL-USD", "BTC-EUR", "ETH-BTC"}

// NewCoinbase returns a Coinbase fake; serve it with httptest.
func NewCoinbase(cfg CoinbaseConfig) *Coinbase {
	cb := &Coinbase{}
	d := scaler(cfg.TimeScale)
	cb.heartbeat = d(cfg.HeartbeatPeriod, time.Second)
	limit := cfg.MessageLimit
	if limit == 0 {
		limit = 100
	}
	set := settings{
		path:    "/",
		symbols: coinbaseSymbols,
		// ticker: "real-time price updates every time a match happens"; the
		// fake pushes on a schedule.
		push: 250 * time.Millisecond,
		// "Requests per second per IP: 8; … in bursts: Up to 20" [DOC
		// rate-limits], taken as the handshake rate: a token bucket. No cap
		// on open connections is documented.
		hsLimit:  8,
		hsWindow: time.Second,
		hsBurst:  20,
		// No shutdown notice is documented: Announce is a plain close.
		grace:       5 * time.Second,
		subscribeBy: d(cfg.SubscribeWithin, 5*time.Second),
		inLimit:     limit,
		inWindow:    d(0, time.Second),
	}
	cb.Server = newServer("coinbase", cb, cfg.Config, set)
	return cb
}

func (cb *Coinbase) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/" && r.URL.Path != "" {
		return nil, http.StatusNotFound, "Not Found"
	}
	return &coinbaseConn{}, 0, ""
}

// opened starts the heartbeat channel's 1/s messages.
func (cb *Coinbase) opened(c *conn) {
	st := c.state.(*coinbaseConn)
	c.every(cb.heartbeat, func() {
		st.mu.Lock()
		var products []string
		for _, ch := range st.subs {
			if ch.Name == "heartbeat" {
				products = slices.Clone(ch.ProductIDs)
			}
		}
		st.mu.Unlock()
		now := time.Now().UTC()
		for _, p := range products {
			// {"type":"heartbeat","sequence":90,"last_trade_id":20,
			// "product_id":"BTC-USD","time":"…"} [DOC channels].
			seq := cb.PushedOn(ChannelTicker, p)
			c.sendJSON(struct {
				Type        string `json:"type"`
				Sequence    uint64 `json:"sequence"`
				LastTradeID uint64 `json:"last_trade_id"`
				ProductID   string `json:"product_id"`
				Time        string `json:"time"`
			}{"heartbeat", seq, seq, p, now.Format("2006-01-02T15:04:05.000000Z")})
		}
	})
}

// coinbaseError is {"type":"error","message":…,"reason":…} [CAP-3P].
type coinbaseError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
}

// coinbaseChannels are the ws-feed's channel names; the ones the fake
// pushes map to streams, the others are acknowledged and silent.
var coinbaseChannels = map[string]string{
	"ticker": ChannelTicker, "matches": ChannelTrades, "heartbeat": "",
	"status": "", "ticker_batch": "", "level2_batch": "", "auctionfeed": "", "rfq_matches": "",
}

func (cb *Coinbase) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*coinbaseConn)
	var req struct {
		Type       string            `json:"type"`
		ProductIDs []string          `json:"product_ids"`
		Channels   []json.RawMessage `json:"channels"`
	}
	if err := json.Unmarshal(p, &req); err != nil || (req.Type != "subscribe" && req.Type != "unsubscribe") {
		// The reply to a message that is not a subscribe is not documented.
		c.sendJSON(coinbaseError{Type: "error", Message: "Failed to parse message", Reason: "type must be subscribe or unsubscribe"})
		return
	}
	sub := req.Type == "subscribe"
	verb := "Failed to subscribe"
	if !sub {
		verb = "Failed to unsubscribe"
	}
	// "No channels provided" [LIB issue threads, 2019–2021].
	if len(req.Channels) == 0 {
		c.sendJSON(coinbaseError{"error", verb, "No channels provided"})
		return
	}
	// Channels are names (using the message's product_ids) or objects
	// {"name","product_ids"} [DOC overview; CAP-3P].
	type want struct {
		name     string
		products []string
	}
	var wants []want
	for _, raw := range req.Channels {
		var name string
		if json.Unmarshal(raw, &name) == nil {
			wants = append(wants, want{name, req.ProductIDs})
			continue
		}
		var ch struct {
			Name       string   `json:"name"`
			ProductIDs []string `json:"product_ids"`
		}
		if json.Unmarshal(raw, &ch) != nil || ch.Name == "" {
			c.sendJSON(coinbaseError{"error", verb, "Malformed channel"})
			return
		}
		if ch.ProductIDs == nil {
			ch.ProductIDs = req.ProductIDs
		}
		wants = append(wants, want{ch.Name, ch.ProductIDs})
	}
	var changed bool
	for _, w := range wants {
		canon, known := coinbaseChannels[w.name]
		switch {
		case w.name == "level2" || w.name == "full" || w.name == "level3" || w.name == "user":
			// "level2 now requires authentication" [CAP-3P].
			c.sendJSON(coinbaseError{"error", verb, w.name + " now requires authentication"})
			continue
		case !known:
			c.sendJSON(coinbaseError{"error", verb, w.name + " is not a valid channel"})
			continue
		}
		if len(w.products) == 0 {
			// An empty product id: " is not a valid product" [LIB
			// gocryptotrader #1421].
			c.sendJSON(coinbaseError{"error", verb, " is not a valid product"})
			continue
		}
		for _, pid := range w.products {
			if !cb.Listed(pid) {
				// "ETH-USD is not a valid product"; the valid products of the
				// same message are still subscribed [CAP-3P].
				c.sendJSON(coinbaseError{"error", verb, pid + " is not a valid product"})
				continue
			}
			if st.set(w.name, pid, sub) {
				changed = true
				if sub {
					c.markSubscribed()
				}
			}
			if canon != "" && !sub {
				cb.unsubscribe(c, streamKey{canon, pid})
			}
		}
	}
	if !changed && sub {
		return
	}
	// The subscriptions frame lists every current subscription of the
	// connection [CAP-3P: {"type":"subscriptions","channels":[{"name":
	// "ticker","product_ids":["BTC-USD"],"account_ids":null}]}].
	st.mu.Lock()
	chans := make([]coinbaseChannel, 0, len(st.subs))
	for _, ch := range st.subs {
		if len(ch.ProductIDs) > 0 {
			chans = append(chans, coinbaseChannel{ch.Name, slices.Clone(ch.ProductIDs), json.RawMessage("null")})
		}
	}
	st.mu.Unlock()
	c.sendJSON(struct {
		Type     string            `json:"type"`
		Channels []coinbaseChannel `json:"channels"`
	}{"subscriptions", chans})
	if sub {
		for _, w := range wants {
			if canon := coinbaseChannels[w.name]; canon != "" {
				for _, pid := range w.products {
					if cb.Listed(pid) {
						cb.subscribe(c, streamKey{canon, pid}, false)
					}
				}
			}
		}
	}
}

// set adds or removes (channel, product); it reports a change.
func (st *coinbaseConn) set(name, pid string, sub bool) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	i := slices.IndexFunc(st.subs, func(ch coinbaseChannel) bool { return ch.Name == name })
	if i < 0 {
		if !sub {
			return false
		}
		st.subs = append(st.subs, coinbaseChannel{Name: name})
		i = len(st.subs) - 1
	}
	has := slices.Contains(st.subs[i].ProductIDs, pid)
	switch {
	case sub && !has:
		st.subs[i].ProductIDs = append(st.subs[i].ProductIDs, pid)
		return true
	case !sub && has:
		st.subs[i].ProductIDs = remove(st.subs[i].ProductIDs, pid)
		return true
	}
	return false
}

type coinbaseTicker struct {
	Type        string `json:"type"`
	Sequence    uint64 `json:"sequence"`
	ProductID   string `json:"product_id"`
	Price       string `json:"price"`
	Open24h     string `json:"open_24h"`
	Volume24h   string `json:"volume_24h"`
	Low24h      string `json:"low_24h"`
	High24h     string `json:"high_24h"`
	Volume30d   string `json:"volume_30d"`
	BestBid     string `json:"best_bid"`
	BestBidSize string `json:"best_bid_size"`
	BestAsk     string `json:"best_ask"`
	BestAskSize string `json:"best_ask_size"`
	Side        string `json:"side"`
	Time        string `json:"time"`
	TradeID     uint64 `json:"trade_id"`
	LastSize    string `json:"last_size"`
}

type coinbaseMatch struct {
	Type         string `json:"type"`
	TradeID      uint64 `json:"trade_id"`
	MakerOrderID string `json:"maker_order_id"`
	TakerOrderID string `json:"taker_order_id"`
	Side         string `json:"side"`
	Size         string `json:"size"`
	Price        string `json:"price"`
	ProductID    string `json:"product_id"`
	Sequence     uint64 `json:"sequence"`
	Time         string `json:"time"`
}

func (cb *Coinbase) render(c *conn, k streamKey, e *event, _ bool) []byte {
	tm := e.at.UTC().Format("2006-01-02T15:04:05.000000Z")
	// side is the maker's side on Coinbase: a buyer taker hits a sell.
	side := "buy"
	if e.buy {
		side = "sell"
	}
	switch k.channel {
	case ChannelTicker:
		// Ticker as captured 2026-09-04 [CAP-3P]; sequence (and trade_id)
		// carry the counter.
		return marshal(coinbaseTicker{Type: "ticker", Sequence: e.seq, ProductID: k.symbol,
			Price: num(e.price, 2), Open24h: num(e.open, 2), Volume24h: num(e.volume, 8),
			Low24h: num(e.low, 2), High24h: num(e.high, 2), Volume30d: num(e.volume*30, 8),
			BestBid: num(e.bid, 2), BestBidSize: num(e.bidQty, 8), BestAsk: num(e.ask, 2),
			BestAskSize: num(e.askQty, 8), Side: side, Time: tm, TradeID: e.seq, LastSize: num(e.qty, 8)})
	case ChannelTrades:
		// match as captured 2026-09-04 [CAP-3P]. The last_match sent on
		// subscribing is not modelled.
		return marshal(coinbaseMatch{Type: "match", TradeID: e.seq,
			MakerOrderID: "1aad6dd4-c00b-454e-81c4-16033085708e", TakerOrderID: "9060f53e-620c-408f-a8fc-a1e33a55b0ad",
			Side: side, Size: num(e.qty, 8), Price: num(e.price, 2), ProductID: k.symbol, Sequence: e.seq, Time: tm})
	}
	return nil
}

func (cb *Coinbase) announce(c *conn) {}

// Seq reads the counter back from a published Coinbase frame (the preset
// publishes the whole frame): ticker and match "sequence".
func (cb *Coinbase) Seq(data []byte) (uint64, bool) {
	data = firstOf(data)
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	var typ string
	_ = json.Unmarshal(m["type"], &typ)
	if typ != "ticker" && typ != "match" {
		return 0, false
	}
	return uintField(m, "sequence")
}
