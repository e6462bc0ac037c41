package relay

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/sitefake"
)

// startSocketIOSite starts the real Socket.IO server (Node) for a test.
func startSocketIOSite(t *testing.T, cfg sitefake.SocketIOConfig) *sitefake.SocketIO {
	t.Helper()
	sitefake.RequireNode(t)
	site, err := sitefake.StartSocketIO(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("socket.io stderr: %s", site.Stderr())
		}
		_ = site.Close()
	})
	return site
}

// siteBase is the site's origin only: the framing adds /socket.io/ and the
// query.
func siteBase(site *sitefake.SocketIO) string {
	return strings.TrimSuffix(site.URL, "/socket.io/?EIO=4&transport=websocket")
}

type siteQuote struct {
	Symbol string `json:"symbol"`
	Seq    int64  `json:"seq"`
}

// TestSocketIOFramingRealServer: against the npm socket.io server, the
// framing connects from the bare origin, subscribes with the event template,
// and over ten ping periods (100 ms) answers every ping (the server counts
// the pongs and drops nobody for "ping timeout") while quotes arrive
// without a gap; the frame rules take the quote from /1. The welcome event
// reaches the rules too (it is theirs to ignore).
func TestSocketIOFramingRealServer(t *testing.T) {
	site := startSocketIOSite(t, sitefake.SocketIOConfig{Interval: 10 * time.Millisecond, PingInterval: 100 * time.Millisecond, PingTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s := openFraming(ctx, t, mustSocketIO(t, socketIOOptions{}), siteBase(site), nil)
	if s.info.readIdle != 400*time.Millisecond {
		t.Fatalf("readIdle = %v, want pingInterval+pingTimeout", s.info.readIdle)
	}
	rules, err := (&UpstreamConfig{Accept: []Matcher{Equals("/0", "quote")}, Extract: "/1"}).FrameRules()
	if err != nil {
		t.Fatal(err)
	}
	s.send(ctx, `["subscribe","BTC-USD"]`)
	deadline := time.Now().Add(time.Second)
	var last int64
	quotes, welcome := 0, false
	closed := s.until(ctx, func(r record) bool {
		if name, _ := eventOf(t, r); name == "welcome" {
			welcome = true
		}
		res, err := rules.Handle(r.binary, r.data)
		if err != nil || res.Kind != FrameQuote {
			return true
		}
		var q siteQuote
		if err := json.Unmarshal(res.Data, &q); err != nil || q.Symbol != "BTC-USD" {
			t.Fatalf("quote %q", res.Data)
		}
		if last != 0 && q.Seq != last+1 {
			t.Fatalf("seq %d after %d: lost quotes", q.Seq, last)
		}
		last = q.Seq
		quotes++
		return time.Now().Before(deadline)
	})
	if closed != nil {
		t.Fatalf("session ended: %v", closed)
	}
	if !welcome || quotes < 20 {
		t.Fatalf("welcome %v, %d quotes", welcome, quotes)
	}
	st, err := site.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pongs < 5 || st.Disconnects["ping timeout"] != 0 {
		t.Fatalf("server stats %+v: want ≥5 pongs and no ping timeout", st)
	}
}

// TestSocketIOFramingNamespaces: a custom namespace gets its events (and
// only those) with the namespace prefix on what is sent; /private needs the
// auth payload and, without it, the server's CONNECT_ERROR text is the
// error; an unknown namespace is refused by Socket.IO itself.
func TestSocketIOFramingNamespaces(t *testing.T) {
	site := startSocketIOSite(t, sitefake.SocketIOConfig{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	s := openFraming(ctx, t, mustSocketIO(t, socketIOOptions{Namespace: "/markets"}), site.URL, nil)
	s.send(ctx, `["subscribe","ETH-USD"]`)
	n := 0
	if closed := s.until(ctx, func(r record) bool {
		if name, data := eventOf(t, r); name == "quote" {
			var q siteQuote
			_ = json.Unmarshal(data, &q)
			if q.Symbol != "ETH-USD" {
				t.Fatalf("quote %s", data)
			}
			n++
		}
		return n < 5
	}); closed != nil {
		t.Fatal(closed)
	}

	_, err := tryOpenFraming(ctx, mustSocketIO(t, socketIOOptions{Namespace: "/private"}), site.URL, nil)
	if err == nil || !strings.Contains(err.Error(), `the server refused the namespace "/private": not authorized`) {
		t.Fatalf("private without token: %v", err)
	}
	_, err = tryOpenFraming(ctx, mustSocketIO(t, socketIOOptions{Namespace: "/nope"}), site.URL, nil)
	if err == nil || !strings.Contains(err.Error(), "Invalid namespace") {
		t.Fatalf("unknown namespace: %v", err)
	}
	p := openFraming(ctx, t, mustSocketIO(t, socketIOOptions{Namespace: "/private", Auth: `{"token":"secret"}`}), site.URL, nil)
	p.send(ctx, `["subscribe","SOL-USD"]`)
	if closed := p.until(ctx, func(r record) bool {
		name, _ := eventOf(t, r)
		return name != "quote"
	}); closed != nil {
		t.Fatal(closed)
	}
}

// TestSocketIOFramingServerEvents: an unknown symbol's error event and an
// ack reach the rules as records; a binary event is skipped with a reason
// and the session goes on; the server's DISCONNECT ends the session with a
// clear error.
func TestSocketIOFramingServerEvents(t *testing.T) {
	site := startSocketIOSite(t, sitefake.SocketIOConfig{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f := mustSocketIO(t, socketIOOptions{})
	s := openFraming(ctx, t, f, site.URL, nil)

	s.send(ctx, `["subscribe","NOPE"]`)
	s.send(ctx, `5["subscribe","NOPE2"]`) // ack id 5
	gotEvent, gotAck := false, false
	if closed := s.until(ctx, func(r record) bool {
		switch string(r.data) {
		case `["subscribe_error",{"symbol":"NOPE","message":"unknown symbol NOPE"}]`:
			gotEvent = true
		case `[{"ok":false,"error":"unknown symbol NOPE2"}]`:
			gotAck = true
		}
		return !gotEvent || !gotAck
	}); closed != nil {
		t.Fatal(closed)
	}

	s.send(ctx, `["subscribe","BTC-USD"]`)
	if err := site.EmitBinary(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	skipped := false
	for !skipped {
		recs, closed := s.next(ctx)
		if closed != nil {
			t.Fatal(closed)
		}
		for _, r := range recs {
			if strings.Contains(string(r.data), "_placeholder") {
				t.Fatalf("binary event handed over: %s", r.data)
			}
		}
		if err := f.skipped(); err != nil {
			if !strings.Contains(err.Error(), `BINARY_EVENT "quote" with 1 binary attachment(s) is not supported`) {
				t.Fatalf("skipped = %v", err)
			}
			skipped = true
		}
	}
	quotes := 0
	if closed := s.until(ctx, func(r record) bool {
		if name, _ := eventOf(t, r); name == "quote" {
			quotes++
		}
		return quotes < 3
	}); closed != nil {
		t.Fatalf("after the binary event: %v", closed)
	}

	if n, err := site.Disconnect(ctx, "/"); err != nil || n != 1 {
		t.Fatalf("disconnect: %d, %v", n, err)
	}
	closed := s.until(ctx, func(record) bool { return true })
	if closed == nil || !strings.Contains(closed.Error(), `the server disconnected the namespace "/"`) {
		t.Fatalf("closed = %v", closed)
	}
}
