package venuefake

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newOKXTest(t *testing.T, cfg OKXConfig) (*OKX, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	o := NewOKX(cfg)
	return o, serve(t, o) + "/ws/v5/public"
}

func TestOKXSubscribeAckAndCounter(t *testing.T) {
	ctx := testCtx(t)
	o, u := newOKXTest(t, OKXConfig{})
	c := dial(t, ctx, u)
	send(t, ctx, c, `{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}`)
	f, _ := read(ctx, c)
	if !regexp.MustCompile(`^\{"event":"subscribe","arg":\{"channel":"tickers","instId":"BTC-USDT"\},"connId":"[0-9a-f]{8}"\}$`).Match(f.data) {
		t.Fatalf("ack %s", f.data)
	}
	f, _ = read(ctx, c)
	m := obj(t, f.data)
	data := m["data"].([]any)[0].(map[string]any)
	for _, k := range []string{"instType", "instId", "last", "lastSz", "askPx", "askSz", "bidPx", "bidSz", "open24h", "high24h", "low24h", "volCcy24h", "vol24h", "sodUtc0", "sodUtc8", "ts"} {
		if _, ok := data[k]; !ok {
			t.Fatalf("ticker lacks %s: %s", k, f.data)
		}
	}
	seqRun(t, ctx, c, 20, o.Seq)
	// data[0] alone (the preset's extract) reads back too.
	one := strings.TrimSuffix(strings.SplitN(string(f.data), `"data":[`, 2)[1], "]}")
	if n, ok := o.Seq([]byte(one)); !ok || n == 0 {
		t.Fatalf("Seq(data[0]) = %d %v on %s", n, ok, one)
	}
	// With an id, the ack carries it first.
	send(t, ctx, c, `{"id":"1512","op":"subscribe","args":[{"channel":"trades","instId":"ETH-USDT"},{"channel":"bbo-tbt","instId":"ETH-USDT"}]}`)
	readUntil(t, ctx, c, 1000, has(`{"id":"1512","event":"subscribe","arg":{"channel":"trades","instId":"ETH-USDT"}`))
	readUntil(t, ctx, c, 1000, has(`{"id":"1512","event":"subscribe","arg":{"channel":"bbo-tbt","instId":"ETH-USDT"}`))
	seqRun(t, ctx, c, 10, func(p []byte) (uint64, bool) {
		if !strings.Contains(string(p), `"channel":"bbo-tbt"`) {
			return 0, false
		}
		return o.Seq(p)
	})
	send(t, ctx, c, `{"op":"unsubscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}`)
	readUntil(t, ctx, c, 1000, has(`{"event":"unsubscribe","arg":{"channel":"tickers","instId":"BTC-USDT"}`))
	if o.Subscribers(ChannelTicker, "BTC-USDT") != 0 {
		t.Fatal("still subscribed")
	}
}

func TestOKXErrors(t *testing.T) {
	ctx := testCtx(t)
	_, u := newOKXTest(t, OKXConfig{})
	c := dial(t, ctx, u)
	for _, tc := range []struct{ in, want string }{
		{`{"op":"subscribe","argss":[{"channel":"tickers","instId":"BTC-USDT"}]}`, `{"event":"error","msg":"Invalid request: {\"op\":\"subscribe\",\"argss\":[{\"channel\":\"tickers\",\"instId\":\"BTC-USDT\"}]}","code":"60012","connId":`},
		{`{"op":"subscribe",`, `{"event":"error","msg":"Illegal request: {\"op\":\"subscribe\",","code":"60012"`},
		{`{"op":"sub","args":[{"channel":"tickers","instId":"BTC-USDT"}]}`, `"msg":"Invalid op: sub","code":"60019"`},
		{`{"op":"subscribe","args":[{"channel":"tickers","instId":"NMR-USDT"}]}`, `{"event":"error","msg":"Wrong URL or channel:tickers,instId:NMR-USDT doesn't exist. Please use the correct URL, channel and parameters referring to API document.","code":"60018","connId":`},
		{`{"op":"subscribe","args":[{"channel":"candle1m","instId":"BTC-USDT"}]}`, `"code":"60018"`},
		{`{"id":"7","op":"subscribe","args":[]}`, `{"id":"7","event":"error","msg":"Invalid request:`},
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
	// The socket stays open after errors: a good subscribe still works.
	send(t, ctx, c, `{"op":"subscribe","args":[{"channel":"tickers","instId":"SOL-USDT"}]}`)
	readUntil(t, ctx, c, 10, has(`"event":"subscribe"`))
	if st := dialStatus(t, ctx, strings.TrimSuffix(u, "/public")+"/private"); st != http.StatusNotFound {
		t.Fatalf("other path %d", st)
	}
}

// TestOKXKeepalive: text ping → text pong; a socket the server has sent
// nothing to for Idle is closed with 4004, one kept busy by pings or data
// is not.
func TestOKXKeepalive(t *testing.T) {
	ctx := testCtx(t)
	idle := 300 * time.Millisecond
	o, u := newOKXTest(t, OKXConfig{Idle: idle})
	quiet := dial(t, ctx, u)
	pinger := dial(t, ctx, u)
	fed := dial(t, ctx, u)
	send(t, ctx, fed, `{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}`)
	fedCtx, stopFed := context.WithCancel(ctx)
	defer stopFed()
	fedErr := make(chan error, 1)
	go func() {
		for {
			if _, err := read(fedCtx, fed); err != nil {
				fedErr <- err
				return
			}
		}
	}()
	done := make(chan struct{})
	pingErr := make(chan error, 1)
	go func() {
		defer close(pingErr)
		for {
			select {
			case <-done:
				return
			case <-time.After(idle / 3):
			}
			if err := pinger.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
				pingErr <- err
				return
			}
			f, err := read(ctx, pinger)
			if err != nil || string(f.data) != "pong" {
				pingErr <- err
				return
			}
		}
	}()
	took, err := closedWithin(t, quiet, 5*time.Second)
	if took < idle-50*time.Millisecond || websocket.CloseStatus(err) != 4004 {
		t.Fatalf("quiet socket closed after %v: %v", took, err)
	}
	var ce websocket.CloseError
	if !strings.Contains(err.Error(), "No data received in 30s.") {
		t.Fatalf("reason %v %v", err, ce)
	}
	time.Sleep(2 * idle)
	close(done)
	if err := <-pingErr; err != nil {
		t.Fatalf("pinging socket: %v", err)
	}
	select {
	case err := <-fedErr:
		t.Fatalf("fed socket: %v", err)
	default:
	}
	if cl := o.Closes(); len(cl) != 1 {
		t.Fatalf("closes %q", cl)
	}
}

func TestOKXHandshakeLimitAndOps(t *testing.T) {
	ctx := testCtx(t)
	o := NewOKX(OKXConfig{})
	if o.limiter.(*windowLimiter).n != 3 || o.limiter.(*windowLimiter).w != time.Second || o.maxConns != 0 || o.opsLimit != 480 || o.opsWindow != time.Hour {
		t.Fatalf("defaults %+v %d %d %v", o.limiter, o.maxConns, o.opsLimit, o.opsWindow)
	}
	o.Close()
	o, u := newOKXTest(t, OKXConfig{Config: Config{HandshakeWindow: time.Hour}, OpsLimit: 2})
	var c *websocket.Conn
	for range 3 {
		c = dial(t, ctx, u)
	}
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || o.Refused429() != 1 {
		t.Fatalf("4th handshake in the window: %d", st)
	}
	for range 2 {
		send(t, ctx, c, `{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}`)
		readUntil(t, ctx, c, 10, has(`"event":"subscribe"`))
	}
	send(t, ctx, c, `{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}`)
	readUntil(t, ctx, c, 10, has(`"code":"60014"`))
}

func TestOKXNotice(t *testing.T) {
	ctx := testCtx(t)
	o, u := newOKXTest(t, OKXConfig{Config: Config{AnnounceGrace: 100 * time.Millisecond}})
	c := dial(t, ctx, u)
	send(t, ctx, c, `{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}`)
	start := time.Now()
	o.Announce()
	readUntil(t, ctx, c, 1000, has(`{"event":"notice","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","code":"64008","connId":"`))
	closedWithin(t, c, 5*time.Second)
	if time.Since(start) < 90*time.Millisecond {
		t.Fatal("closed before the grace")
	}
}
