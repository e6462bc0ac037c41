package venuefake

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newBitfinexTest(t *testing.T, cfg BitfinexConfig) (*Bitfinex, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	b := NewBitfinex(cfg)
	return b, serve(t, b) + "/ws/2"
}

// bfxDial dials and checks the info event that opens every connection.
func bfxDial(t *testing.T, ctx context.Context, u string) *websocket.Conn {
	t.Helper()
	c := dial(t, ctx, u)
	f, err := read(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\{"event":"info","version":2,"serverId":"[0-9a-f-]{36}","platform":\{"status":1\}\}$`).Match(f.data) {
		t.Fatalf("info %s", f.data)
	}
	return c
}

// bfxSubscribe subscribes and returns the chanId of the ack.
func bfxSubscribe(t *testing.T, ctx context.Context, c *websocket.Conn, channel, symbol string) int64 {
	t.Helper()
	send(t, ctx, c, fmt.Sprintf(`{"event":"subscribe","channel":%q,"symbol":%q}`, channel, symbol))
	ack := readUntil(t, ctx, c, 1000, has(`"event":"subscribed"`))
	m := regexp.MustCompile(`^\{"event":"subscribed","channel":"` + channel + `","chanId":(\d+),"symbol":"(t[A-Z0-9:]+)","pair":"([A-Z0-9:]+)"\}$`).FindSubmatch(ack)
	if m == nil || "t"+string(m[3]) != string(m[2]) {
		t.Fatalf("ack %s", ack)
	}
	var id int64
	fmt.Sscan(string(m[1]), &id)
	return id
}

func TestBitfinexSubscribeTickerTradesAndCounter(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBitfinexTest(t, BitfinexConfig{})
	c := bfxDial(t, ctx, u)
	tick := bfxSubscribe(t, ctx, c, "ticker", "tBTCUSD")
	f, _ := read(ctx, c)
	var frame []json.RawMessage
	if json.Unmarshal(f.data, &frame) != nil || len(frame) != 2 || string(frame[0]) != fmt.Sprint(tick) {
		t.Fatalf("ticker frame %s", f.data)
	}
	var arr []float64
	if json.Unmarshal(frame[1], &arr) != nil || len(arr) != 10 || arr[0] >= arr[2] || arr[6] <= 0 {
		t.Fatalf("ticker array %s", frame[1])
	}
	// The preset extracts /1: the counter reads back from it.
	if n, ok := b.Seq(frame[1]); !ok || n == 0 {
		t.Fatalf("Seq(/1) %d %v", n, ok)
	}
	seqRun(t, ctx, c, 20, b.Seq)

	// trades: snapshot, then each trade as te and tu with the same ID.
	tr := bfxSubscribe(t, ctx, c, "trades", "ETHUSD") // without the t: acked as tETHUSD
	pre := fmt.Sprintf("[%d,", tr)
	snap := readUntil(t, ctx, c, 1000, has(pre+"[["))
	if !regexp.MustCompile(`^\[\d+,\[\[\d+,\d{13},-?[0-9.]+,[0-9.]+\]\]\]$`).Match(snap) {
		t.Fatalf("snapshot %s", snap)
	}
	te := readUntil(t, ctx, c, 1000, has(pre+`"te",`))
	tu := readUntil(t, ctx, c, 1000, has(pre+`"tu",`))
	if strings.Replace(string(te), `"te"`, `"tu"`, 1) != string(tu) {
		t.Fatalf("te %s tu %s", te, tu)
	}
	var tf []json.RawMessage
	_ = json.Unmarshal(te, &tf)
	n1, ok1 := b.Seq(tf[2]) // the preset's /2
	n2, ok2 := b.Seq(te)
	if !ok1 || !ok2 || n1 != n2 || n1 == 0 {
		t.Fatalf("trade Seq %d %v %d %v", n1, ok1, n2, ok2)
	}
	seqRun(t, ctx, c, 10, func(p []byte) (uint64, bool) {
		if !strings.HasPrefix(string(p), pre+`"te"`) {
			return 0, false
		}
		return b.Seq(p)
	})

	// Unsubscribe needs the chanId.
	send(t, ctx, c, fmt.Sprintf(`{"event":"unsubscribe","chanId":%d}`, tick))
	readUntil(t, ctx, c, 1000, has(fmt.Sprintf(`{"event":"unsubscribed","status":"OK","chanId":%d}`, tick)))
	if b.Subscribers(ChannelTicker, "tBTCUSD") != 0 {
		t.Fatal("still subscribed")
	}
	send(t, ctx, c, fmt.Sprintf(`{"event":"unsubscribe","chanId":%d}`, tick))
	readUntil(t, ctx, c, 1000, has(fmt.Sprintf(`{"chanId":%d,"event":"error","msg":"unsubscribe: invalid","code":10400}`, tick)))
	send(t, ctx, c, `{"event":"unsubscribe","channel":"ticker","symbol":"tBTCUSD"}`)
	readUntil(t, ctx, c, 1000, has(`"msg":"unsubscribe: invalid","code":10400`))
}

func TestBitfinexErrors(t *testing.T) {
	ctx := testCtx(t)
	b, u := newBitfinexTest(t, BitfinexConfig{Config: Config{PushInterval: -1}})
	c := bfxDial(t, ctx, u)
	id := bfxSubscribe(t, ctx, c, "ticker", "tBTCUSD")
	readUntil(t, ctx, c, 10, has(fmt.Sprintf("[%d,[", id))) // the current ticker
	for _, tc := range []struct{ in, want string }{
		{`{"event":"subscribe","channel":"ticker","symbol":"tNOPEUSD"}`,
			`{"channel":"ticker","symbol":"tNOPEUSD","event":"error","msg":"symbol: invalid","code":10300,"pair":"NOPEUSD"}`},
		{`{"event":"subscribe","channel":"trades","symbol":"tbtcusd"}`, `"msg":"symbol: invalid","code":10300,"pair":"btcusd"}`},
		{`{"event":"subscribe","channel":"ticker"}`, `{"channel":"ticker","event":"error","msg":"symbol: invalid","code":10300,"pair":""}`},
		{`{"event":"subscribe","channel":"bogus-channel","symbol":"tBTCUSD"}`,
			`{"channel":"bogus-channel","symbol":"tBTCUSD","event":"error","msg":"channel: unknown","code":10300}`},
		{`{"event":"subscribe","channel":"ticker","symbol":"tBTCUSD"}`,
			fmt.Sprintf(`{"channel":"ticker","symbol":"tBTCUSD","event":"error","msg":"subscribe: dup","code":10301,"chanId":%d,"pair":"BTCUSD"}`, id)},
		{`{"event":"nope"}`, `{"event":"error","msg":"event: invalid (nope)","code":10000}`},
		{`{"event":"ping","cid":1234}`, `{"event":"pong","ts":`},
		{`{"event":"conf","flags":"x"}`, `"msg":"flags: invalid"`},
	} {
		send(t, ctx, c, tc.in)
		f, err := read(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(f.data), tc.want) {
			t.Errorf("%s\n got %s\nwant %s", tc.in, f.data, tc.want)
		}
	}
	// Text that is not JSON gets no reply: the next frame answers the ping.
	send(t, ctx, c, `hello`)
	send(t, ctx, c, `{"event":"ping","cid":7}`)
	if f, _ := read(ctx, c); !regexp.MustCompile(`^\{"event":"pong","ts":\d{13},"cid":7\}$`).Match(f.data) {
		t.Fatalf("after non-JSON: %s", f.data)
	}
	// book is acknowledged (and silent in the fake).
	send(t, ctx, c, `{"event":"subscribe","channel":"book","symbol":"tETHUSD","prec":"P0"}`)
	readUntil(t, ctx, c, 10, has(`{"event":"subscribed","channel":"book","chanId":`, `"symbol":"tETHUSD","pair":"ETHUSD"}`))
	if b.Subscribers(ChannelTicker, "tETHUSD")+b.Subscribers(ChannelTrades, "tETHUSD") != 0 {
		t.Fatal("book subscribed a stream")
	}
}

func TestBitfinexChannelLimit(t *testing.T) {
	ctx := testCtx(t)
	b := NewBitfinex(BitfinexConfig{})
	if b.maxChans != 25 || b.hb != 15*time.Second || b.silence != time.Minute {
		t.Fatalf("defaults %d %v %v", b.maxChans, b.hb, b.silence)
	}
	b.Close()
	_, u := newBitfinexTest(t, BitfinexConfig{MaxChannels: 2})
	c := bfxDial(t, ctx, u)
	bfxSubscribe(t, ctx, c, "ticker", "tBTCUSD")
	bfxSubscribe(t, ctx, c, "ticker", "tETHUSD")
	send(t, ctx, c, `{"event":"subscribe","channel":"trades","symbol":"tSOLUSD"}`)
	readUntil(t, ctx, c, 1000, has(`{"channel":"trades","symbol":"tSOLUSD","event":"error","msg":"subscribe: limit","code":10305,"pair":"SOLUSD"}`))
}

// TestBitfinexHeartbeat: [chanId,"hb"] comes when a channel had no frame
// for the heartbeat period, not before, and data postpones it.
func TestBitfinexHeartbeat(t *testing.T) {
	ctx := testCtx(t)
	hb := 150 * time.Millisecond
	b, u := newBitfinexTest(t, BitfinexConfig{Heartbeat: hb, Config: Config{PushInterval: -1}})
	c := bfxDial(t, ctx, u)
	id := bfxSubscribe(t, ctx, c, "ticker", "tBTCUSD")
	readUntil(t, ctx, c, 10, has(fmt.Sprintf("[%d,[", id)))
	last := time.Now()
	want := fmt.Sprintf(`[%d,"hb"]`, id)
	for range 2 {
		f, err := read(ctx, c)
		if err != nil || string(f.data) != want {
			t.Fatalf("%s %v", f.data, err)
		}
		if gap := time.Since(last); gap < hb-20*time.Millisecond {
			t.Fatalf("heartbeat after %v", gap)
		}
		last = time.Now()
	}
	// A pushed ticker postpones the next heartbeat by a period.
	time.Sleep(hb / 2)
	b.Push(ChannelTicker, "tBTCUSD")
	pushed := time.Now()
	readUntil(t, ctx, c, 10, has(fmt.Sprintf("[%d,[", id)))
	f, _ := read(ctx, c)
	if string(f.data) != want || time.Since(pushed) < hb-20*time.Millisecond {
		t.Fatalf("%s after %v", f.data, time.Since(pushed))
	}
}

// TestBitfinexSilence: a socket with no subscription whose client sends
// nothing is cut (no close frame) after Silence, not before; one that
// pings, or has a subscription, stays.
func TestBitfinexSilence(t *testing.T) {
	ctx := testCtx(t)
	quiet := 500 * time.Millisecond
	b, u := newBitfinexTest(t, BitfinexConfig{Silence: quiet, Config: Config{PushInterval: -1}})
	silent := bfxDial(t, ctx, u)
	pinger := bfxDial(t, ctx, u)
	sub := bfxDial(t, ctx, u)
	bfxSubscribe(t, ctx, sub, "ticker", "tBTCUSD")
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(quiet / 10):
			}
			if err := pinger.Write(ctx, websocket.MessageText, []byte(`{"event":"ping"}`)); err != nil {
				done <- err
				return
			}
			if f, err := read(ctx, pinger); err != nil || !strings.HasPrefix(string(f.data), `{"event":"pong"`) {
				done <- fmt.Errorf("%s %v", f.data, err)
				return
			}
		}
	}()
	took, err := closedWithin(t, silent, 5*time.Second)
	if took < quiet-50*time.Millisecond || isClose(err) {
		t.Fatalf("silent socket cut after %v: %v", took, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 2*quiet)
	defer cancel()
	for {
		if _, err := read(sctx, sub); err != nil {
			if sctx.Err() == nil {
				t.Fatalf("subscribed socket: %v", err)
			}
			break
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("pinging socket: %v (closes %q)", err, b.Closes())
	}
	if cl := b.Closes(); len(cl) != 1 || cl[0] != "silent without subscription" {
		t.Fatalf("closes %q", cl)
	}
}

// TestBitfinexConfFlags: SEQ_ALL numbers every array frame of the
// connection (data and heartbeats) from 1, TIMESTAMP appends the time.
func TestBitfinexConfFlags(t *testing.T) {
	ctx := testCtx(t)
	_, u := newBitfinexTest(t, BitfinexConfig{Heartbeat: 30 * time.Millisecond})
	c := bfxDial(t, ctx, u)
	send(t, ctx, c, `{"event":"conf","flags":98304}`)
	readUntil(t, ctx, c, 10, has(`{"event":"conf","status":"OK","flags":98304}`))
	bfxSubscribe(t, ctx, c, "trades", "tBTCUSD")
	re := regexp.MustCompile(`,(\d+),(\d{13})\]$`)
	var want uint64 = 1
	for range 30 {
		f, err := read(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(f.data)
		if m == nil || string(m[1]) != fmt.Sprint(want) {
			t.Fatalf("frame %d: %s", want, f.data)
		}
		want++
	}
}

func TestBitfinexHandshakeLimitAndBan(t *testing.T) {
	ctx := testCtx(t)
	b := NewBitfinex(BitfinexConfig{})
	if l := b.limiter.(*windowLimiter); l.n != 20 || l.w != time.Minute || b.ban != time.Minute || b.maxConns != 0 {
		t.Fatalf("defaults %+v %v %d", l, b.ban, b.maxConns)
	}
	b.Close()
	b, u := newBitfinexTest(t, BitfinexConfig{Config: Config{HandshakeLimit: 2, HandshakeWindow: time.Hour}})
	for range 2 {
		if st := dialStatus(t, ctx, u); st != http.StatusSwitchingProtocols {
			t.Fatalf("admitted handshake: %d", st)
		}
	}
	for range 2 {
		if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests {
			t.Fatalf("past the rate: %d", st)
		}
	}
	if b.Refused429() != 2 {
		t.Fatalf("refused %d", b.Refused429())
	}
	if st := dialStatus(t, ctx, strings.TrimSuffix(u, "/2")+"/1"); st != http.StatusTooManyRequests {
		t.Fatalf("banned IP on another path: %d", st)
	}
}

func TestBitfinexAnnounce(t *testing.T) {
	ctx := testCtx(t)
	grace := 100 * time.Millisecond
	b, u := newBitfinexTest(t, BitfinexConfig{Config: Config{AnnounceGrace: grace}})
	c := bfxDial(t, ctx, u)
	bfxSubscribe(t, ctx, c, "ticker", "tBTCUSD")
	start := time.Now()
	b.Announce()
	readUntil(t, ctx, c, 1000, has(`{"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}`))
	closedWithin(t, c, 5*time.Second)
	if time.Since(start) < grace-10*time.Millisecond {
		t.Fatal("closed before the grace")
	}
	if st := dialStatus(t, ctx, u); st != http.StatusSwitchingProtocols {
		t.Fatalf("new connections refused after Announce: %d", st)
	}
}
