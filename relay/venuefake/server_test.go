package venuefake

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoVenue is the smallest venue: "sub X" subscribes the ticker of X,
// data frames are {"seq":N}, the notice is {"notice":true}.
type echoVenue struct{ *Server }

func newEcho(cfg Config, set settings) *echoVenue {
	v := &echoVenue{}
	if set.symbols == nil {
		set.symbols = []string{"A", "B"}
	}
	if set.push == 0 {
		set.push = 10 * time.Millisecond
	}
	v.Server = newServer("echo", v, cfg, set)
	return v
}

func (v *echoVenue) handshake(r *http.Request) (any, int, string) {
	if r.URL.Path != "/ws" {
		return nil, http.StatusNotFound, "not found"
	}
	return nil, 0, ""
}
func (v *echoVenue) opened(c *conn) {}
func (v *echoVenue) message(c *conn, _ websocket.MessageType, p []byte) {
	sym, ok := strings.CutPrefix(string(p), "sub ")
	if !ok || !v.Listed(sym) {
		c.sendJSON(map[string]string{"error": string(p)})
		return
	}
	c.sendJSON(map[string]string{"subscribed": sym})
	v.subscribe(c, streamKey{ChannelTicker, sym}, false)
}
func (v *echoVenue) render(c *conn, k streamKey, e *event, snapshot bool) []byte {
	return fmt.Appendf(nil, `{"seq":%d}`, e.seq)
}
func (v *echoVenue) announce(c *conn) { c.send([]byte(`{"notice":true}`)) }
func (v *echoVenue) servePlain(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"token":"t"}`))
	return true
}

func TestWindowLimiter(t *testing.T) {
	l := newWindowLimiter(3, time.Second)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !l.allow("a", t0.Add(time.Duration(i)*100*time.Millisecond)) {
			t.Fatalf("event %d refused", i)
		}
	}
	if l.allow("a", t0.Add(900*time.Millisecond)) {
		t.Fatal("4th event in the window admitted")
	}
	if !l.allow("b", t0.Add(900*time.Millisecond)) {
		t.Fatal("another key is limited by the first")
	}
	// The window slides: at t0+1s the first event leaves it.
	if !l.allow("a", t0.Add(time.Second)) {
		t.Fatal("event after the first left the window refused")
	}
	if l.allow("a", t0.Add(time.Second+50*time.Millisecond)) {
		t.Fatal("window not full again")
	}
}

// TestHandshakeRateAndCap: past N handshakes per window the handshake is
// answered 429, as is one past the connection cap, and both are counted.
func TestHandshakeRateAndCap(t *testing.T) {
	ctx := testCtx(t)
	t.Run("rate", func(t *testing.T) {
		v := newEcho(Config{HandshakeLimit: 3, HandshakeWindow: time.Hour}, settings{})
		u := serve(t, v) + "/ws"
		for i := range 3 {
			if st := dialStatus(t, ctx, u); st != http.StatusSwitchingProtocols {
				t.Fatalf("handshake %d: %d", i, st)
			}
		}
		if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests {
			t.Fatalf("4th handshake: %d, want 429", st)
		}
		if v.Handshakes() != 4 || v.Refused429() != 1 {
			t.Fatalf("handshakes %d refused %d", v.Handshakes(), v.Refused429())
		}
	})
	t.Run("cap", func(t *testing.T) {
		v := newEcho(Config{MaxConns: 2}, settings{})
		u := serve(t, v) + "/ws"
		a, b := dial(t, ctx, u), dial(t, ctx, u)
		if st := dialStatus(t, ctx, u); st != http.StatusTooManyRequests {
			t.Fatalf("3rd connection: %d, want 429", st)
		}
		if v.Open() != 2 || v.MaxOpen() != 2 || v.Refused429() != 1 {
			t.Fatalf("open %d max %d refused %d", v.Open(), v.MaxOpen(), v.Refused429())
		}
		a.Close(websocket.StatusNormalClosure, "")
		b.Close(websocket.StatusNormalClosure, "")
		// A slot frees when a connection ends.
		deadline := time.Now().Add(5 * time.Second)
		for v.Open() != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if st := dialStatus(t, ctx, u); st != http.StatusSwitchingProtocols {
			t.Fatalf("after closing: %d", st)
		}
	})
	t.Run("path", func(t *testing.T) {
		v := newEcho(Config{}, settings{})
		if st := dialStatus(t, ctx, serve(t, v)+"/nope"); st != http.StatusNotFound {
			t.Fatalf("wrong path: %d", st)
		}
	})
}

// TestStreamSharedCounter: two connections on one stream receive the same
// events with the same counter; Pushed is the counter; SetPushing freezes
// it; Push works by hand.
func TestStreamSharedCounter(t *testing.T) {
	ctx := testCtx(t)
	v := newEcho(Config{}, settings{})
	u := serve(t, v) + "/ws"
	a, b := dial(t, ctx, u), dial(t, ctx, u)
	send(t, ctx, a, "sub A")
	readUntil(t, ctx, a, 1, has(`"subscribed":"A"`))
	send(t, ctx, b, "sub A")
	readUntil(t, ctx, b, 50, has(`"subscribed":"A"`))
	fb := obj(t, readUntil(t, ctx, b, 1, has(`"seq"`)))
	want := fb["seq"]
	readUntil(t, ctx, a, 1000, has(fmt.Sprintf(`{"seq":%v}`, want)))
	v.SetPushing(false)
	time.Sleep(30 * time.Millisecond)
	n := v.Pushed("A")
	time.Sleep(50 * time.Millisecond)
	if v.Pushed("A") != n || v.PushedOn(ChannelTicker, "A") != n {
		t.Fatalf("pushed moved while stopped: %d → %d", n, v.Pushed("A"))
	}
	if !v.Push(ChannelTicker, "A") || v.Pushed("A") != n+1 {
		t.Fatalf("Push: %d", v.Pushed("A"))
	}
	readUntil(t, ctx, a, 1000, has(fmt.Sprintf(`{"seq":%d}`, n+1)))
	if v.Subscribers(ChannelTicker, "A") != 2 {
		t.Fatalf("subscribers %d", v.Subscribers(ChannelTicker, "A"))
	}
}

// TestAnnounceThenClose: the notice reaches every connection, then the
// fake closes them after the grace.
func TestAnnounceThenClose(t *testing.T) {
	ctx := testCtx(t)
	v := newEcho(Config{AnnounceGrace: 100 * time.Millisecond}, settings{})
	u := serve(t, v) + "/ws"
	a := dial(t, ctx, u)
	send(t, ctx, a, "sub A")
	v.Announce()
	readUntil(t, ctx, a, 1000, has(`"notice":true`))
	_, err := closedWithin(t, a, 5*time.Second)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close: %v", err)
	}
	if got := v.Closes(); len(got) != 1 || got[0] != "announced shutdown" {
		t.Fatalf("closes %q", got)
	}
}

// TestCloseIdempotentWithClients: Close ends live connections, twice is
// fine, and concurrent handshakes after it are refused (goleak checks the
// goroutines).
func TestCloseIdempotentWithClients(t *testing.T) {
	ctx := testCtx(t)
	v := newEcho(Config{}, settings{})
	u := serve(t, v) + "/ws"
	var cs []*websocket.Conn
	for range 5 {
		c := dial(t, ctx, u)
		send(t, ctx, c, "sub B")
		cs = append(cs, c)
	}
	readUntil(t, ctx, cs[0], 100, has(`"seq"`))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(v.Close)
	}
	wg.Wait()
	v.Close()
	for _, c := range cs {
		closedWithin(t, c, 5*time.Second)
	}
	if st := dialStatus(t, ctx, u); st != http.StatusServiceUnavailable {
		t.Fatalf("after Close: %d", st)
	}
}

func TestBucketLimiter(t *testing.T) {
	l := newBucketLimiter(8, time.Second, 20)
	t0 := time.Unix(1000, 0)
	for i := range 20 {
		if !l.allow("a", t0) {
			t.Fatalf("burst event %d refused", i)
		}
	}
	if l.allow("a", t0) {
		t.Fatal("21st event of the burst admitted")
	}
	// 8 per second refill: after 250 ms, 2 more.
	if !l.allow("a", t0.Add(250*time.Millisecond)) || !l.allow("a", t0.Add(250*time.Millisecond)) {
		t.Fatal("refill refused")
	}
	if l.allow("a", t0.Add(250*time.Millisecond)) {
		t.Fatal("more than the refill admitted")
	}
}

// TestPlainHTTPBesideTheWebSocket: a venue's plain HTTP endpoint answers
// without counting a handshake; other plain requests are handshakes that
// fail the upgrade.
func TestPlainHTTPBesideTheWebSocket(t *testing.T) {
	v := newEcho(Config{}, settings{})
	srv := httptest.NewServer(v)
	defer srv.Close()
	defer v.Close()
	resp, err := http.Post(srv.URL+"/token", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"token":"t"}` || v.Handshakes() != 0 {
		t.Fatalf("%d %s handshakes %d", resp.StatusCode, body, v.Handshakes())
	}
	resp, err = http.Get(srv.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 || v.Handshakes() != 1 {
		t.Fatalf("plain GET of the WebSocket: %d, handshakes %d", resp.StatusCode, v.Handshakes())
	}
}
