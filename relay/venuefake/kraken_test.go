package venuefake

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newKrakenTest(t *testing.T, cfg KrakenConfig) (*Kraken, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	k := NewKraken(cfg)
	return k, serve(t, k) + "/v2"
}

func TestKrakenStatusSubscribeSnapshotAndCounter(t *testing.T) {
	ctx := testCtx(t)
	k, u := newKrakenTest(t, KrakenConfig{})
	c := dial(t, ctx, u)
	f, _ := read(ctx, c)
	if !regexp.MustCompile(`^\{"channel":"status","type":"update","data":\[\{"version":"2\.0\.10","system":"online","api_version":"v2","connection_id":\d+\}\]\}$`).Match(f.data) {
		t.Fatalf("status %s", f.data)
	}
	send(t, ctx, c, `{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"],"event_trigger":"bbo"},"req_id":7}`)
	f, _ = read(ctx, c)
	if !regexp.MustCompile(`^\{"method":"subscribe","result":\{"channel":"ticker","event_trigger":"bbo","snapshot":true,"symbol":"BTC/USD"\},"success":true,"time_in":"[^"]+Z","time_out":"[^"]+Z","req_id":7\}$`).Match(f.data) {
		t.Fatalf("ack %s", f.data)
	}
	f, _ = read(ctx, c)
	if !strings.HasPrefix(string(f.data), `{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":`) {
		t.Fatalf("snapshot %s", f.data)
	}
	first, _ := k.Seq(f.data)
	next := readUntil(t, ctx, c, 10, has(`"type":"update"`))
	if n, _ := k.Seq(next); n != first+1 {
		t.Fatalf("update %d after snapshot %d", n, first)
	}
	last := seqRun(t, ctx, c, 20, k.Seq)
	if k.PushedOn(ChannelBBO, "BTC/USD") < last {
		t.Fatal("pushed below read")
	}
	// /data/0, the preset's extract, reads back too.
	d0 := string(next)[strings.Index(string(next), `"data":[`)+8 : len(next)-2]
	if n, ok := k.Seq([]byte(d0)); !ok || n != first+1 {
		t.Fatalf("Seq(/data/0) %d %v on %s", n, ok, d0)
	}
	send(t, ctx, c, `{"method":"subscribe","params":{"channel":"trade","symbol":["ETH/USD"],"snapshot":false}}`)
	readUntil(t, ctx, c, 1000, has(`"result":{"channel":"trade","snapshot":false,"symbol":"ETH/USD"},"success":true`))
	seqRun(t, ctx, c, 10, func(p []byte) (uint64, bool) {
		if !strings.HasPrefix(string(p), `{"channel":"trade"`) {
			return 0, false
		}
		return k.Seq(p)
	})
	send(t, ctx, c, `{"method":"unsubscribe","params":{"channel":"ticker","symbol":["BTC/USD"]}}`)
	readUntil(t, ctx, c, 1000, has(`"method":"unsubscribe","result":{"channel":"ticker"`, `"success":true`))
	if k.Subscribers(ChannelBBO, "BTC/USD") != 0 {
		t.Fatal("still subscribed")
	}
	send(t, ctx, c, `{"method":"ping","req_id":101}`)
	readUntil(t, ctx, c, 1000, func(p []byte) bool {
		return regexp.MustCompile(`^\{"method":"pong","time_in":"[^"]+","time_out":"[^"]+","req_id":101\}$`).Match(p)
	})
}

func TestKrakenErrors(t *testing.T) {
	ctx := testCtx(t)
	_, u := newKrakenTest(t, KrakenConfig{})
	c := dial(t, ctx, u)
	read(ctx, c) // status
	for _, tc := range []struct{ in, want string }{
		{`{"method":"subscribe","params":{"channel":"ticker","symbol":["XBT/USD"]}}`, `{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,"symbol":"XBT/USD","time_in":`},
		{`{"method":"subscribe","params":{"channel":"ticker","symbol":"BTC/USD"}}`, `{"error":"Malformed request","method":"subscribe","success":false`},
		{`{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"],"event_trigger":"fast"}}`, `"error":"Malformed request"`},
		{`{"method":"subscribe","params":{"channel":"tickers","symbol":["BTC/USD"]}}`, `"error":"Channel not supported tickers"`},
		{`{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"ticker"}}`, `{"error":"Malformed request","method":"error","success":false`},
		{`ping`, `"error":"Malformed request"`},
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
}

// TestKrakenHeartbeatAndIdle: a subscribed socket gets {"channel":
// "heartbeat"} when nothing else flows and so survives several idle
// periods; an unsubscribed silent one is closed after Idle, not before.
func TestKrakenHeartbeatAndIdle(t *testing.T) {
	ctx := testCtx(t)
	idle := 300 * time.Millisecond
	k, u := newKrakenTest(t, KrakenConfig{Config: Config{PushInterval: -1}, Idle: idle, Heartbeat: 30 * time.Millisecond})
	sub := dial(t, ctx, u)
	read(ctx, sub)
	send(t, ctx, sub, `{"method":"subscribe","params":{"channel":"ticker","symbol":["SOL/USD"]}}`)
	readUntil(t, ctx, sub, 5, has(`"success":true`))
	quiet := dial(t, ctx, u)
	took, _ := closedWithin(t, quiet, 5*time.Second)
	if took < idle-50*time.Millisecond {
		t.Fatalf("idle close after %v", took)
	}
	hb := 0
	deadline := time.Now().Add(2 * idle)
	for time.Now().Before(deadline) {
		f, err := read(ctx, sub)
		if err != nil {
			t.Fatalf("subscribed socket closed: %v", err)
		}
		if string(f.data) == `{"channel":"heartbeat"}` {
			hb++
		}
	}
	if hb < 3 {
		t.Fatalf("%d heartbeats", hb)
	}
	if cl := k.Closes(); len(cl) != 1 || cl[0] != "idle" {
		t.Fatalf("closes %q", cl)
	}
}

// TestKrakenHandshakeBan: past 150 handshakes in the window the IP is
// refused 429, and stays refused for the ban even when the window slides.
func TestKrakenHandshakeBan(t *testing.T) {
	ctx := testCtx(t)
	k := NewKraken(KrakenConfig{})
	if k.limiter.(*windowLimiter).n != 150 || k.limiter.(*windowLimiter).w != 10*time.Minute || k.ban != 10*time.Minute {
		t.Fatalf("defaults %+v %v", k.limiter, k.ban)
	}
	k.Close()
	k, u := newKrakenTest(t, KrakenConfig{Config: Config{HandshakeLimit: 2, HandshakeWindow: 100 * time.Millisecond}})
	dialStatus(t, ctx, u)
	dialStatus(t, ctx, u)
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests {
		t.Fatalf("3rd %d", st)
	}
	time.Sleep(150 * time.Millisecond)
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || k.Refused429() != 2 {
		t.Fatalf("during the ban %d", st)
	}
}

func TestKrakenAnnounce(t *testing.T) {
	ctx := testCtx(t)
	k, u := newKrakenTest(t, KrakenConfig{Config: Config{AnnounceGrace: 50 * time.Millisecond}})
	c := dial(t, ctx, u)
	read(ctx, c)
	k.Announce()
	readUntil(t, ctx, c, 100, has(`"channel":"status"`, `"system":"maintenance"`))
	_, err := closedWithin(t, c, 5*time.Second)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close %v", err)
	}
}
