package venuefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Bitstamp WebSocket API v2. Sources: EXCHANGES.md §11, which cites
// tardis, crypto-crawler-rs and crypto-msg-parser [LIB], slinky's
// README quoting bitstamp.net/websocket/v2 [DOC quoted] and captures
// [CAP-3P]; a probe report of the live venue (2026-09-15, "Bitstamp
// WebSocket Profile") that read bitstamp.net/websocket/v2 through a
// browser and quotes it ("keep them under 512 bytes", "Attempting a
// 1025th subscription causes the connection to be silently closed",
// "Maximum connection age is 90 days", bts:request_reconnect with "a few
// seconds to reconnect") [DOC quoted], with the wire error texts, the
// silent acknowledgement of unknown lowercase pairs, the 1009 close and
// the server's ping every 54 s [CAP-3P].

// BitstampConfig configures the Bitstamp fake. Zero fields are
// Bitstamp's documented or observed values, scaled by Config.TimeScale.
type BitstampConfig struct {
	Config
	// PingPeriod: "the server also sent a protocol ping every 54.0 s on
	// every socket, which is not documented" [CAP-3P probe]. What happens
	// to a client that does not answer is not documented: the fake closes
	// it when the next ping is due.
	PingPeriod time.Duration
	// MaxSubscriptions per connection: 1,024; the 1,025th closes the
	// connection silently [DOC quoted]. Negative means none.
	MaxSubscriptions int
}

// Bitstamp is the Bitstamp v2 fake at /. Symbols are lowercase pairs
// (btcusd, btcusd-perp). Channels: live_trades_{pair} (ChannelTrades),
// order_book_{pair} (ChannelBBO); detail_order_book_, diff_order_book_,
// live_orders_ and funding_rate_ are acknowledged and silent, and so is
// any well-formed lowercase pair the venue does not list. Safe for
// concurrent use.
type Bitstamp struct {
	*Server
	maxSubs int
	epoch   epochCounter // order_book microtimestamps, µs
}

type bitstampConn struct {
	mu   sync.Mutex
	subs map[string]bool
}

var bitstampSymbols = []string{"btcusd", "ethusd", "btceur", "xrpusd", "solusd", "btcusd-perp", "ethusd-perp"}

// bitstampPrefixes are the public channel prefixes, longest first;
// the value is the stream of a listed pair ("" = silent).
var bitstampPrefixes = []struct{ prefix, canon string }{
	{"detail_order_book_", ""}, {"diff_order_book_", ""}, {"order_book_", ChannelBBO},
	{"live_trades_", ChannelTrades}, {"live_orders_", ""}, {"funding_rate_", ""},
}

// bitstampPair is a well-formed market symbol: lowercase, no separator,
// perpetuals with "-perp" [DOC quoted by the probe; EXCHANGES.md §11.2].
var bitstampPair = regexp.MustCompile(`^[a-z0-9]+(-perp)?$`)

// NewBitstamp returns a Bitstamp fake; serve it with httptest.
func NewBitstamp(cfg BitstampConfig) *Bitstamp {
	b := &Bitstamp{}
	d := scaler(cfg.TimeScale)
	ping := d(cfg.PingPeriod, 54*time.Second)
	b.maxSubs = cfg.MaxSubscriptions
	if b.maxSubs == 0 {
		b.maxSubs = 1024
	}
	b.epoch = epochCounter(time.Now().UnixMicro())
	set := settings{
		path:    "/",
		symbols: bitstampSymbols,
		// order_book frames came about every 200 ms on a busy book
		// [CAP-3P probe]; the fake's choice.
		push: 200 * time.Millisecond,
		// "Handshake rate limits: none published" [EXCHANGES.md §11.6].
		// The fake's decision: 20 handshakes per second per IP (twice the
		// preset's dial_rate), no cap.
		hsLimit:  20,
		hsWindow: time.Second,
		// bts:request_reconnect: "a few seconds to reconnect" [DOC quoted].
		grace: 3 * time.Second,
		// "keep them under 512 bytes"; "a 700 byte subscribe frame closed
		// the socket with code 1009 and reason read limited at 513 bytes"
		// [CAP-3P probe]: the read limit of a coder/websocket server, which
		// answers exactly that.
		readLimit: 512,
		wsPing:    ping,
		// "Maximum connection age is 90 days" [DOC quoted].
		maxAge: d(0, 90*24*time.Hour),
	}
	set.wsPongDeadline = ping
	b.Server = newServer("bitstamp", b, cfg.Config, set)
	return b
}

func (b *Bitstamp) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/" {
		return nil, http.StatusNotFound, "Not Found"
	}
	return &bitstampConn{subs: map[string]bool{}}, 0, ""
}

// opened: Bitstamp greets with nothing, and "an idle socket with no
// subscription stayed open 201 s" [CAP-3P probe]: no silence cut.
func (b *Bitstamp) opened(c *conn) {}

// bitstampError: {"event":"bts:error","channel":"","data":{"code":null,
// "message":"…"}} [CAP-3P probe, three captured texts].
func bitstampError(c *conn, msg string) {
	c.send(fmt.Appendf(nil, `{"event":"bts:error","channel":"","data":{"code":null,"message":%s}}`, marshal(msg)))
}

// parseChannel splits a channel name into its stream (canon, "" when
// silent) and pair; ok is false for a malformed name.
func (b *Bitstamp) parseChannel(name string) (canon, pair string, ok bool) {
	for _, p := range bitstampPrefixes {
		if rest, found := strings.CutPrefix(name, p.prefix); found {
			if !bitstampPair.MatchString(rest) {
				return "", "", false
			}
			if !b.Listed(rest) {
				p.canon = "" // an unknown lowercase pair: acknowledged, silent [CAP-3P]
			}
			return p.canon, rest, true
		}
	}
	return "", "", name == "announcements"
}

func (b *Bitstamp) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*bitstampConn)
	var req struct {
		Event string `json:"event"`
		Data  struct {
			Channel string `json:"channel"`
		} `json:"data"`
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(p, &probe) != nil {
		bitstampError(c, "Incorrect JSON format.") // text that is not JSON [CAP-3P]
		return
	}
	_ = json.Unmarshal(p, &req)
	switch req.Event {
	case "bts:heartbeat":
		// {"event":"bts:heartbeat"} → {"event":"bts:heartbeat","channel":
		// "","data":{"status":"success"}} [DOC quoted; CAP-3P].
		c.send([]byte(`{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}`))
		return
	case "bts:subscribe", "bts:unsubscribe":
	default:
		// "Bad subscription string. for … the unknown event bts:ping"
		// [CAP-3P probe].
		bitstampError(c, "Bad subscription string.")
		return
	}
	name := req.Data.Channel
	if name == "" {
		bitstampError(c, "Bad subscription string.") // "a frame without a channel" [CAP-3P]
		return
	}
	canon, pair, ok := b.parseChannel(name)
	if !ok {
		// "order_book_BTCUSD-PERP and order_book_BTC/USD-PERP got bts:error
		// Invalid channel provided." [CAP-3P probe].
		bitstampError(c, "Invalid channel provided.")
		return
	}
	if req.Event == "bts:unsubscribe" {
		st.mu.Lock()
		delete(st.subs, name)
		st.mu.Unlock()
		if canon != "" {
			b.unsubscribe(c, streamKey{canon, pair})
		}
		// Not captured: the unsubscribe counterpart of the ack.
		c.send(fmt.Appendf(nil, `{"event":"bts:unsubscription_succeeded","channel":%s,"data":{}}`, marshal(name)))
		return
	}
	st.mu.Lock()
	if !st.subs[name] && b.maxSubs > 0 && len(st.subs) >= b.maxSubs {
		st.mu.Unlock()
		c.closeNow("subscription limit") // "silently closed" [DOC quoted]
		return
	}
	st.subs[name] = true
	st.mu.Unlock()
	// {"event":"bts:subscription_succeeded","channel":"live_trades_btcusd",
	// "data":{}} [CAP-3P], the same for an unknown lowercase pair.
	c.send(fmt.Appendf(nil, `{"event":"bts:subscription_succeeded","channel":%s,"data":{}}`, marshal(name)))
	if canon != "" {
		// No snapshot on subscribe: "Its first frame is the next
		// change-driven full book" [CAP-3P probe].
		b.subscribe(c, streamKey{canon, pair}, false)
	}
}

type bitstampTrade struct {
	ID             uint64      `json:"id"`
	Timestamp      string      `json:"timestamp"`
	Amount         json.Number `json:"amount"`
	AmountStr      string      `json:"amount_str"`
	Price          json.Number `json:"price"`
	PriceStr       string      `json:"price_str"`
	Type           int         `json:"type"`
	Microtimestamp string      `json:"microtimestamp"`
	BuyOrderID     uint64      `json:"buy_order_id"`
	SellOrderID    uint64      `json:"sell_order_id"`
}

type bitstampBook struct {
	Timestamp      string      `json:"timestamp"`
	Microtimestamp string      `json:"microtimestamp"`
	Bids           [][2]string `json:"bids"`
	Asks           [][2]string `json:"asks"`
}

func (b *Bitstamp) render(c *conn, k streamKey, e *event, _ bool) []byte {
	var data any
	var prefix, ev string
	switch k.channel {
	case ChannelTrades:
		// Captured 2026 [CAP-3P, EXCHANGES.md §11.3]: numbers and _str
		// strings, type 0 buy / 1 sell; id is the counter.
		prefix, ev = "live_trades_", "trade"
		typ := 1
		if e.buy {
			typ = 0
		}
		us := e.at.UnixMicro()
		data = bitstampTrade{ID: e.seq, Timestamp: strconv.FormatInt(e.at.Unix(), 10),
			Amount: json.Number(num(e.qty, 8)), AmountStr: num(e.qty, 8),
			Price: json.Number(num(e.price, 2)), PriceStr: num(e.price, 2), Type: typ,
			Microtimestamp: strconv.FormatInt(us, 10), BuyOrderID: 2046551467757570 + e.seq*2,
			SellOrderID: 2046551452086274 + e.seq*2}
	case ChannelBBO:
		// The full book, best first, price and amount strings [CAP-3P].
		// No counter field: microtimestamp is the fake's start plus the
		// counter (µs), and timestamp its second.
		prefix, ev = "order_book_", "data"
		us := b.epoch.at(e.seq)
		book := bitstampBook{Timestamp: strconv.FormatInt(us/1e6, 10), Microtimestamp: strconv.FormatInt(us, 10)}
		for i := range 5 {
			step := float64(i) * e.price * 0.0001
			book.Bids = append(book.Bids, [2]string{num(e.bid-step, 2), num(e.bidQty/float64(i+1), 8)})
			book.Asks = append(book.Asks, [2]string{num(e.ask+step, 2), num(e.askQty/float64(i+1), 8)})
		}
		data = book
	default:
		return nil
	}
	return marshal(struct {
		Data    any    `json:"data"`
		Channel string `json:"channel"`
		Event   string `json:"event"`
	}{data, prefix + k.symbol, ev})
}

// announce sends {"event":"bts:request_reconnect","channel":"","data":
// null} [DOC as quoted by the probe; a Go client's fixture spells data
// ""] and the connection closes after "a few seconds".
func (b *Bitstamp) announce(c *conn) {
	c.send([]byte(`{"event":"bts:request_reconnect","channel":"","data":null}`))
}

// Seq reads the counter back from a published Bitstamp quote: /data (the
// preset's extract) or a whole frame; trade id, order book microtimestamp.
func (b *Bitstamp) Seq(data []byte) (uint64, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	if inner, ok := m["data"]; ok {
		return b.Seq(inner)
	}
	if _, ok := m["id"]; ok {
		return uintField(m, "id")
	}
	us, ok := uintField(m, "microtimestamp")
	if !ok {
		return 0, false
	}
	return b.epoch.seq(int64(us))
}
