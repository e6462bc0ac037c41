package sitefake

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// jsEvent is one line of signalr_client.mjs.
type jsEvent struct {
	Event   string  `json:"event"`
	Message string  `json:"message,omitempty"`
	Error   *string `json:"error,omitempty"`
	Count   int     `json:"count,omitempty"`
	First   int64   `json:"first,omitempty"`
	Last    int64   `json:"last,omitempty"`
	Gaps    int     `json:"gaps,omitempty"`
	Quotes  int     `json:"quotes,omitempty"`
	State   string  `json:"state,omitempty"`
}

// runJSClient starts the official client with cfg and returns a function
// reading its next event.
func runJSClient(ctx context.Context, t *testing.T, cfg map[string]any) (*NodeProcess, func() jsEvent) {
	t.Helper()
	arg, _ := json.Marshal(cfg)
	proc, err := StartNode(ctx, "signalr_client.mjs", string(arg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Close() })
	next := func() jsEvent {
		t.Helper()
		var ev jsEvent
		if err := proc.waitLine(ctx, &ev, func() bool { return ev.Event != "" }); err != nil {
			t.Fatalf("official client: %v", err)
		}
		if ev.Event == "fatal" {
			t.Fatalf("official client failed: %s", ev.Message)
		}
		return ev
	}
	return proc, next
}

func (ev jsEvent) String() string {
	b, _ := json.Marshal(ev)
	return string(b)
}

func expect(t *testing.T, ev jsEvent, want string) jsEvent {
	t.Helper()
	if ev.Event != want {
		t.Fatalf("official client said %s, want %q", ev, want)
	}
	return ev
}

// TestSignalRHubWithOfficialClient: @microsoft/signalr negotiates, shakes
// hands, invokes Subscribe, receives quotes numbered without a gap (three
// records per WebSocket message), sees the errors of an unknown symbol and
// an unknown method, keeps the connection through 2.5 s of quiet on pings
// alone (both sides' timeouts are shorter: each side's pings are needed),
// and reports the hub's close message with its error.
func TestSignalRHubWithOfficialClient(t *testing.T) {
	RequireNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	hub := NewSignalRHub(SignalRConfig{
		Interval: 20 * time.Millisecond, QuotesPerTick: 3,
		KeepAliveInterval: 100 * time.Millisecond, ClientTimeout: time.Second,
	})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	defer hub.Close()

	_, next := runJSClient(ctx, t, map[string]any{
		"url": srv.URL + "/hub", "symbol": "BTC-USD", "unknown": "NOPE", "quotes": 30,
		// The client must hear from the hub within 1 s (its pings every
		// 100 ms) and ping it every 100 ms (its timeout 1 s).
		"keepAliveMs": 100, "serverTimeoutMs": 1000, "holdMs": 2500,
	})
	expect(t, next(), "started")
	expect(t, next(), "subscribed")
	q := expect(t, next(), "quotes")
	if q.Count < 30 || q.First != 1 || q.Gaps != 0 {
		t.Fatalf("quotes = %s, want ≥30 from seq 1 without gaps", q)
	}
	if ev := expect(t, next(), "invoke_error"); ev.Message != "An unexpected error occurred invoking 'Subscribe' on the server. HubException: unknown symbol NOPE" {
		t.Fatalf("unknown symbol error = %q", ev.Message)
	}
	if ev := expect(t, next(), "method_error"); !strings.Contains(ev.Message, "Method does not exist") {
		t.Fatalf("unknown method error = %q", ev.Message)
	}
	if ev := expect(t, next(), "held"); ev.State != "Connected" {
		t.Fatalf("after holding: %s", ev)
	}
	expect(t, next(), "waiting")
	if n := hub.CloseAll("going down for maintenance"); n != 1 {
		t.Fatalf("closed %d connections", n)
	}
	ev := expect(t, next(), "closed")
	if ev.Error == nil || *ev.Error != "Server returned an error on close: going down for maintenance" {
		t.Fatalf("close error = %v", ev.Error)
	}
	st := hub.Stats()
	if st.Negotiations != 1 || st.Connections != 1 || st.PingsReceived == 0 || st.Rejected != 1 || st.ProtocolErrors != 0 || st.ClientTimeouts != 0 {
		t.Fatalf("hub stats = %+v", st)
	}
}

// TestSignalRHubRefusalsWithOfficialClient: the official client reports the
// hub's negotiate error, its handshake error, its redirect with an access
// token (followed), and a missing token (401).
func TestSignalRHubRefusalsWithOfficialClient(t *testing.T) {
	RequireNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	start := func(cfg SignalRConfig, path string) jsEvent {
		t.Helper()
		hub := NewSignalRHub(cfg)
		srv := httptest.NewServer(hub)
		defer srv.Close()
		defer hub.Close()
		proc, next := runJSClient(ctx, t, map[string]any{"url": srv.URL + path})
		ev := next()
		_ = proc.Close()
		return ev
	}
	if ev := start(SignalRConfig{NegotiateError: "This connection is not allowed."}, "/hub"); ev.Event != "start_error" || ev.Message != "This connection is not allowed." {
		t.Fatalf("negotiate error: %s", ev)
	}
	if ev := start(SignalRConfig{HandshakeError: "The protocol 'json' is disabled here."}, "/hub"); ev.Event != "start_error" || !strings.Contains(ev.Message, "Server returned handshake error: The protocol 'json' is disabled here.") {
		t.Fatalf("handshake error: %s", ev)
	}
	if ev := start(SignalRConfig{}, "/nohub"); ev.Event != "start_error" || !strings.Contains(ev.Message, "404") {
		t.Fatalf("no hub: %s", ev)
	}
	if ev := start(SignalRConfig{RequireToken: "t0k"}, "/hub"); ev.Event != "start_error" || !strings.Contains(ev.Message, "401") {
		t.Fatalf("no token: %s", ev)
	}

	// Redirect: hub A sends the client to hub B with B's token.
	b := NewSignalRHub(SignalRConfig{RequireToken: "t0k"})
	bsrv := httptest.NewServer(b)
	defer bsrv.Close()
	defer b.Close()
	if ev := start(SignalRConfig{RedirectURL: bsrv.URL + "/hub", RedirectToken: "t0k"}, "/hub"); ev.Event != "started" {
		t.Fatalf("redirect: %s", ev)
	}
	if st := b.Stats(); st.Negotiations != 1 || st.Connections != 1 {
		t.Fatalf("redirect target stats = %+v", st)
	}
}
