package venuefake

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// KuCoin spot, classic WebSocket with a "bullet" token. Sources:
// EXCHANGES.md §10, which cites Kucoin/kucoin-api-docs (2023 snapshot,
// read again here: "Apply connect token", "Create connection", "Ping",
// "Subscribe", the WEBSOCKET limits) [DOC], tardis, cryptofeed and
// crypto-msg-parser [LIB] and captures [CAP-3P]; the current docs at
// kucoin.com/docs-new: Introduction (classic), Orderbook - Level1
// (3470067w0: "/spotMarket/level1:{symbol},{symbol}", "Push frequency:
// once every 10ms", the data shape) and the WebSocket error codes ("401
// token is invalid", "404 topic does not exist", "406 topic is required",
// "415 command type is invalid", "509 exceed max subscription count
// limitation of 100 per time / 300 per session", "400 ping timeout",
// "509 exceed max permits per second") [DOC, read here]; a probe report
// of KuCoin's futures sockets (2026-09-22, "KuCoin WebSocket Profile")
// with the classic pong and error shapes [CAP-3P]; a public guide showing
// a token-less upgrade answered "401 Unauthorized" [CAP-3P].

// KuCoinConfig configures the KuCoin fake. Zero fields are KuCoin's
// documented values, scaled by Config.TimeScale.
type KuCoinConfig struct {
	Config
	// PingInterval and PingTimeout are what bullet-public returns
	// (18000 and 10000 ms) [DOC "Apply connect token"]. "If the server has
	// not received any message from the client for a long time, the
	// connection will be disconnected" [DOC "Ping"]: the fake cuts a
	// client silent (no JSON message) for PingInterval+PingTimeout, with
	// {"type":"error","code":400,"data":"ping timeout"} and close 1000
	// "Bye" [CAP-3P probe of the futures classic socket, which cut at
	// about 60 s: the fake keeps the stricter documented figures].
	PingInterval time.Duration
	PingTimeout  time.Duration
	// TokenLifetime: "The token is valid for only 24 hours" [DOC
	// docs-new Introduction]. A token may be reused within it (not
	// documented either way).
	TokenLifetime time.Duration
	// MaxAge: "The token is valid for only 24 hours, and a single
	// connection is expected to be disconnected after 24 hours" [DOC
	// docs-new Introduction]. The close's code is not documented (1001
	// here).
	MaxAge time.Duration
	// WelcomeDelay is the time between the upgrade and the welcome
	// message; frames the client sends before it are ignored ("Only when
	// the welcome message is received will the connection be available"
	// [DOC]). The venue's delay is not documented: 50 ms, scaled.
	WelcomeDelay time.Duration
}

// KuCoin is the KuCoin classic spot fake: POST /api/v1/bullet-public
// returns a token and the fake's own WebSocket endpoint (ws://host/),
// where the upgrade needs that token. Symbols are BTC-USDT. Topics:
// /market/ticker:X (ChannelTicker), /market/match:X (ChannelTrades),
// /spotMarket/level1:X (ChannelBBO); other documented topics are
// acknowledged and silent. Safe for concurrent use.
type KuCoin struct {
	*Server
	ping, pingTimeout time.Duration
	tokenLife         time.Duration
	welcome           time.Duration
	epoch             epochCounter // level1 timestamps, ms

	mu      sync.Mutex
	tokens  map[string]time.Time // token → expiry
	bullets atomic.Uint64
}

type kucoinConn struct {
	connectID string
	welcomed  atomic.Bool
	lastMsg   atomic.Int64 // unix ns of the last JSON message from the client
	mu        sync.Mutex
	topics    map[string]bool // prefix:symbol
	uplink    rateCounter
}

var kucoinSymbols = []string{"BTC-USDT", "ETH-USDT", "SOL-USDT", "KCS-USDT", "ETH-BTC"}

// kucoinTopics maps the topic prefixes onto streams; "" is acknowledged
// and silent [DOC "Public Channels"; docs-new].
var kucoinTopics = map[string]string{
	"/market/ticker": ChannelTicker, "/market/match": ChannelTrades, "/spotMarket/level1": ChannelBBO,
	"/market/level2": "", "/spotMarket/level2Depth5": "", "/spotMarket/level2Depth50": "",
	"/market/snapshot": "", "/market/candles": "",
}

// NewKuCoin returns a KuCoin fake; serve it with httptest.
func NewKuCoin(cfg KuCoinConfig) *KuCoin {
	k := &KuCoin{tokens: map[string]time.Time{}}
	d := scaler(cfg.TimeScale)
	k.ping = d(cfg.PingInterval, 18*time.Second)
	k.pingTimeout = d(cfg.PingTimeout, 10*time.Second)
	k.tokenLife = d(cfg.TokenLifetime, 24*time.Hour)
	k.welcome = d(cfg.WelcomeDelay, 50*time.Millisecond)
	k.epoch = epochCounter(time.Now().UnixMilli())
	set := settings{
		path:    "/",
		symbols: kucoinSymbols,
		// Ticker "Push frequency: once every 100ms" [DOC].
		push: 100 * time.Millisecond,
		// "Number of connections per user ID: ≤ 50", "Connection Limit:
		// 30 per minute" [DOC WEBSOCKET limits]. Per IP here (a public
		// token has no user). Refused 429 before the upgrade; the docs'
		// error table lists "509 exceed max session count limitation of
		// 50" among the connection errors, whose wire form is not known.
		hsLimit:  30,
		hsWindow: time.Minute,
		maxConns: 50,
		maxAge:   d(cfg.MaxAge, 24*time.Hour),
		// No shutdown notice is documented for public sockets (load
		// balancing disconnects "may" happen) [CAP-3P probe quoting the
		// docs]: Announce is a plain close.
		grace: 5 * time.Second,
	}
	k.Server = newServer("kucoin", k, cfg.Config, set)
	return k
}

// servePlain answers the token call beside the WebSocket; it is not a
// handshake.
func (k *KuCoin) servePlain(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != "/api/v1/bullet-public" {
		return false
	}
	k.bullet(w, r)
	return true
}

// BulletURL is the token call's URL given the httptest server's URL: the
// preset's resolve.url points there.
func (k *KuCoin) BulletURL(base string) string { return base + "/api/v1/bullet-public" }

// WSURL returns the endpoint with a fresh valid token, as a client would
// build it from a bullet-public answer, so that a test can dial directly.
func (k *KuCoin) WSURL(base string) string {
	return k.Server.WSURL(base) + "?token=" + k.newToken() + "&connectId=" + randomHex(8)
}

// Bullets returns how many tokens the fake issued through bullet-public.
func (k *KuCoin) Bullets() uint64 { return k.bullets.Load() }

func (k *KuCoin) newToken() string {
	tok := randomHex(48) + ".kc"
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	for t, exp := range k.tokens {
		if now.After(exp) {
			delete(k.tokens, t)
		}
	}
	k.tokens[tok] = now.Add(k.tokenLife)
	return tok
}

func (k *KuCoin) tokenValid(tok string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	exp, ok := k.tokens[tok]
	return ok && time.Now().Before(exp)
}

// bullet answers POST /api/v1/bullet-public [DOC "Apply connect token"]:
// {"code":"200000","data":{"token":…,"instanceServers":[{"endpoint":…,
// "encrypt":…,"protocol":"websocket","pingInterval":18000,
// "pingTimeout":10000}]}} with the fake's own endpoint and its scaled
// intervals in ms.
func (k *KuCoin) bullet(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost {
		// "404000 Url Not Found" [DOC error codes]; the answer to another
		// method is not documented.
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":"404000","msg":"Url Not Found"}`))
		return
	}
	k.bullets.Add(1)
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	ms := func(d time.Duration) int64 { return max(1, d.Milliseconds()) }
	_, _ = fmt.Fprintf(w, `{"code":"200000","data":{"token":%q,"instanceServers":[{"endpoint":"%s://%s/","encrypt":%t,"protocol":"websocket","pingInterval":%d,"pingTimeout":%d}]}}`,
		k.newToken(), scheme, r.Host, r.TLS != nil, ms(k.ping), ms(k.pingTimeout))
}

func (k *KuCoin) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/" {
		return nil, http.StatusNotFound, "Not Found"
	}
	// "401 token is invalid" [DOC error codes, "when establishing
	// WebSocket connection"]; on the wire the upgrade is refused "401
	// Unauthorized" [CAP-3P guide].
	if !k.tokenValid(r.URL.Query().Get("token")) {
		return nil, http.StatusUnauthorized, `{"code":401,"msg":"token is invalid"}`
	}
	id := r.URL.Query().Get("connectId")
	if id == "" {
		id = randomHex(5)
	}
	// "Message limit sent to the server: 100 per 10 seconds" [DOC].
	st := &kucoinConn{connectID: id, topics: map[string]bool{}, uplink: rateCounter{n: 100, w: k.Scaled(10 * time.Second)}}
	st.lastMsg.Store(time.Now().UnixNano())
	return st, 0, ""
}

// opened sends the welcome, {"id":"hQvf8jkno","type":"welcome"}, whose id
// is the connectId ("Both the id of the welcome message and the id of the
// error message are connectId") [DOC], and starts the ping timeout.
func (k *KuCoin) opened(c *conn) {
	st := c.state.(*kucoinConn)
	c.after(k.welcome, func() {
		st.welcomed.Store(true)
		c.send(fmt.Appendf(nil, `{"id":%s,"type":"welcome"}`, marshal(st.connectID)))
	})
	limit := k.ping + k.pingTimeout
	c.goConn(func(ctx context.Context) {
		t := time.NewTimer(limit)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			left := limit - time.Since(time.Unix(0, st.lastMsg.Load()))
			if left <= 0 {
				c.send(fmt.Appendf(nil, `{"id":%s,"type":"error","code":400,"data":"ping timeout"}`, marshal(st.connectID)))
				c.close(websocket.StatusNormalClosure, "Bye")
				return
			}
			t.Reset(left)
		}
	})
}

func (k *KuCoin) sendError(c *conn, id string, code int, data string) {
	c.send(fmt.Appendf(nil, `{"id":%s,"type":"error","code":%d,"data":%s}`, marshal(id), code, marshal(data)))
}

// kucoinID reads a request id, a number or a string, as the string the
// answers carry ({"id": 1545910660739, …} → {"id":"1545910660739",
// "type":"ack"}) [DOC "Subscribe"].
func kucoinID(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func (k *KuCoin) message(c *conn, typ websocket.MessageType, p []byte) {
	st := c.state.(*kucoinConn)
	if !st.welcomed.Load() {
		return // before the welcome the connection is not available [DOC]
	}
	st.lastMsg.Store(time.Now().UnixNano())
	var req map[string]json.RawMessage
	if err := json.Unmarshal(p, &req); err != nil {
		// {"id":"…","type":"error","code":400,"data":"Unrecognized token
		// 'not': …"} with a random id, the socket stays open [CAP-3P
		// probe]; the rest of the text is Jackson's.
		word, _, _ := strings.Cut(strings.TrimSpace(string(p)), " ")
		k.sendError(c, randomHex(5), 400, fmt.Sprintf("Unrecognized token '%s': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')", word))
		return
	}
	id := kucoinID(req["id"])
	st.mu.Lock()
	okRate := st.uplink.add(time.Now())
	st.mu.Unlock()
	if !okRate {
		// "509 exceed max permits per second" [DOC error codes]; what the
		// venue does with the message is not documented: dropped.
		k.sendError(c, id, 509, "exceed max permits per second")
		return
	}
	var kind string
	_ = json.Unmarshal(req["type"], &kind)
	switch kind {
	case "ping":
		// {"id":"…","type":"ping"} → {"id":"…","type":"pong"} [DOC]; the
		// classic socket adds "timestamp" in µs [CAP-3P probe].
		c.send(fmt.Appendf(nil, `{"id":%s,"type":"pong","timestamp":%d}`, marshal(id), time.Now().UnixMicro()))
	case "subscribe", "unsubscribe":
		k.subscribeMsg(c, req, id, kind == "subscribe")
	case "openTunnel", "closeTunnel":
		// Multiplex tunnels exist ("provided for API users only") [DOC];
		// not modelled: acknowledged.
		if k.wantsAck(req) {
			c.send(fmt.Appendf(nil, `{"id":%s,"type":"ack"}`, marshal(id)))
		}
	default:
		k.sendError(c, id, 415, "command type is invalid") // [DOC error codes]
	}
}

func (k *KuCoin) wantsAck(req map[string]json.RawMessage) bool {
	var b bool
	_ = json.Unmarshal(req["response"], &b)
	return b
}

func (k *KuCoin) subscribeMsg(c *conn, req map[string]json.RawMessage, id string, sub bool) {
	st := c.state.(*kucoinConn)
	var topic string
	_ = json.Unmarshal(req["topic"], &topic)
	if topic == "" {
		k.sendError(c, id, 406, "topic is required") // [DOC error codes]
		return
	}
	var private bool
	_ = json.Unmarshal(req["privateChannel"], &private)
	if private {
		// A private topic needs a private token: "403 login is required"
		// [DOC error codes].
		k.sendError(c, id, 403, "login is required")
		return
	}
	prefix, list, ok := strings.Cut(topic, ":")
	canon, known := kucoinTopics[prefix]
	if !ok || !known || list == "" {
		// "404 topic does not exist" [DOC error codes; CAP-3P probe].
		k.sendError(c, id, 404, "topic does not exist")
		return
	}
	syms := strings.Split(list, ",")
	if len(syms) > 100 {
		// "Maximum number of batch subscriptions at a time: 100 topics"
		// [DOC]; "509 exceed max subscription count limitation of 100 per
		// time" [DOC error codes].
		k.sendError(c, id, 509, "exceed max subscription count limitation of 100 per time")
		return
	}
	for _, s := range syms {
		valid := k.Listed(s)
		if prefix == "/market/ticker" && s == "all" && len(syms) == 1 {
			valid = true // "/market/ticker:all" [DOC]
		}
		if prefix == "/market/candles" {
			sym, interval, _ := strings.Cut(s, "_")
			valid = k.Listed(sym) && interval != ""
		}
		if !valid {
			// {"id":"1665514264414","type":"error","code":404,"data":"topic
			// /market/match:ETH-UrSDT is not found"} [CAP-3P]; the whole
			// request is refused (not probed).
			k.sendError(c, id, 404, "topic "+topic+" is not found")
			return
		}
	}
	st.mu.Lock()
	if sub {
		added := 0
		for _, s := range syms {
			if !st.topics[prefix+":"+s] {
				added++
			}
		}
		// "Subscription limit for each connection: 300 topics" [DOC];
		// "Subscribing one symbol means subscribing a topic".
		if len(st.topics)+added > 300 {
			st.mu.Unlock()
			k.sendError(c, id, 509, "exceed max subscription count limitation of 300 per session")
			return
		}
		for _, s := range syms {
			st.topics[prefix+":"+s] = true
		}
	} else {
		for _, s := range syms {
			delete(st.topics, prefix+":"+s)
		}
	}
	st.mu.Unlock()
	if !sub && canon != "" {
		for _, s := range syms {
			k.unsubscribe(c, streamKey{canon, s})
		}
	}
	// {"id":"1545910660739","type":"ack"}, only when "response": true
	// [DOC "Subscribe"].
	if k.wantsAck(req) {
		c.send(fmt.Appendf(nil, `{"id":%s,"type":"ack"}`, marshal(id)))
	}
	if sub && canon != "" {
		for _, s := range syms {
			k.subscribe(c, streamKey{canon, s}, false)
		}
	}
}
