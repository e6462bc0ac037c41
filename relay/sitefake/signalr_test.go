package sitefake

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func negotiate(t *testing.T, base, query string) map[string]any {
	t.Helper()
	resp, err := http.Post(base+"/hub/negotiate"+query, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("negotiate: %s", resp.Status)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSignalRHubNegotiate: POST only, version 1 gives a connectionToken that
// opens one WebSocket (404 for an unknown id, 409 for a second use), version
// 0 (no negotiateVersion) gives a connectionId only, and the WebSocket URL
// without the upgrade is refused.
func TestSignalRHubNegotiate(t *testing.T) {
	hub := NewSignalRHub(SignalRConfig{})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	defer hub.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	resp, err := http.Get(srv.URL + "/hub/negotiate?negotiateVersion=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET negotiate: %s", resp.Status)
	}
	v1 := negotiate(t, srv.URL, "?negotiateVersion=1")
	token, _ := v1["connectionToken"].(string)
	if token == "" || v1["negotiateVersion"] != 1.0 || v1["connectionId"] == "" {
		t.Fatalf("v1 negotiate = %v", v1)
	}
	v0 := negotiate(t, srv.URL, "")
	if _, has := v0["connectionToken"]; has || v0["negotiateVersion"] != 0.0 || v0["connectionId"] == "" {
		t.Fatalf("v0 negotiate = %v", v0)
	}
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/hub"
	if _, resp, err := websocket.Dial(ctx, wsURL+"?id=nope", nil); err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown id: %v %v", resp, err)
	}
	ws, _, err := websocket.Dial(ctx, wsURL+"?id="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, resp, err := websocket.Dial(ctx, wsURL+"?id="+token, nil); err == nil || resp == nil || resp.StatusCode != http.StatusConflict {
		t.Fatalf("second use of a token: %v %v", resp, err)
	}
	if ws2, _, err := websocket.Dial(ctx, wsURL+"?id="+v0["connectionId"].(string), nil); err != nil {
		t.Fatalf("v0 connectionId: %v", err)
	} else {
		ws2.CloseNow()
	}
	resp, err = http.Get(srv.URL + "/hub")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("GET hub without upgrade: %s", resp.Status)
	}
}

// hubClient is a raw client of the hub.
type hubClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialHub(ctx context.Context, t *testing.T, srv *httptest.Server) *hubClient {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/hub", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &hubClient{t: t, ws: ws}
}

func (c *hubClient) send(ctx context.Context, s string) {
	c.t.Helper()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message that is not a ping.
func (c *hubClient) next(ctx context.Context) string {
	c.t.Helper()
	for {
		_, p, err := c.ws.Read(ctx)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if string(p) != "{\"type\":6}\x1e" {
			return string(p)
		}
	}
}

// TestSignalRHubHandshake: the handshake's refusals carry the server's
// texts; a request split over two messages, and followed by a record in the
// same message, is accepted; an idle client gets "Handshake was canceled.".
func TestSignalRHubHandshake(t *testing.T) {
	hub := NewSignalRHub(SignalRConfig{HandshakeTimeout: 300 * time.Millisecond, Interval: 10 * time.Millisecond})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	defer hub.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	for req, want := range map[string]string{
		`{"protocol":"messagepack","version":1}` + "\x1e": `{"error":"The protocol 'messagepack' is not supported."}` + "\x1e",
		`{"protocol":"json","version":3}` + "\x1e":        `{"error":"The server does not support version 3 of the 'json' protocol."}` + "\x1e",
		`{"version":1}` + "\x1e":                          `{"error":"An unexpected error occurred during connection handshake. InvalidDataException: Missing required property 'protocol'."}` + "\x1e",
	} {
		c := dialHub(ctx, t, srv)
		c.send(ctx, req)
		if got := c.next(ctx); got != want {
			t.Errorf("handshake %q answered %q, want %q", req, got, want)
		}
		if _, _, err := c.ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Errorf("after a refused handshake: %v, want a normal closure", err)
		}
	}
	c := dialHub(ctx, t, srv)
	c.send(ctx, `{"protocol":"json",`)
	c.send(ctx, `"version":1}`+"\x1e"+`{"type":1,"invocationId":"1","target":"Subscribe","arguments":["BTC-USD"]}`+"\x1e")
	if got := c.next(ctx); got != "{}\x1e" {
		t.Fatalf("handshake answered %q", got)
	}
	if got := c.next(ctx); got != `{"invocationId":"1","type":3}`+"\x1e" {
		t.Fatalf("completion = %q", got)
	}
	if got := c.next(ctx); !strings.HasPrefix(got, `{"type":1,"target":"quote","arguments":[{"price":`) || !strings.Contains(got, `"seq":1,"symbol":"BTC-USD"`) {
		t.Fatalf("first quote = %q", got)
	}

	idle := dialHub(ctx, t, srv)
	if got := idle.next(ctx); got != `{"error":"Handshake was canceled."}`+"\x1e" {
		t.Fatalf("idle client got %q", got)
	}
}

// TestSignalRHubMessages: a record split over two messages is read, a
// non-blocking invocation gets no answer even when it fails, and protocol
// errors (unknown field, a type that is not a number, a Completion from
// the client, a message past the size limit) close the connection with a
// Close message saying why.
func TestSignalRHubMessages(t *testing.T) {
	hub := NewSignalRHub(SignalRConfig{Interval: time.Hour, MaxMessageSize: 256})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	defer hub.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	open := func() *hubClient {
		c := dialHub(ctx, t, srv)
		c.send(ctx, `{"protocol":"json","version":1}`+"\x1e")
		if got := c.next(ctx); got != "{}\x1e" {
			t.Fatalf("handshake answered %q", got)
		}
		return c
	}
	c := open()
	c.send(ctx, `{"type":1,"target":"Subscribe","arguments":["NOPE"]}`+"\x1e"+`{"type":1,"invocationId":"a",`)
	c.send(ctx, `"target":"Subscribe","arguments":["ETH-USD",2]}`+"\x1e")
	want := `{"error":"Failed to invoke 'Subscribe' due to an error on the server. InvalidDataException: Invocation provides 2 argument(s) but target expects 1.","invocationId":"a","type":3}` + "\x1e"
	if got := c.next(ctx); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if st := hub.Stats(); st.Rejected != 1 {
		t.Fatalf("the non-blocking NOPE was not processed: %+v", st)
	}

	for rec, want := range map[string]string{
		`{"type":1,"target":"Subscribe","arguments":["BTC-USD"],"extra":1}`:     "Unexpected property 'extra' in a message of type 1.",
		`{"type":"1","target":"Subscribe","arguments":[]}`:                      "Expected 'type' to be of type Integer.",
		`{"type":3,"invocationId":"1"}`:                                         "Unexpected Completion: this hub sent no invocation expecting results.",
		`{"type":1,"target":"Subscribe"}`:                                       "Missing required property 'arguments'.",
		`{"type":99}`:                                                           "Unknown message type: 99",
		`{"type":1,"target":"` + strings.Repeat("x", 300) + `","arguments":[]}`: "The maximum message size of 256B was exceeded.",
	} {
		c := open()
		c.send(ctx, rec+"\x1e")
		wantClose, _ := json.Marshal(map[string]any{"type": 7, "error": "Connection closed with an error. InvalidDataException: " + want})
		if got := c.next(ctx); got != string(wantClose)+"\x1e" {
			t.Errorf("after %.40q: got %q, want %q", rec, got, wantClose)
		}
		if _, _, err := c.ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Errorf("after the close message: %v, want a normal closure", err)
		}
	}
}

// TestSignalRHubClientTimeout: a client that never pings is dropped after
// ClientTimeout with a Close message; the hub's own pings come every
// KeepAliveInterval meanwhile.
func TestSignalRHubClientTimeout(t *testing.T) {
	hub := NewSignalRHub(SignalRConfig{KeepAliveInterval: 50 * time.Millisecond, ClientTimeout: 400 * time.Millisecond})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	defer hub.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c := dialHub(ctx, t, srv)
	c.send(ctx, `{"protocol":"json","version":1}`+"\x1e")
	pings := 0
	for {
		_, p, err := c.ws.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if string(p) == "{\"type\":6}\x1e" {
			pings++
			continue
		}
		if strings.HasPrefix(string(p), `{"error":"Client timeout (400ms)`) {
			break
		}
		if string(p) != "{}\x1e" {
			t.Fatalf("unexpected %q", p)
		}
	}
	if pings < 3 {
		t.Fatalf("%d pings before the timeout, want several", pings)
	}
	if st := hub.Stats(); st.ClientTimeouts != 1 {
		t.Fatalf("stats = %+v", st)
	}
}
