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
)

func TestSignalRDecode(t *testing.T) {
	const rs = "\x1e"
	cases := []struct {
		in     string
		bin    bool
		recs   []string
		closed string
	}{
		{in: `{"type":6}` + rs},
		{in: `{"type":1,"target":"quote","arguments":[1]}` + rs + `{"type":1,"target":"quote","arguments":[2]}` + rs,
			recs: []string{`{"type":1,"target":"quote","arguments":[1]}`, `{"type":1,"target":"quote","arguments":[2]}`}},
		{in: `{"type":3,"invocationId":"1","error":"x"}` + rs, recs: []string{`{"type":3,"invocationId":"1","error":"x"}`}},
		{in: `{"type":2,"invocationId":"1","item":5}` + rs + `{"type":6}` + rs, recs: []string{`{"type":2,"invocationId":"1","item":5}`}},
		{in: `{"type":8,"sequenceId":1}` + rs + `{"type":9,"sequenceId":1}` + rs},
		{in: `{"type":42}` + rs + `{"type":4,"invocationId":"1","target":"x","arguments":[]}` + rs},
		{in: rs + rs + " " + rs},
		{in: ``},
		{in: `{"type":7,"error":"Connection closed with an error."}` + rs, closed: "the server closed the connection: Connection closed with an error."},
		{in: `{"type":7}` + rs, closed: "close message without error"},
		{in: `{"type":7,"error":""}` + rs, closed: "close message without error"},
		{in: `{"type":1,"target":"q","arguments":[1]}` + rs + `{"type":7,"error":"bye","allowReconnect":true}` + rs + `{"type":1,"target":"q","arguments":[2]}` + rs,
			recs: []string{`{"type":1,"target":"q","arguments":[1]}`}, closed: "bye"},
		{in: `{"type":6}`, closed: "does not end with 0x1E"},
		{in: `{"type":1}` + rs + `{"type":6}`, closed: "incomplete record"},
		{in: `not json` + rs, closed: "is not JSON"},
		{in: `{"type":"1"}` + rs, closed: "no numeric type"},
		{in: `{}` + rs, closed: "no numeric type"},
		{in: `[1]` + rs, closed: "is not JSON"},
		{in: `{"type":1.5}` + rs, closed: "no numeric type"},
		{in: `{"type":6}` + rs, bin: true, closed: "binary message"},
	}
	for _, c := range cases {
		f := newSignalRFraming(signalROptions{})
		typ := websocket.MessageText
		if c.bin {
			typ = websocket.MessageBinary
		}
		recs, reply, closed := f.decode(nil, typ, []byte(c.in))
		var got []string
		for _, r := range recs {
			got = append(got, string(r.data))
		}
		if strings.Join(got, "|") != strings.Join(c.recs, "|") || reply != nil {
			t.Errorf("decode(%q) = %q reply %q; want %q", c.in, got, reply, c.recs)
		}
		if (closed == nil) != (c.closed == "") || (closed != nil && !strings.Contains(closed.Error(), c.closed)) {
			t.Errorf("decode(%q) closed = %v, want %q", c.in, closed, c.closed)
		}
	}
}

func TestSignalREncode(t *testing.T) {
	f := newSignalRFraming(signalROptions{})
	for in, want := range map[string]string{
		`{"type":1,"target":"Subscribe","arguments":["BTC"]}`:          `{"type":1,"target":"Subscribe","arguments":["BTC"]}` + "\x1e",
		`{"type":1,"target":"Subscribe","arguments":["BTC"]}` + "\x1e": `{"type":1,"target":"Subscribe","arguments":["BTC"]}` + "\x1e",
		``: "\x1e",
	} {
		if got := f.encode(nil, []byte(in)); string(got) != want {
			t.Errorf("encode(%q) = %q, want %q", in, got, want)
		}
	}
	if string(f.keepalive()) != "{\"type\":6}\x1e" {
		t.Fatalf("keepalive = %q", f.keepalive())
	}
	if got, err := newFraming(&UpstreamConfig{Framing: FramingSignalR}); err != nil || got.(*signalRFraming).keepAliveEvery != 15*time.Second {
		t.Fatalf("newFraming(signalr) = %v, %v", got, err)
	}
}

// TestSignalRNegotiateResponses: what negotiate answers besides success
// gives an error naming it; a redirect is followed; the request is a POST
// to {hub}/negotiate?negotiateVersion=1 with the upstream's headers and no
// captured id, and the dial URL carries the connection token.
func TestSignalRNegotiateResponses(t *testing.T) {
	var lastReq *http.Request
	body := ""
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastReq = r.Clone(context.Background())
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	f := newSignalRFraming(signalROptions{})
	hub := wsURL(srv, "/hubs/quotes?tenant=a&id=captured")
	dial := func() (string, error) {
		return f.dialURL(t.Context(), srv.Client(), http.Header{"Origin": {"https://site"}, "Sec-Websocket-Protocol": {"x"}}, hub)
	}

	body = `{"connectionToken":"tok/1","connectionId":"c","negotiateVersion":1,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}`
	u, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	if want := wsURL(srv, "/hubs/quotes?id=tok%2F1&tenant=a"); u != want {
		t.Fatalf("dial URL %q, want %q", u, want)
	}
	if lastReq.Method != http.MethodPost || lastReq.URL.Path != "/hubs/quotes/negotiate" || lastReq.URL.RawQuery != "negotiateVersion=1&tenant=a" ||
		lastReq.Header.Get("Origin") != "https://site" || lastReq.Header.Get("Sec-Websocket-Protocol") != "" {
		t.Fatalf("negotiate request %s %s %v", lastReq.Method, lastReq.URL, lastReq.Header)
	}

	body = `{"connectionId":"c0","negotiateVersion":0,"availableTransports":[]}`
	if u, err := dial(); err != nil || !strings.Contains(u, "id=c0") {
		t.Fatalf("version 0: %q, %v", u, err)
	}

	for b, want := range map[string]string{
		`{"error":"This connection is not allowed."}`:                              "negotiate refused: This connection is not allowed.",
		`{"ProtocolVersion":"1.5","Url":"/signalr"}`:                               "classic ASP.NET SignalR",
		`{"connectionToken":"t","negotiateVersion":1,"useStatefulReconnect":true}`: "stateful reconnect",
		`{"connectionToken":"t","negotiateVersion":1,"availableTransports":[{"transport":"LongPolling","transferFormats":["Text"]},{"transport":"WebSockets","transferFormats":["Binary"]}]}`: "no WebSockets transport with Text frames (offers LongPolling, WebSockets)",
		`<html>`: "response is not JSON",
		`{"connectionToken":"t"` + strings.Repeat(" ", 70000) + `}`: "larger than 65536 bytes",
	} {
		body = b
		if _, err := dial(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("body %.60q: %v, want %q", b, err, want)
		}
	}

	body, status = `{"detail":"boom"}`, http.StatusInternalServerError
	if _, err := dial(); err == nil || !strings.Contains(err.Error(), `HTTP 500 Internal Server Error: "{\"detail\":\"boom\"}"`) {
		t.Errorf("500: %v", err)
	}
	body, status = "", http.StatusNotFound
	if _, err := dial(); err == nil || !strings.Contains(err.Error(), "(no SignalR hub at this URL?)") {
		t.Errorf("404: %v", err)
	}

	// Redirects: to itself forever is cut off.
	status = http.StatusOK
	body = `{"url":"` + srv.URL + `/again","accessToken":"secret-token"}`
	_, err = dial()
	if err == nil || !strings.Contains(err.Error(), "more than 10 redirects") {
		t.Fatalf("redirect loop: %v", err)
	}
	if lastReq.URL.Path != "/again/negotiate" || lastReq.Header.Get("Authorization") != "Bearer secret-token" {
		t.Fatalf("redirected negotiate %s %v", lastReq.URL, lastReq.Header)
	}

	// Bad URLs and unreachable hubs; no query value in the error.
	for in, want := range map[string]string{
		"ftp://h/hub":                   "scheme",
		"ws:///hub":                     "no host",
		"ws://h/%zz":                    "url",
		"ws://127.0.0.1:1/hub?key=hush": "negotiate http://127.0.0.1:1/hub/negotiate?key=REDACTED&negotiateVersion=REDACTED",
	} {
		_, err := f.dialURL(t.Context(), nil, nil, in)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hush") {
			t.Errorf("dialURL(%q) = %v, want %q", in, err, want)
		}
	}
}

// TestSignalROpenErrors: handshake answers that are refusals or not
// handshake answers give errors that say so.
func TestSignalROpenErrors(t *testing.T) {
	cases := map[string]struct {
		answer []byte
		typ    websocket.MessageType
		want   string
	}{
		"refused":     {[]byte(`{"error":"The protocol 'json' is not supported."}` + "\x1e"), websocket.MessageText, "refused: The protocol 'json' is not supported."},
		"hub message": {[]byte(`{"type":6}` + "\x1e"), websocket.MessageText, "expected a handshake response, got a hub message"},
		"incomplete":  {[]byte(`{}`), websocket.MessageText, "does not end with 0x1E"},
		"binary":      {[]byte("{}\x1e"), websocket.MessageBinary, "not text"},
		"not JSON":    {[]byte("hello\x1e"), websocket.MessageText, "handshake response"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			req := make(chan string, 1)
			srv := scripted(t, func(ctx context.Context, ws *websocket.Conn) {
				_, p, _ := ws.Read(ctx)
				req <- string(p)
				_ = ws.Write(ctx, c.typ, c.answer)
				_, _, _ = ws.Read(ctx)
			})
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, wsURL(srv, "/hub"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			_, err = newSignalRFraming(signalROptions{}).open(ctx, ws)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("open = %v, want %q", err, c.want)
			}
			if got := <-req; got != `{"protocol":"json","version":1}`+"\x1e" {
				t.Fatalf("handshake request %q", got)
			}
		})
	}
}

// TestSignalRHandshakeRemainder: messages that came in the handshake
// answer's WebSocket message are handed out first with the next message.
func TestSignalRHandshakeRemainder(t *testing.T) {
	srv := scripted(t, func(ctx context.Context, ws *websocket.Conn) {
		_, _, _ = ws.Read(ctx)
		_ = ws.Write(ctx, websocket.MessageText, []byte("{}\x1e"+`{"type":1,"target":"welcome","arguments":[]}`+"\x1e"))
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":1,"target":"quote","arguments":[1]}`+"\x1e"))
		_, _, _ = ws.Read(ctx)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(srv, "/hub"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	f := newSignalRFraming(signalROptions{KeepAlive: time.Second, ServerTimeout: 2 * time.Second})
	info, err := f.open(ctx, ws)
	if err != nil || info.readIdle != 2*time.Second || info.pingInterval != time.Second {
		t.Fatalf("open = %+v, %v", info, err)
	}
	typ, p, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, closed := f.decode(nil, typ, p)
	if closed != nil || len(recs) != 2 || !strings.Contains(string(recs[0].data), "welcome") || !strings.Contains(string(recs[1].data), "quote") {
		t.Fatalf("records %v, closed %v", recs, closed)
	}
	if recs, _, _ := f.decode(nil, websocket.MessageText, []byte(`{"type":6}`+"\x1e")); len(recs) != 0 {
		t.Fatalf("the remainder came twice: %v", recs)
	}
}

func FuzzSignalRDecode(f *testing.F) {
	for _, s := range []string{"{\"type\":6}\x1e", "{\"type\":1,\"target\":\"q\",\"arguments\":[1]}\x1e{\"type\":7}\x1e", "\x1e", "{\"type\":3,\"error\":\"x\"}\x1e", "{", "{\"type\":1e400}\x1e"} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, p []byte, binary bool) {
		fr := newSignalRFraming(signalROptions{})
		typ := websocket.MessageText
		if binary {
			typ = websocket.MessageBinary
		}
		recs, reply, _ := fr.decode(nil, typ, p)
		if reply != nil {
			t.Fatalf("reply %q", reply)
		}
		for _, r := range recs {
			var m struct {
				Type int `json:"type"`
			}
			if err := json.Unmarshal(r.data, &m); err != nil || m.Type < 1 || m.Type > 3 {
				t.Fatalf("record %q (%v)", r.data, err)
			}
		}
	})
}
