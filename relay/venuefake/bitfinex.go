package venuefake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Bitfinex WebSocket v2, public channels. Sources: EXCHANGES.md §7, which
// cites docs.bitfinex.com/docs/ws-general [DOC], bitfinexcom/bitfinex-api-node
// and bitfinexcom/bfx-api-mock-srv [LIB official] and captures [CAP-3P];
// docs.bitfinex.com/docs/ws-public ("The rate limit for the
// wss://api-pub.bitfinex.com/ domain is set at 20 connections per minute",
// "You can subscribe to 25 channels at the same time on the same
// connection") [DOC, read here]; a probe report of the live venue
// (2026-09-22, "Bitfinex WebSocket Profile") with the wire texts of the
// errors, the 60 s cut of a silent socket and the conf flags [CAP-3P];
// the info 20051 text as captured by several client libraries
// ("Stopping. Please try to reconnect") [CAP-3P].

// BitfinexConfig configures the Bitfinex fake. Zero fields are
// Bitfinex's documented values, scaled by Config.TimeScale.
type BitfinexConfig struct {
	Config
	// Heartbeat: "If there is no activity in the channel for 15 seconds,
	// the Websocket server will send you a heartbeat message" [DOC
	// ws-general, EXCHANGES.md §7.4]. (The probe saw one every 15 s on
	// busy book channels too; the fake follows the docs.)
	Heartbeat time.Duration
	// MaxChannels per connection: 25 [DOC ws-public]; past it error 10305
	// "subscribe: limit" [CAP-3P probe; the wire accepted 36, ws-general
	// says 30: the fake keeps the lowest documented figure]. Negative
	// means none.
	MaxChannels int
	// Silence: "a socket with no subscription and no client frame closed
	// with 1006 and no close frame 60.0 s after it opened"; a subscribed
	// socket, or one sending a ping every 20 s, stayed [CAP-3P probe].
	Silence time.Duration
}

// Bitfinex is the Bitfinex v2 public fake at /ws/2. Symbols are trading
// pairs with their "t" (tBTCUSD). Channels: ticker (ChannelTicker) and
// trades (ChannelTrades); book, candles and status are acknowledged and
// silent. Safe for concurrent use.
type Bitfinex struct {
	*Server
	hb       time.Duration
	maxChans int
	silence  time.Duration
	chanIDs  atomic.Int64
}

// bfxChan is one subscribed channel of a connection.
type bfxChan struct {
	id   int64
	name string // ticker, trades, book, candles, status
	sym  string // symbol or key
	last atomic.Int64
	done atomic.Bool
}

// bfxConn is a connection's state; mu also orders the numbered sends
// (SEQ_ALL) with the frames they number.
type bfxConn struct {
	mu    sync.Mutex
	chans map[string]*bfxChan // name|symbol
	byID  map[int64]*bfxChan
	flags int64
	seq   uint64
}

// conf flags [DOC ws-general via EXCHANGES.md §7.4; CAP-3P probe: "With
// SEQ_ALL alone the number is the last element of every frame, snapshots
// included … With TIMESTAMP as well it is the second to last, followed by
// the time"].
const (
	bfxFlagTimestamp = 32768
	bfxFlagSeqAll    = 65536
)

var bitfinexSymbols = []string{"tBTCUSD", "tETHUSD", "tSOLUSD", "tXMRBTC", "tBTCUST", "tBTCF0:USTF0"}

// NewBitfinex returns a Bitfinex fake; serve it with httptest.
func NewBitfinex(cfg BitfinexConfig) *Bitfinex {
	b := &Bitfinex{}
	d := scaler(cfg.TimeScale)
	b.hb = d(cfg.Heartbeat, 15*time.Second)
	b.silence = d(cfg.Silence, 60*time.Second)
	b.maxChans = cfg.MaxChannels
	if b.maxChans == 0 {
		b.maxChans = 25
	}
	b.chanIDs.Store(int64(rand.IntN(900000)) + 10000)
	set := settings{
		path:    "/ws/2",
		symbols: bitfinexSymbols,
		// The ticker's push rate is not documented (the probe saw one
		// frame about every 15 s on a perpetual): the fake's choice.
		push: time.Second,
		// "20 connections per minute" [DOC ws-public], "then 60 s rate
		// limited" [DOC requirements-and-limitations as quoted by the
		// probe], answered 429 on the handshake (xchange-stream PR #269,
		// EXCHANGES.md §7.6). No cap on open connections is documented.
		hsLimit:  20,
		hsWindow: time.Minute,
		hsBan:    time.Minute,
		// Info 20051 asks to reconnect; how long the server then waits is
		// not documented: the fake's choice.
		grace: 5 * time.Second,
	}
	b.Server = newServer("bitfinex", b, cfg.Config, set)
	return b
}

func (b *Bitfinex) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/ws/2" {
		return nil, http.StatusNotFound, "Not Found"
	}
	return &bfxConn{chans: map[string]*bfxChan{}, byID: map[int64]*bfxChan{}}, 0, ""
}

// opened sends the info event: "Right after connecting you will receive
// an info message that contains the actual version of the websocket
// stream, along with a platform status flag (1 for operative, 0 for
// maintenance)" [DOC ws-general]; serverId as captured [CAP-3P].
func (b *Bitfinex) opened(c *conn) {
	st := c.state.(*bfxConn)
	c.send(fmt.Appendf(nil, `{"event":"info","version":2,"serverId":%q,"platform":{"status":1}}`, randomUUID()))
	silenceCut(c, b.silence, "silent without subscription", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.chans) > 0
	})
}

// jsonMember is one member of a JSON object, in order.
type jsonMember struct {
	k string
	v json.RawMessage
}

// orderedObject parses a JSON object keeping its member order.
func orderedObject(p []byte) ([]jsonMember, error) {
	d := json.NewDecoder(bytes.NewReader(p))
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var out []jsonMember
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		_ = json.Compact(&buf, v)
		out = append(out, jsonMember{kt.(string), buf.Bytes()})
	}
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return out, nil
}

func member(fs []jsonMember, k string) (json.RawMessage, bool) {
	for _, f := range fs {
		if f.k == k {
			return f.v, true
		}
	}
	return nil, false
}

func memberString(fs []jsonMember, k string) string {
	var s string
	if v, ok := member(fs, k); ok {
		_ = json.Unmarshal(v, &s)
	}
	return s
}

// bfxErrorFrame renders an error the way the server builds it: the request's
// members except event, then event, msg and code, then the extras
// [CAP-3P probe: {"channel":"book","symbol":"tNOPEF0:USTF0","prec":"P0",
// "len":"25","event":"error","msg":"symbol: invalid","code":10300,
// "pair":"NOPEF0:USTF0"}].
func bfxErrorFrame(req []jsonMember, msg string, code int, extra ...jsonMember) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for _, f := range req {
		if f.k == "event" {
			continue
		}
		b.Write(marshal(f.k))
		b.WriteByte(':')
		b.Write(f.v)
		b.WriteByte(',')
	}
	fmt.Fprintf(&b, `"event":"error","msg":%s,"code":%d`, marshal(msg), code)
	for _, f := range extra {
		b.WriteByte(',')
		b.Write(marshal(f.k))
		b.WriteByte(':')
		b.Write(f.v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func (b *Bitfinex) message(c *conn, typ websocket.MessageType, p []byte) {
	req, err := orderedObject(p)
	if err != nil {
		// "text that is not JSON: no reply, the socket stays open"
		// [CAP-3P probe]; arrays are the authenticated channel's inputs,
		// meaningless here: ignored too.
		return
	}
	switch ev := memberString(req, "event"); ev {
	case "ping":
		// {"event":"ping","cid":…} → {"event":"pong","ts":…,"cid":…}
		// [DOC ws-general as quoted by the probe; LIB bitfinex-api-node].
		if cid, ok := member(req, "cid"); ok {
			c.send(fmt.Appendf(nil, `{"event":"pong","ts":%d,"cid":%s}`, time.Now().UnixMilli(), cid))
		} else {
			c.send(fmt.Appendf(nil, `{"event":"pong","ts":%d}`, time.Now().UnixMilli()))
		}
	case "conf":
		// {"event":"conf","flags":196608} → {"event":"conf","status":"OK",
		// "flags":196608} [CAP-3P probe; LIB ws2.js].
		var flags int64
		if v, ok := member(req, "flags"); !ok || json.Unmarshal(v, &flags) != nil || flags < 0 {
			c.send(bfxErrorFrame(req, "flags: invalid", 10300))
			return
		}
		st := c.state.(*bfxConn)
		st.mu.Lock()
		st.flags = flags
		st.mu.Unlock()
		c.send(fmt.Appendf(nil, `{"event":"conf","status":"OK","flags":%d}`, flags))
	case "subscribe":
		b.subscribeMsg(c, req)
	case "unsubscribe":
		b.unsubscribeMsg(c, req)
	case "auth":
		// Authentication does not exist on api-pub; the failure shape of
		// the authenticated domain [LIB bitfinex-api-node]. Not probed.
		c.send([]byte(`{"event":"auth","status":"FAILED","chanId":0,"code":10100,"msg":"apikey: invalid"}`))
	default:
		// "event nope → code 10000 event: invalid (nope)" [CAP-3P probe].
		c.send(bfxErrorFrame(req, "event: invalid ("+ev+")", 10000))
	}
}

// bfxChannels are the public channels: the modelled ones map onto
// streams, the others are acknowledged and silent.
var bfxChannels = map[string]string{
	"ticker": ChannelTicker, "trades": ChannelTrades, "book": "", "candles": "", "status": "",
}

func (b *Bitfinex) subscribeMsg(c *conn, req []jsonMember) {
	st := c.state.(*bfxConn)
	name := memberString(req, "channel")
	canon, known := bfxChannels[name]
	if !known {
		// {"channel":"bogus-channel","event":"error","msg":"channel:
		// unknown","code":10300} [CAP-3P probe: the live venue answers
		// 10300 where the docs list 10302].
		c.send(bfxErrorFrame(req, "channel: unknown", 10300))
		return
	}
	var sym, pair string
	keyed := name == "candles" || name == "status"
	if keyed {
		if sym = memberString(req, "key"); sym == "" {
			c.send(bfxErrorFrame(req, "key: invalid", 10300)) // not documented
			return
		}
	} else {
		sym = memberString(req, "symbol")
		// "A symbol sent without the t was accepted and acked as
		// tBTCF0:USTF0" [CAP-3P probe]; lowercase is invalid ("btcusd is
		// invalid, BTCUSD is valid") [DOC ws-general].
		if !strings.HasPrefix(sym, "t") && !strings.HasPrefix(sym, "f") && b.Listed("t"+sym) {
			sym = "t" + sym
		}
		pair = strings.TrimPrefix(strings.TrimPrefix(sym, "t"), "f")
		if !b.Listed(sym) {
			// Unknown pair: 10300 "symbol: invalid" with the pair, the
			// socket stays open [CAP-3P probe, twice; the docs list 10001
			// "Unknown pair", the wire uses the generic code].
			c.send(bfxErrorFrame(req, "symbol: invalid", 10300, jsonMember{"pair", marshal(pair)}))
			return
		}
	}
	st.mu.Lock()
	if dup, ok := st.chans[name+"|"+sym]; ok {
		st.mu.Unlock()
		// "the same book twice: code 10301 subscribe: dup with the chanId
		// of the first" [CAP-3P probe].
		c.send(bfxErrorFrame(req, "subscribe: dup", 10301,
			jsonMember{"chanId", marshal(dup.id)}, jsonMember{"pair", marshal(pair)}))
		return
	}
	if b.maxChans > 0 && len(st.chans) >= b.maxChans {
		st.mu.Unlock()
		// "the 37th subscription on a socket: code 10305 subscribe:
		// limit", the socket stays open [CAP-3P probe; 10305 "Reached
		// limit of open channels" DOC ws-general].
		c.send(bfxErrorFrame(req, "subscribe: limit", 10305, jsonMember{"pair", marshal(pair)}))
		return
	}
	ch := &bfxChan{id: b.chanIDs.Add(1), name: name, sym: sym}
	ch.last.Store(time.Now().UnixNano())
	st.chans[name+"|"+sym] = ch
	st.byID[ch.id] = ch
	st.mu.Unlock()
	// {"event":"subscribed","channel":"ticker","chanId":225000,"symbol":
	// "tXMRBTC","pair":"XMRBTC"} [CAP-3P, EXCHANGES.md §7.3].
	if keyed {
		c.send(fmt.Appendf(nil, `{"event":"subscribed","channel":%q,"chanId":%d,"key":%s}`, name, ch.id, marshal(sym)))
	} else {
		c.send(fmt.Appendf(nil, `{"event":"subscribed","channel":%q,"chanId":%d,"symbol":%s,"pair":%s}`, name, ch.id, marshal(sym), marshal(pair)))
	}
	b.heartbeat(c, ch)
	if canon != "" {
		// The first data frame after the ack is the current state: the
		// ticker, or a snapshot of trades [DOC via EXCHANGES.md §7.3].
		b.subscribe(c, streamKey{canon, sym}, true)
	}
}

// heartbeat sends [chanId,"hb"] whenever channel ch had no frame for the
// heartbeat period [DOC ws-general; CAP-3P: [225000,"hb"]].
func (b *Bitfinex) heartbeat(c *conn, ch *bfxChan) {
	c.goConn(func(ctx context.Context) {
		t := time.NewTimer(b.hb)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if ch.done.Load() {
				return
			}
			left := b.hb - time.Since(time.Unix(0, ch.last.Load()))
			if left <= 0 {
				b.sendArray(c, ch, []byte(`"hb"`))
				left = b.hb
			}
			t.Reset(left)
		}
	})
}

func (b *Bitfinex) unsubscribeMsg(c *conn, req []jsonMember) {
	st := c.state.(*bfxConn)
	var id int64
	raw, _ := member(req, "chanId")
	_ = json.Unmarshal(raw, &id)
	st.mu.Lock()
	ch := st.byID[id]
	if ch != nil {
		delete(st.byID, id)
		delete(st.chans, ch.name+"|"+ch.sym)
		ch.done.Store(true)
	}
	st.mu.Unlock()
	if ch == nil {
		// "unsubscribe of an unknown chanId: code 10400 unsubscribe:
		// invalid" [CAP-3P probe]. Unsubscribing needs the chanId the
		// server assigned (bitfinex-api-node unsubscribe(chanId)) [LIB].
		c.send(bfxErrorFrame(req, "unsubscribe: invalid", 10400))
		return
	}
	if canon := bfxChannels[ch.name]; canon != "" {
		b.unsubscribe(c, streamKey{canon, ch.sym})
	}
	// {"event":"unsubscribed","status":"OK","chanId":4} [CAP-3P, mock
	// test of bitfinex-api-node].
	c.send(fmt.Appendf(nil, `{"event":"unsubscribed","status":"OK","chanId":%d}`, id))
}

// sendArray sends [chanId, parts…] on c, numbered and stamped as the
// connection's conf flags ask; it is the only sender of array frames, so
// the numbers follow the queue order.
func (b *Bitfinex) sendArray(c *conn, ch *bfxChan, parts ...[]byte) {
	st := c.state.(*bfxConn)
	st.mu.Lock()
	defer st.mu.Unlock()
	if ch.done.Load() {
		return
	}
	buf := strconv.AppendInt([]byte{'['}, ch.id, 10)
	for _, p := range parts {
		buf = append(buf, ',')
		buf = append(buf, p...)
	}
	if st.flags&bfxFlagSeqAll != 0 {
		st.seq++
		buf = strconv.AppendUint(append(buf, ','), st.seq, 10)
	}
	if st.flags&bfxFlagTimestamp != 0 {
		buf = strconv.AppendInt(append(buf, ','), time.Now().UnixMilli(), 10)
	}
	buf = append(buf, ']')
	ch.last.Store(time.Now().UnixNano())
	c.send(buf)
}
