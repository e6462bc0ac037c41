package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wsrelay/wsrelay/relay/sitefake"
)

func startHub(t *testing.T, cfg sitefake.SignalRConfig) (*sitefake.SignalRHub, *httptest.Server) {
	t.Helper()
	hub := sitefake.NewSignalRHub(cfg)
	srv := httptest.NewServer(hub)
	t.Cleanup(func() {
		srv.Close()
		hub.Close()
	})
	return hub, srv
}

const subscribeInvocation = `{"type":1,"invocationId":"7","target":"Subscribe","arguments":["%s"]}`

// TestSignalRFramingHub: against the strict hub fake, the framing
// negotiates (the upstream's headers reach negotiate), shakes hands and
// subscribes with an invocation template; the completion reaches the rules;
// three quotes per WebSocket message become three records, numbered from 1
// without a gap; the rules take the quote from /arguments/0.
func TestSignalRFramingHub(t *testing.T) {
	hub, srv := startHub(t, sitefake.SignalRConfig{Interval: 10 * time.Millisecond, QuotesPerTick: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s := openFraming(ctx, t, newSignalRFraming(signalROptions{}), wsURL(srv, "/hub"), http.Header{"User-Agent": {"wsrelay-test"}})
	if ua := hub.NegotiateHeader().Get("User-Agent"); ua != "wsrelay-test" {
		t.Fatalf("negotiate User-Agent %q", ua)
	}
	if s.info.readIdle != 30*time.Second || s.info.pingInterval != 15*time.Second {
		t.Fatalf("openInfo %+v", s.info)
	}
	rules, err := (&UpstreamConfig{Accept: []Matcher{Equals("/target", "quote")}, Extract: "/arguments/0"}).FrameRules()
	if err != nil {
		t.Fatal(err)
	}
	s.send(ctx, strings.Replace(subscribeInvocation, "%s", "BTC-USD", 1))
	completed := false
	var seq int64
	perMessage := map[int]int{}
	for seq < 30 {
		recs, closed := s.next(ctx)
		if closed != nil {
			t.Fatal(closed)
		}
		quotes := 0
		for _, r := range recs {
			if string(r.data) == `{"invocationId":"7","type":3}` {
				completed = true
				continue
			}
			res, err := rules.Handle(r.binary, r.data)
			if err != nil || res.Kind != FrameQuote {
				t.Fatalf("record %q: %v %v", r.data, res.Kind, err)
			}
			var q siteQuote
			if err := json.Unmarshal(res.Data, &q); err != nil || q.Symbol != "BTC-USD" || q.Seq != seq+1 {
				t.Fatalf("quote %s after seq %d", res.Data, seq)
			}
			seq = q.Seq
			quotes++
		}
		perMessage[quotes]++
	}
	if !completed || perMessage[3] == 0 {
		t.Fatalf("completion %v, records per message %v", completed, perMessage)
	}
}

// TestSignalRFramingErrors: an unknown symbol's completion error reaches
// the rules; the hub's close message ends the session with its text; a
// negotiate error, a refused handshake and a missing token are errors
// that say what the server said; a redirect with a token is followed.
func TestSignalRFramingErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	hub, srv := startHub(t, sitefake.SignalRConfig{})
	s := openFraming(ctx, t, newSignalRFraming(signalROptions{}), wsURL(srv, "/hub"), nil)
	s.send(ctx, strings.Replace(subscribeInvocation, "%s", "NOPE", 1))
	recs, closed := s.next(ctx)
	want := `{"error":"An unexpected error occurred invoking 'Subscribe' on the server. HubException: unknown symbol NOPE","invocationId":"7","type":3}`
	if closed != nil || len(recs) != 1 || string(recs[0].data) != want {
		t.Fatalf("records %v closed %v, want the completion error", recs, closed)
	}
	done := make(chan int)
	go func() { done <- hub.CloseAll("going down for maintenance") }()
	closed = s.until(ctx, func(record) bool { return true })
	s.ws.CloseNow() // as the engine does when a session ends
	if n := <-done; n != 1 || closed == nil || closed.Error() != "signalr: the server closed the connection: going down for maintenance" {
		t.Fatalf("closed %d: %v", n, closed)
	}

	_, nsrv := startHub(t, sitefake.SignalRConfig{NegotiateError: "This connection is not allowed."})
	if _, err := tryOpenFraming(ctx, newSignalRFraming(signalROptions{}), wsURL(nsrv, "/hub"), nil); err == nil || err.Error() != "signalr: negotiate refused: This connection is not allowed." {
		t.Fatalf("negotiate error: %v", err)
	}
	_, hsrv := startHub(t, sitefake.SignalRConfig{HandshakeError: "The protocol 'json' is disabled here."})
	if _, err := tryOpenFraming(ctx, newSignalRFraming(signalROptions{}), wsURL(hsrv, "/hub"), nil); err == nil || err.Error() != "refused: The protocol 'json' is disabled here." {
		t.Fatalf("handshake error: %v", err)
	}
	_, tsrv := startHub(t, sitefake.SignalRConfig{RequireToken: "t0k"})
	if _, err := tryOpenFraming(ctx, newSignalRFraming(signalROptions{}), wsURL(tsrv, "/hub"), nil); err == nil || !strings.Contains(err.Error(), "HTTP 401 Unauthorized") {
		t.Fatalf("no token: %v", err)
	}
	_, rsrv := startHub(t, sitefake.SignalRConfig{RedirectURL: tsrv.URL + "/hub", RedirectToken: "t0k"})
	r := openFraming(ctx, t, newSignalRFraming(signalROptions{}), wsURL(rsrv, "/hub"), nil)
	r.send(ctx, strings.Replace(subscribeInvocation, "%s", "ETH-USD", 1))
	if recs, closed := r.next(ctx); closed != nil || len(recs) != 1 || string(recs[0].data) != `{"invocationId":"7","type":3}` {
		t.Fatalf("after the redirect: %v %v", recs, closed)
	}
}

// TestSignalRFramingKeepAlive: with the hub's timeouts short, a session
// that only sends the framing's keepalive every pingInterval stays up for
// many hub timeouts, while the hub's own pings are swallowed (no records);
// without the keepalive the hub drops it and the close message's text is
// the error.
func TestSignalRFramingKeepAlive(t *testing.T) {
	hub, srv := startHub(t, sitefake.SignalRConfig{KeepAliveInterval: 50 * time.Millisecond, ClientTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s := openFraming(ctx, t, newSignalRFraming(signalROptions{KeepAlive: 50 * time.Millisecond}), wsURL(srv, "/hub"), nil)
	// After 1.5 s of quiet (five hub timeouts), a call whose answer ends
	// the read loop.
	done := make(chan struct{})
	timer := time.AfterFunc(1500*time.Millisecond, func() {
		defer close(done)
		_ = s.ws.Write(ctx, websocket.MessageText, s.f.encode(nil, []byte(strings.Replace(subscribeInvocation, "%s", "NOPE", 1))))
	})
	defer timer.Stop()
	got := 0
	closed := s.until(ctx, func(r record) bool {
		got++
		return false
	})
	<-done
	if closed != nil || got != 1 {
		t.Fatalf("closed %v after %d records", closed, got)
	}
	if st := hub.Stats(); st.ClientTimeouts != 0 || st.PingsReceived < 10 {
		t.Fatalf("hub stats %+v: want ≥10 pings and no timeout", st)
	}

	// The same without the keepalive.
	q := openFraming(ctx, t, newSignalRFraming(signalROptions{}), wsURL(srv, "/hub"), nil)
	closed = q.until(ctx, func(record) bool { return true })
	if closed == nil || !strings.Contains(closed.Error(), "Client timeout (300ms) elapsed") {
		t.Fatalf("closed = %v", closed)
	}
}
