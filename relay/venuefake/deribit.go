package venuefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Deribit JSON-RPC 2.0 over WebSocket (API v2), public market data.
// Sources: EXCHANGES.md §8, which cites nautilus_trader fixtures [LIB],
// docs.deribit.com public-set_heartbeat and the ticker channel [DOC] and
// captures [CAP-3P]; docs.deribit.com/api-reference public-subscribe
// ("Sustained rate: ~3.3 requests/second") and public-unsubscribe ("The
// result field … contains only the channels that were successfully
// processed and unsubscribed") [DOC, read here]; docs.deribit.com
// articles/rate-limits ("If a request arrives when no credits remain, we
// immediately send a too_many_requests (code 10028) or similar error and
// terminate the session") [DOC]; nautilus DERIBIT_WS_SUBSCRIPTION_QUOTA
// citing Deribit's support article (3,000 credits a subscribe, 30,000 at
// most, burst 10) [LIB]; a probe report of the live venue (2026-09-22,
// "Deribit WebSocket Profile") with the heartbeat timings, the 4000
// "heartbeat close", the 60 s cut, the error texts and the unknown-channel
// answers [CAP-3P]; a second probe record (2026-09-21) that a subscribe
// naming a raw channel is refused whole [CAP-3P].

// DeribitConfig configures the Deribit fake. Zero fields are Deribit's
// documented values, scaled by Config.TimeScale.
type DeribitConfig struct {
	Config
	// Silence: "a socket that sent nothing and subscribed nothing closed
	// at 60.5 s with code 1006 and no close frame"; a subscribed socket
	// stayed [CAP-3P probe]. ("WebSocket connections have no fixed
	// expiration timer" [DOC connection management].)
	Silence time.Duration
	// SubscribeLimit per SubscribeWindow, a token bucket per connection:
	// public/subscribe costs 3,000 of at most 30,000 credits, "~3.3
	// requests/second" sustained [DOC public-subscribe; LIB nautilus:
	// burst 10], so 10 per 3 s with a burst of 10. Past it: error 10028
	// and the session ends [DOC rate-limits]. Negative means none.
	SubscribeLimit  int
	SubscribeWindow time.Duration
	// RequestLimit per RequestWindow for every other request: 500 of
	// 50,000 credits refilled at 10,000 per second, "up to 20 requests per
	// second … Burst Capacity: Allows up to 100 requests at once" [DOC
	// support.deribit.com Rate Limits], so 100 per 5 s, burst 100.
	// Negative means none. Whether an unauthenticated connection's pool is
	// per connection or per IP is not documented: the fake keeps one per
	// connection.
	RequestLimit  int
	RequestWindow time.Duration
}

// Deribit is the Deribit fake at /ws/api/v2. Symbols are instrument names
// (BTC-PERPETUAL). Channels: ticker.{instrument}.100ms (ChannelTicker),
// trades.{instrument}.100ms (ChannelTrades), quote.{instrument}
// (ChannelBBO); the other public channels are acknowledged and silent.
// Safe for concurrent use.
type Deribit struct {
	*Server
	silence          time.Duration
	subN, reqN       int
	subW, reqW       time.Duration
	epoch            epochCounter // ticker and quote timestamps, ms
	heartbeatMinimum int
}

type deribitConn struct {
	mu      sync.Mutex
	subs    map[string]bool // channel names subscribed (modelled or not)
	subCred limiter
	reqCred limiter
	// heartbeat: gen changes with every set_heartbeat/disable_heartbeat;
	// pending is when the unanswered test_request was sent (zero: none).
	gen     int
	pending time.Time
	// lastData is when the last subscription frame was rendered (unix ns):
	// a heartbeat frame goes with a test_request only on a socket idle of
	// data ("A busy socket got 5 test_request frames in 57 s and no
	// heartbeat frame") [CAP-3P probe].
	lastData atomic.Int64
}

var deribitSymbols = []string{"BTC-PERPETUAL", "ETH-PERPETUAL", "BTC_USDC-PERPETUAL", "ETH_USDC-PERPETUAL", "SOL_USDC-PERPETUAL", "BTC-27MAR26"}

// deribitIndexes are index names accepted by the index channels.
var deribitIndexes = []string{"btc_usd", "eth_usd", "btc_usdc", "eth_usdc", "sol_usdc"}

// NewDeribit returns a Deribit fake; serve it with httptest.
func NewDeribit(cfg DeribitConfig) *Deribit {
	x := &Deribit{}
	d := scaler(cfg.TimeScale)
	x.silence = d(cfg.Silence, 60*time.Second)
	x.subN, x.subW = cfg.SubscribeLimit, d(cfg.SubscribeWindow, 3*time.Second)
	if x.subN == 0 {
		x.subN = 10
	}
	x.reqN, x.reqW = cfg.RequestLimit, d(cfg.RequestWindow, 5*time.Second)
	if x.reqN == 0 {
		x.reqN = 100
	}
	x.epoch = epochCounter(time.Now().UnixMilli())
	// set_heartbeat: "interval … not less than 10" [DOC public/set_heartbeat].
	x.heartbeatMinimum = 10
	set := settings{
		path:    "/ws/api/v2",
		symbols: deribitSymbols,
		// ticker.{instrument}.100ms: "100ms" is the channel's interval [DOC].
		push: 100 * time.Millisecond,
		// "32 connections per IP … Any attempt to establish a 33rd
		// connection from the same IP will be rejected with an HTTP 429"
		// [DOC connection management, quoted by the probe; EXCHANGES.md
		// §8.6]. No handshake rate is documented: none.
		maxConns: 32,
		// No shutdown notice is documented (platform_state's maintenance
		// flag is a subscription channel): Announce is a plain close.
		grace: 5 * time.Second,
	}
	x.Server = newServer("deribit", x, cfg.Config, set)
	return x
}

func (x *Deribit) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/ws/api/v2" {
		return nil, http.StatusNotFound, "Not Found"
	}
	st := &deribitConn{subs: map[string]bool{}}
	if x.subN > 0 {
		st.subCred = newBucketLimiter(x.subN, x.subW, x.subN)
	}
	if x.reqN > 0 {
		st.reqCred = newBucketLimiter(x.reqN, x.reqW, x.reqN)
	}
	return st, 0, ""
}

// opened: Deribit greets with nothing; the silence cut applies while
// nothing is subscribed.
func (x *Deribit) opened(c *conn) {
	st := c.state.(*deribitConn)
	silenceCut(c, x.silence, "silent without subscription", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.subs) > 0
	})
}

// reply renders a response: {"jsonrpc":"2.0","id":…,"result"|"error":…,
// "usIn":…,"usOut":…,"usDiff":…,"testnet":false} [CAP-3P probe; LIB
// nautilus]. A request without id is answered without one [CAP-3P probe].
func deribitReply(id json.RawMessage, key string, val []byte, in time.Time) []byte {
	var b bytes.Buffer
	b.WriteString(`{"jsonrpc":"2.0"`)
	if len(id) > 0 {
		b.WriteString(`,"id":`)
		b.Write(id)
	}
	fmt.Fprintf(&b, `,%q:`, key)
	b.Write(val)
	usIn, usOut := in.UnixMicro(), time.Now().UnixMicro()
	fmt.Fprintf(&b, `,"usIn":%d,"usOut":%d,"usDiff":%d,"testnet":false}`, usIn, usOut, usOut-usIn)
	return b.Bytes()
}

// deribitErr is an error object: {"code":…,"message":…[,"data":…]}.
func deribitErr(code int, message string, data any) []byte {
	if data == nil {
		return fmt.Appendf(nil, `{"code":%d,"message":%s}`, code, marshal(message))
	}
	return fmt.Appendf(nil, `{"code":%d,"message":%s,"data":%s}`, code, marshal(message), marshal(data))
}

type deribitParamErr struct {
	Reason string `json:"reason"`
	Param  string `json:"param"`
}

func (x *Deribit) message(c *conn, typ websocket.MessageType, p []byte) {
	in := time.Now()
	st := c.state.(*deribitConn)
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method *string         `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(p, &req); err != nil {
		if !json.Valid(p) {
			// {"jsonrpc":"2.0","error":{"code":11050,"data":"invalid json",
			// "message":"bad_request"},…} with no id, the socket stays open
			// [CAP-3P probe].
			c.send(deribitReply(nil, "error", []byte(`{"code":11050,"data":"invalid json","message":"bad_request"}`), in))
			return
		}
		// Valid JSON of the wrong shape: JSON-RPC "Invalid Request" (not
		// probed).
		c.send(deribitReply(nil, "error", deribitErr(-32600, "Invalid Request", nil), in))
		return
	}
	if req.Method == nil {
		c.send(deribitReply(req.ID, "error", deribitErr(-32600, "Invalid Request", nil), in))
		return
	}
	method := *req.Method
	// Credits [DOC rate-limits]: subscribe has its own pool, every other
	// request draws from the general one; none left: 10028 and the end of
	// the session.
	lim := st.reqCred
	if method == "public/subscribe" || method == "private/subscribe" {
		lim = st.subCred
	}
	if lim != nil {
		st.mu.Lock()
		ok := lim.allow("", time.Now())
		st.mu.Unlock()
		if !ok {
			// {"jsonrpc":"2.0","id":1,"error":{"code":10028,"message":
			// "too_many_requests","data":null}} [LIB nautilus]. The close
			// code is not documented.
			c.send(deribitReply(req.ID, "error", []byte(`{"code":10028,"message":"too_many_requests","data":null}`), in))
			c.close(websocket.StatusPolicyViolation, "too_many_requests")
			return
		}
	}
	switch {
	case method == "public/subscribe":
		x.subscribeMsg(c, req.ID, req.Params, in)
	case method == "public/unsubscribe":
		x.unsubscribeMsg(c, req.ID, req.Params, in)
	case method == "public/unsubscribe_all":
		st.mu.Lock()
		names := make([]string, 0, len(st.subs))
		for n := range st.subs {
			names = append(names, n)
		}
		clear(st.subs)
		st.mu.Unlock()
		for _, n := range names {
			if k, ok := x.stream(n); ok {
				x.unsubscribe(c, k)
			}
		}
		c.send(deribitReply(req.ID, "result", []byte(`"ok"`), in))
	case method == "public/set_heartbeat":
		x.setHeartbeat(c, req.ID, req.Params, in)
	case method == "public/disable_heartbeat":
		st.mu.Lock()
		st.gen++
		st.pending = time.Time{}
		st.mu.Unlock()
		c.send(deribitReply(req.ID, "result", []byte(`"ok"`), in))
	case method == "public/test":
		// The answer to a test_request [DOC public/set_heartbeat].
		st.mu.Lock()
		st.pending = time.Time{}
		st.mu.Unlock()
		c.send(deribitReply(req.ID, "result", []byte(`{"version":"1.2.26"}`), in))
	case method == "public/get_time":
		c.send(deribitReply(req.ID, "result", strconv.AppendInt(nil, time.Now().UnixMilli(), 10), in))
	case strings.HasPrefix(method, "private/"):
		// "private/subscribe without auth: error 13009 unauthorized,
		// reason invalid_token" [CAP-3P probe].
		c.send(deribitReply(req.ID, "error", deribitErr(13009, "unauthorized", map[string]string{"reason": "invalid_token"}), in))
	default:
		// "public/nope: error -32601 Method not found" [CAP-3P probe].
		c.send(deribitReply(req.ID, "error", deribitErr(-32601, "Method not found", nil), in))
	}
}

// channels reads params.channels; a missing or malformed list answers
// -32602 in the shape the venue uses for a missing interval
// ({"reason":"value required","param":"interval"}) [CAP-3P].
func (x *Deribit) channels(c *conn, id, params json.RawMessage, in time.Time) ([]string, bool) {
	var ps struct {
		Channels json.RawMessage `json:"channels"`
	}
	_ = json.Unmarshal(params, &ps)
	var list []string
	reason := ""
	switch {
	case len(ps.Channels) == 0 || string(ps.Channels) == "null":
		reason = "value required"
	case json.Unmarshal(ps.Channels, &list) != nil:
		reason = "must be an array of strings" // not probed
	}
	if reason != "" {
		c.send(deribitReply(id, "error", deribitErr(-32602, "Invalid params", deribitParamErr{reason, "channels"}), in))
		return nil, false
	}
	return list, true
}

// parseChannel classifies a channel name: valid reports whether the venue
// would subscribe it, raw whether it asks for a raw interval, and k (when
// modelled) is its stream.
func (x *Deribit) parseChannel(name string) (k streamKey, modelled, valid, raw bool) {
	parts := strings.Split(name, ".")
	interval := func(s string) bool { return s == "100ms" || s == "agg2" || s == "raw" }
	inst := len(parts) > 1 && x.Listed(parts[1])
	switch parts[0] {
	case "ticker", "trades", "perpetual", "incremental_ticker":
		if parts[0] == "incremental_ticker" {
			return k, false, len(parts) == 2 && inst, false
		}
		if len(parts) != 3 || !interval(parts[2]) {
			return k, false, false, false
		}
		raw = parts[2] == "raw"
		if !inst {
			return k, false, false, raw
		}
		if parts[2] == "100ms" && parts[0] != "perpetual" {
			canon := ChannelTicker
			if parts[0] == "trades" {
				canon = ChannelTrades
			}
			return streamKey{canon, parts[1]}, true, true, false
		}
		return k, false, true, raw
	case "quote":
		if len(parts) == 2 && inst {
			return streamKey{ChannelBBO, parts[1]}, true, true, false
		}
	case "book":
		// book.{instrument}.{interval} or book.{instrument}.{group}.{depth}.{interval};
		// "book.BTC_USDC-PERPETUAL.50ms" and depth 50 answer "result":[]
		// [CAP-3P probe].
		switch len(parts) {
		case 3:
			return k, false, inst && interval(parts[2]), parts[2] == "raw"
		case 5:
			depth := parts[3] == "1" || parts[3] == "10" || parts[3] == "20"
			return k, false, inst && depth && interval(parts[4]), false
		}
	case "deribit_price_index", "deribit_price_ranking", "estimated_expiration_price":
		return k, false, len(parts) == 2 && contains(deribitIndexes, parts[1]), false
	case "platform_state", "announcements":
		return k, false, len(parts) == 1, false
	}
	return k, false, false, false
}

// stream returns the stream of a modelled channel name.
func (x *Deribit) stream(name string) (streamKey, bool) {
	k, modelled, _, _ := x.parseChannel(name)
	return k, modelled
}

func (x *Deribit) subscribeMsg(c *conn, id, params json.RawMessage, in time.Time) {
	st := c.state.(*deribitConn)
	list, ok := x.channels(c, id, params, in)
	if !ok {
		return
	}
	for _, n := range list {
		if _, _, _, raw := x.parseChannel(n); raw {
			// {"jsonrpc":"2.0","id":5,"error":{"code":13778,"message":
			// "raw_subscriptions_not_available_for_unauthorized"},…}
			// [CAP-3P probe]; "A single public/subscribe naming several
			// channels is rejected WHOLE when any one channel is refused"
			// [CAP-3P probe record]. raw is "authorized users only" [DOC].
			c.send(deribitReply(id, "error", deribitErr(13778, "raw_subscriptions_not_available_for_unauthorized", nil), in))
			return
		}
	}
	// Unknown or malformed channels are left out of result, without an
	// error: "result":[] when none is valid [CAP-3P probe; EXCHANGES.md
	// §8.3]. A channel subscribed again is listed again and produces
	// nothing new [CAP-3P probe].
	var ok2 []string
	var streams []streamKey
	st.mu.Lock()
	for _, n := range list {
		k, modelled, valid, _ := x.parseChannel(n)
		if !valid || contains(ok2, n) {
			continue
		}
		ok2 = append(ok2, n)
		st.subs[n] = true
		if modelled {
			streams = append(streams, k)
		}
	}
	st.mu.Unlock()
	if ok2 == nil {
		ok2 = []string{}
	}
	c.send(deribitReply(id, "result", marshal(ok2), in))
	for _, k := range streams {
		x.subscribe(c, k, false)
	}
}

func (x *Deribit) unsubscribeMsg(c *conn, id, params json.RawMessage, in time.Time) {
	st := c.state.(*deribitConn)
	list, ok := x.channels(c, id, params, in)
	if !ok {
		return
	}
	// "The result field … contains only the channels that were
	// successfully processed and unsubscribed … If a channel in the
	// request is invalid, not subscribed, or fails validation, it will not
	// appear in the result" [DOC public-unsubscribe].
	done := []string{}
	st.mu.Lock()
	for _, n := range list {
		if st.subs[n] {
			delete(st.subs, n)
			done = append(done, n)
		}
	}
	st.mu.Unlock()
	for _, n := range done {
		if k, ok := x.stream(n); ok {
			x.unsubscribe(c, k)
		}
	}
	c.send(deribitReply(id, "result", marshal(done), in))
}
