package venuefake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// newKuCoinTest serves a KuCoin fake and returns it with the httptest
// base URL (http://…).
func newKuCoinTest(t *testing.T, cfg KuCoinConfig) (*KuCoin, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	k := NewKuCoin(cfg)
	srv := httptest.NewServer(k)
	t.Cleanup(srv.Close)
	t.Cleanup(k.Close)
	return k, srv.URL
}

type kucoinBullet struct {
	Code string `json:"code"`
	Data struct {
		Token           string `json:"token"`
		InstanceServers []struct {
			Endpoint     string `json:"endpoint"`
			Encrypt      bool   `json:"encrypt"`
			Protocol     string `json:"protocol"`
			PingInterval int64  `json:"pingInterval"`
			PingTimeout  int64  `json:"pingTimeout"`
		} `json:"instanceServers"`
	} `json:"data"`
}

// kucoinResolve makes the token call as the preset's resolve does.
func kucoinResolve(t *testing.T, ctx context.Context, k *KuCoin, base string) kucoinBullet {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, k.BulletURL(base), nil)
	req.Close = true // no idle connection outlives the test
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var b kucoinBullet
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &b) != nil || b.Code != "200000" || len(b.Data.InstanceServers) != 1 || b.Data.Token == "" {
		t.Fatalf("bullet %d %s", resp.StatusCode, raw)
	}
	return b
}

// kucoinDial resolves, dials and reads the welcome.
func kucoinDial(t *testing.T, ctx context.Context, k *KuCoin, base, connectID string) *websocket.Conn {
	t.Helper()
	b := kucoinResolve(t, ctx, k, base)
	c := dial(t, ctx, b.Data.InstanceServers[0].Endpoint+"?token="+b.Data.Token+"&connectId="+connectID)
	if f, err := read(ctx, c); err != nil || string(f.data) != `{"id":"`+connectID+`","type":"welcome"}` {
		t.Fatalf("welcome %s %v", f.data, err)
	}
	return c
}

func kucoinSub(id, topic string) string {
	return fmt.Sprintf(`{"id":%q,"type":"subscribe","topic":%q,"privateChannel":false,"response":true}`, id, topic)
}

func TestKuCoinBulletWelcomeSubscribeAndCounter(t *testing.T) {
	ctx := testCtx(t)
	k, base := newKuCoinTest(t, KuCoinConfig{})
	b := kucoinResolve(t, ctx, k, base)
	is := b.Data.InstanceServers[0]
	if is.Endpoint != "ws"+strings.TrimPrefix(base, "http")+"/" || is.Encrypt || is.Protocol != "websocket" || is.PingInterval != 18000 || is.PingTimeout != 10000 {
		t.Fatalf("instance server %+v", is)
	}
	if k.Bullets() != 1 {
		t.Fatalf("bullets %d", k.Bullets())
	}
	c := kucoinDial(t, ctx, k, base, "hQvf8jkno")
	if k.Bullets() != 2 || k.Handshakes() != 1 {
		t.Fatalf("token calls counted as handshakes: %d %d", k.Bullets(), k.Handshakes())
	}
	send(t, ctx, c, kucoinSub("1", "/market/ticker:BTC-USDT"))
	if f, _ := read(ctx, c); string(f.data) != `{"id":"1","type":"ack"}` {
		t.Fatalf("ack %s", f.data)
	}
	f, _ := read(ctx, c)
	if !regexp.MustCompile(`^\{"type":"message","topic":"/market/ticker:BTC-USDT","subject":"trade\.ticker","data":\{"bestAsk":"[0-9.]+","bestAskSize":"[0-9.]+","bestBid":"[0-9.]+","bestBidSize":"[0-9.]+","price":"[0-9.]+","sequence":"\d+","size":"[0-9.]+","time":\d{13}\}\}$`).Match(f.data) {
		t.Fatalf("ticker %s", f.data)
	}
	var m struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(f.data, &m)
	if n, ok := k.Seq(m.Data); !ok || n == 0 {
		t.Fatalf("Seq(/data) %d %v", n, ok)
	}
	seqRun(t, ctx, c, 20, k.Seq)
	// A numeric id is answered as a string; several symbols per topic.
	send(t, ctx, c, `{"id":1545910660739,"type":"subscribe","topic":"/spotMarket/level1:ETH-USDT,SOL-USDT","response":true}`)
	readUntil(t, ctx, c, 1000, has(`{"id":"1545910660739","type":"ack"}`))
	l1 := readUntil(t, ctx, c, 1000, has(`"topic":"/spotMarket/level1:SOL-USDT"`))
	if !regexp.MustCompile(`^\{"type":"message","topic":"/spotMarket/level1:SOL-USDT","subject":"level1","data":\{"asks":\["[0-9.]+","[0-9.]+"\],"bids":\["[0-9.]+","[0-9.]+"\],"timestamp":\d{13}\}\}$`).Match(l1) {
		t.Fatalf("level1 %s", l1)
	}
	seqRun(t, ctx, c, 10, func(b []byte) (uint64, bool) {
		if !has(`"topic":"/spotMarket/level1:ETH-USDT"`)(b) {
			return 0, false
		}
		return k.Seq(b)
	})
	send(t, ctx, c, kucoinSub("3", "/market/match:ETH-USDT"))
	mt := readUntil(t, ctx, c, 1000, has(`"subject":"trade.l3match"`))
	if !regexp.MustCompile(`"data":\{"symbol":"ETH-USDT","sequence":"\d+","side":"(buy|sell)","size":"[0-9.]+","price":"[0-9.]+","takerOrderId":"[0-9a-f]{24}","time":"\d{19}","type":"match","makerOrderId":"[0-9a-f]{24}","tradeId":"[0-9a-f]{24}"\}`).Match(mt) {
		t.Fatalf("match %s", mt)
	}
	send(t, ctx, c, `{"id":"4","type":"unsubscribe","topic":"/market/ticker:BTC-USDT","privateChannel":false,"response":true}`)
	readUntil(t, ctx, c, 1000, has(`{"id":"4","type":"ack"}`))
	if k.Subscribers(ChannelTicker, "BTC-USDT") != 0 || k.Subscribers(ChannelBBO, "SOL-USDT") != 1 {
		t.Fatal("subscriptions after unsubscribe")
	}
	// Another method than POST is not the token call.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, k.BulletURL(base), nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET bullet-public: %d", resp.StatusCode)
	}
}

// TestKuCoinScaledIntervals: the token call returns the intervals scaled
// by TimeScale, which is what the relay then pings at.
func TestKuCoinScaledIntervals(t *testing.T) {
	ctx := testCtx(t)
	k, base := newKuCoinTest(t, KuCoinConfig{Config: Config{TimeScale: 0.01}})
	is := kucoinResolve(t, ctx, k, base).Data.InstanceServers[0]
	if is.PingInterval != 180 || is.PingTimeout != 100 {
		t.Fatalf("scaled intervals %+v", is)
	}
}

func TestKuCoinTokenRequired(t *testing.T) {
	ctx := testCtx(t)
	k, base := newKuCoinTest(t, KuCoinConfig{TokenLifetime: 150 * time.Millisecond})
	ws := "ws" + strings.TrimPrefix(base, "http") + "/"
	for _, u := range []string{ws, ws + "?token=", ws + "?token=forged&connectId=1"} {
		if st := dialStatus(t, ctx, u); st != http.StatusUnauthorized {
			t.Fatalf("%s: %d", u, st)
		}
	}
	b := kucoinResolve(t, ctx, k, base)
	u := b.Data.InstanceServers[0].Endpoint + "?token=" + b.Data.Token
	if st := dialStatus(t, ctx, u); st != http.StatusSwitchingProtocols {
		t.Fatalf("valid token: %d", st)
	}
	time.Sleep(200 * time.Millisecond)
	if st := dialStatus(t, ctx, u); st != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", st)
	}
	// WSURL carries a fresh token; without connectId the welcome has an id of its own.
	c := dial(t, ctx, strings.Split(k.WSURL(base), "&")[0])
	if f, _ := read(ctx, c); !regexp.MustCompile(`^\{"id":"[0-9a-f]{10}","type":"welcome"\}$`).Match(f.data) {
		t.Fatalf("welcome %s", f.data)
	}
}

// TestKuCoinBeforeWelcome: what the client sends before the welcome is
// not answered.
func TestKuCoinBeforeWelcome(t *testing.T) {
	ctx := testCtx(t)
	k, base := newKuCoinTest(t, KuCoinConfig{WelcomeDelay: 200 * time.Millisecond})
	c := dial(t, ctx, k.WSURL(base))
	send(t, ctx, c, kucoinSub("early", "/market/ticker:BTC-USDT"))
	readUntil(t, ctx, c, 1, has(`"type":"welcome"`))
	send(t, ctx, c, `{"id":"p","type":"ping"}`)
	if f, _ := read(ctx, c); !strings.HasPrefix(string(f.data), `{"id":"p","type":"pong","timestamp":`) {
		t.Fatalf("after the welcome: %s", f.data)
	}
	if k.Subscribers(ChannelTicker, "BTC-USDT") != 0 {
		t.Fatal("early subscribe honoured")
	}
}

func TestKuCoinErrors(t *testing.T) {
	ctx := testCtx(t)
	k, base := newKuCoinTest(t, KuCoinConfig{Config: Config{PushInterval: -1}})
	c := kucoinDial(t, ctx, k, base, "cid")
	many := make([]string, 101)
	for i := range many {
		many[i] = "BTC-USDT"
	}
	for _, tc := range []struct{ in, want string }{
		{kucoinSub("1", "/market/match:ETH-UrSDT"), `^\{"id":"1","type":"error","code":404,"data":"topic /market/match:ETH-UrSDT is not found"\}$`},
		{kucoinSub("2", "/market/ticker:BTC-USDT,NOPE-USDT"), `"code":404,"data":"topic /market/ticker:BTC-USDT,NOPE-USDT is not found"`},
		{kucoinSub("3", "/market/nope:BTC-USDT"), `^\{"id":"3","type":"error","code":404,"data":"topic does not exist"\}$`},
		{`{"id":"4","type":"subscribe","response":true}`, `^\{"id":"4","type":"error","code":406,"data":"topic is required"\}$`},
		{`{"id":"5","type":"sub","topic":"/market/ticker:BTC-USDT"}`, `^\{"id":"5","type":"error","code":415,"data":"command type is invalid"\}$`},
		{`{"id":"6","type":"subscribe","topic":"/market/ticker:BTC-USDT","privateChannel":true,"response":true}`, `"code":403,"data":"login is required"`},
		{kucoinSub("7", "/market/ticker:"+strings.Join(many, ",")), `"code":509,"data":"exceed max subscription count limitation of 100 per time"`},
		{`not json`, `^\{"id":"[0-9a-f]{10}","type":"error","code":400,"data":"Unrecognized token 'not': was expecting`},
		{`{"id":1545910590801,"type":"ping"}`, `^\{"id":"1545910590801","type":"pong","timestamp":\d{16}\}$`},
	} {
		send(t, ctx, c, tc.in)
		f, err := read(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(tc.want).Match(f.data) {
			t.Errorf("%s\n got %s\nwant %s", tc.in, f.data, tc.want)
		}
	}
	// Without "response": true a subscribe is not acknowledged.
	send(t, ctx, c, `{"id":"8","type":"subscribe","topic":"/market/ticker:ETH-USDT"}`)
	send(t, ctx, c, `{"id":"9","type":"ping"}`)
	if f, _ := read(ctx, c); !strings.HasPrefix(string(f.data), `{"id":"9","type":"pong"`) {
		t.Fatalf("after a silent subscribe: %s", f.data)
	}
	if k.Subscribers(ChannelTicker, "ETH-USDT") != 1 || k.Subscribers(ChannelTicker, "BTC-USDT") != 0 {
		t.Fatal("subscriptions")
	}
}

// TestKuCoinPingTimeout: a client silent for pingInterval+pingTimeout
// gets "ping timeout" and close 1000 "Bye", not before; one that pings
// stays.
func TestKuCoinPingTimeout(t *testing.T) {
	ctx := testCtx(t)
	limit := 400 * time.Millisecond
	k, base := newKuCoinTest(t, KuCoinConfig{PingInterval: 250 * time.Millisecond, PingTimeout: 150 * time.Millisecond, Config: Config{PushInterval: -1}})
	if b := kucoinResolve(t, ctx, k, base); b.Data.InstanceServers[0].PingInterval != 250 {
		t.Fatalf("pingInterval %d", b.Data.InstanceServers[0].PingInterval)
	}
	silent := kucoinDial(t, ctx, k, base, "s")
	start := time.Now()
	pinger := kucoinDial(t, ctx, k, base, "p")
	// A subscription does not keep a silent client alive.
	send(t, ctx, silent, kucoinSub("1", "/market/ticker:BTC-USDT"))
	readUntil(t, ctx, silent, 10, has(`"type":"ack"`))
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				errc <- nil
				return
			case <-time.After(limit / 8):
			}
			if err := pinger.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":"%d","type":"ping"}`, i)); err != nil {
				errc <- err
				return
			}
			if f, err := read(ctx, pinger); err != nil || !strings.Contains(string(f.data), `"type":"pong"`) {
				errc <- fmt.Errorf("%s %v", f.data, err)
				return
			}
		}
	}()
	readUntil(t, ctx, silent, 100, has(`{"id":"s","type":"error","code":400,"data":"ping timeout"}`))
	_, err := closedWithin(t, silent, 5*time.Second)
	if time.Since(start) < limit-50*time.Millisecond || websocket.CloseStatus(err) != websocket.StatusNormalClosure || !strings.Contains(err.Error(), "Bye") {
		t.Fatalf("silent client closed after %v: %v", time.Since(start), err)
	}
	time.Sleep(limit)
	close(stop)
	if err := <-errc; err != nil {
		t.Fatalf("pinging client: %v", err)
	}
}

func TestKuCoinLimits(t *testing.T) {
	ctx := testCtx(t)
	k := NewKuCoin(KuCoinConfig{})
	if l := k.limiter.(*windowLimiter); l.n != 30 || l.w != time.Minute || k.maxConns != 50 {
		t.Fatalf("defaults %+v %d", l, k.maxConns)
	}
	k.Close()
	k, base := newKuCoinTest(t, KuCoinConfig{Config: Config{HandshakeLimit: 2, HandshakeWindow: time.Hour, MaxConns: 1, PushInterval: -1}})
	c := dial(t, ctx, k.WSURL(base))
	if st := dialStatus(t, ctx, k.WSURL(base)); st != http.StatusTooManyRequests {
		t.Fatalf("past the cap: %d", st)
	}
	c.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for k.Open() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c = dial(t, ctx, k.WSURL(base))
	c.Close(websocket.StatusNormalClosure, "")
	if st := dialStatus(t, ctx, k.WSURL(base)); st != http.StatusTooManyRequests || k.Refused429() != 2 {
		t.Fatalf("past the rate: %d", st)
	}
	// Uplink: 100 messages per 10 s, then 509.
	k2, base2 := newKuCoinTest(t, KuCoinConfig{Config: Config{PushInterval: -1}})
	c2 := kucoinDial(t, ctx, k2, base2, "u")
	for i := range 100 {
		send(t, ctx, c2, fmt.Sprintf(`{"id":"%d","type":"ping"}`, i))
		readUntil(t, ctx, c2, 1, has(`"type":"pong"`))
	}
	send(t, ctx, c2, `{"id":"x","type":"ping"}`)
	readUntil(t, ctx, c2, 1, has(`{"id":"x","type":"error","code":509,"data":"exceed max permits per second"}`))
}

// TestKuCoinMaxAge: a connection is closed when it reaches its age, even
// while the client pings.
func TestKuCoinMaxAge(t *testing.T) {
	ctx := testCtx(t)
	age := 300 * time.Millisecond
	k, base := newKuCoinTest(t, KuCoinConfig{MaxAge: age, Config: Config{PushInterval: -1}})
	if d := NewKuCoin(KuCoinConfig{}); d.set.maxAge != 24*time.Hour {
		d.Close()
		t.Fatalf("default age %v", d.set.maxAge)
	} else {
		d.Close()
	}
	start := time.Now() // the age counts from the upgrade
	c := kucoinDial(t, ctx, k, base, "age")
	go func() {
		for i := range 20 {
			if c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":"%d","type":"ping"}`, i)) != nil {
				return
			}
			time.Sleep(age / 10)
		}
	}()
	_, err := closedWithin(t, c, 5*time.Second)
	if time.Since(start) < age-50*time.Millisecond || websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("closed after %v: %v", time.Since(start), err)
	}
}

func TestKuCoinAnnounceIsAPlainClose(t *testing.T) {
	ctx := testCtx(t)
	k, base := newKuCoinTest(t, KuCoinConfig{Config: Config{AnnounceGrace: 50 * time.Millisecond, PushInterval: -1}})
	c := kucoinDial(t, ctx, k, base, "a")
	k.Announce()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := c.Read(rctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after Announce: %v", err)
	}
}
