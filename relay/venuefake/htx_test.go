package venuefake

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newHTXTest(t *testing.T, cfg HTXConfig) (*HTX, string) {
	t.Helper()
	if cfg.PushInterval == 0 {
		cfg.PushInterval = 5 * time.Millisecond
	}
	h := NewHTX(cfg)
	return h, serve(t, h) + "/ws"
}

// htxRead reads one frame and fails unless it is a gzip binary message.
func htxRead(t *testing.T, ctx context.Context, c *websocket.Conn) []byte {
	t.Helper()
	f, err := read(ctx, c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !f.binary || !f.gzip {
		t.Fatalf("frame not gzip binary: %q", f.data)
	}
	return f.data
}

// htxAnswer answers every server ping with the same integer and returns
// the first frame that is not a ping.
func htxNext(t *testing.T, ctx context.Context, c *websocket.Conn) []byte {
	t.Helper()
	for range 1000 {
		p := htxRead(t, ctx, c)
		if m := regexp.MustCompile(`^\{"ping":(\d+)\}$`).FindSubmatch(p); m != nil {
			send(t, ctx, c, fmt.Sprintf(`{"pong":%s}`, m[1]))
			continue
		}
		return p
	}
	t.Fatal("only pings")
	return nil
}

func TestHTXGzipSubscribeAndCounter(t *testing.T) {
	ctx := testCtx(t)
	h, u := newHTXTest(t, HTXConfig{})
	c := dial(t, ctx, u)
	send(t, ctx, c, `{"sub":"market.btcusdt.ticker","id":"id1"}`)
	if p := htxNext(t, ctx, c); !regexp.MustCompile(`^\{"id":"id1","status":"ok","subbed":"market.btcusdt.ticker","ts":\d{13}\}$`).Match(p) {
		t.Fatalf("ack %s", p)
	}
	p := htxNext(t, ctx, c)
	if !strings.HasPrefix(string(p), `{"ch":"market.btcusdt.ticker","ts":`) {
		t.Fatalf("ticker %s", p)
	}
	m := obj(t, p)["tick"].(map[string]any)
	for _, k := range []string{"open", "high", "low", "close", "amount", "vol", "count", "bid", "bidSize", "ask", "askSize", "lastPrice", "lastSize"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("tick lacks %s: %s", k, p)
		}
	}
	var last uint64
	for i := range 20 {
		n, ok := h.Seq(htxNext(t, ctx, c))
		if !ok || (i > 0 && n != last+1) {
			t.Fatalf("counter %d after %d", n, last)
		}
		last = n
	}
	// trade.detail: ids beyond 2^53 and sizes in exponent form, raw.
	send(t, ctx, c, `{"sub":"market.ethusdt.trade.detail","id":"t"}`)
	tr := func() []byte {
		for range 1000 {
			if p := htxNext(t, ctx, c); strings.Contains(string(p), "trade.detail") && strings.HasPrefix(string(p), `{"ch"`) {
				return p
			}
		}
		return nil
	}()
	if !regexp.MustCompile(`"data":\[\{"id":19315064771516719924\d{8},"ts":\d+,"tradeId":\d+,"amount":\d(\.\d+)?E-\d,"price":`).Match(tr) {
		t.Fatalf("trade %s", tr)
	}
	tick := tr[strings.Index(string(tr), `"tick":`)+7 : len(tr)-1]
	if n, ok := h.Seq(tick); !ok || n == 0 {
		t.Fatalf("Seq(/tick) on %s", tick)
	}
	send(t, ctx, c, `{"unsub":"market.btcusdt.ticker","id":"u"}`)
	for range 1000 {
		if p := htxNext(t, ctx, c); strings.HasPrefix(string(p), `{"id":"u","status":"ok","unsubbed":"market.btcusdt.ticker"`) {
			break
		}
	}
	if h.Subscribers(ChannelTicker, "btcusdt") != 0 {
		t.Fatal("still subscribed")
	}
}

func TestHTXErrors(t *testing.T) {
	ctx := testCtx(t)
	_, u := newHTXTest(t, HTXConfig{})
	c := dial(t, ctx, u)
	for _, tc := range []struct{ in, want string }{
		{`{"sub":"market.lmrusdt.ticker","id":"id488"}`, `{"status":"error","ts":\d+,"id":"id488","err-code":"bad-request","err-msg":"invalid symbol lmrusdt"}`},
		{`{"sub":"market.BTCUSDT.ticker","id":"x"}`, `"err-msg":"invalid symbol BTCUSDT"`},
		{`{"sub":"market.btcusdt.tickers","id":"x"}`, `"err-msg":"invalid topic market.btcusdt.tickers"`},
		{`{"ping":"abc"}`, `^\{"ts":\d+,"status":"error","err-code":"bad-request","err-msg":"invalid ping"\}$`},
		{`{"ping":42}`, `^\{"pong":42\}$`},
		{`hello`, `"status":"error"`},
	} {
		send(t, ctx, c, tc.in)
		if p := htxNext(t, ctx, c); !regexp.MustCompile(tc.want).Match(p) {
			t.Errorf("%s\n got %s\nwant %s", tc.in, p, tc.want)
		}
	}
}

// TestHTXPingPong: a client answering {"ping":N} with {"pong":N} stays
// past several deadlines; one that does not answer (or answers another
// number) is closed two periods after the first ping, not before.
func TestHTXPingPong(t *testing.T) {
	ctx := testCtx(t)
	period := 60 * time.Millisecond
	h, u := newHTXTest(t, HTXConfig{PingPeriod: period})
	good := dial(t, ctx, u)
	wrong := dial(t, ctx, u)
	silent := dial(t, ctx, u)
	// The good client answers every ping from the start, for 8 periods.
	goodc := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(8 * period)
		pings := 0
		for time.Now().Before(deadline) {
			f, err := read(ctx, good)
			if err != nil {
				goodc <- err
				return
			}
			m := regexp.MustCompile(`^\{"ping":(\d+)\}$`).FindSubmatch(f.data)
			if !f.gzip || m == nil {
				goodc <- fmt.Errorf("not a gzip ping: %q", f.data)
				return
			}
			pings++
			if err := good.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"pong":%s}`, m[1])); err != nil {
				goodc <- err
				return
			}
		}
		if pings < 5 {
			goodc <- fmt.Errorf("%d pings", pings)
		}
		goodc <- nil
	}()
	errc := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		for {
			f, err := read(wctx, wrong)
			if err != nil {
				errc <- err
				return
			}
			if strings.HasPrefix(string(f.data), `{"ping":`) {
				_ = wrong.Write(wctx, websocket.MessageText, []byte(`{"pong":1}`))
			}
		}
	}()
	took, err := closedWithin(t, silent, 5*time.Second)
	if took < 3*period-30*time.Millisecond || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("silent client closed after %v: %v", took, err)
	}
	if err := <-errc; websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("wrong pong: %v", err)
	}
	if err := <-goodc; err != nil {
		t.Fatalf("answering client: %v", err)
	}
	if n := len(h.Closes()); n != 2 {
		t.Fatalf("closes %q", h.Closes())
	}
}

func TestHTXHandshakeLimit(t *testing.T) {
	ctx := testCtx(t)
	h := NewHTX(HTXConfig{})
	if h.limiter.(*windowLimiter).n != 10 || h.limiter.(*windowLimiter).w != time.Second || h.maxConns != 0 {
		t.Fatalf("defaults %+v", h.limiter)
	}
	h.Close()
	h, u := newHTXTest(t, HTXConfig{Config: Config{HandshakeLimit: 2, HandshakeWindow: time.Hour}})
	dialStatus(t, ctx, u)
	dialStatus(t, ctx, u)
	if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests || h.Refused429() != 1 {
		t.Fatalf("3rd %d", st)
	}
}
