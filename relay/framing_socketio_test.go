package relay

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func mustSocketIO(t testing.TB, o socketIOOptions) *socketIOFraming {
	t.Helper()
	f, err := newSocketIOFraming(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSocketIOOptions(t *testing.T) {
	for _, o := range []socketIOOptions{
		{Namespace: "admin"}, {Namespace: "/a,b"}, {Auth: "[1]"}, {Auth: "{"},
	} {
		if _, err := newSocketIOFraming(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	f := mustSocketIO(t, socketIOOptions{Namespace: "/m", Auth: `{"token":"x"}`})
	if string(f.connect) != `40/m,{"token":"x"}` || string(f.event) != "42/m," {
		t.Fatalf("connect %q, event %q", f.connect, f.event)
	}
	if got, err := newFraming(&UpstreamConfig{Framing: FramingSocketIO}); err != nil || got.(*socketIOFraming).namespace != "/" {
		t.Fatalf("newFraming(socketio) = %v, %v", got, err)
	}
}

func TestSocketIODialURL(t *testing.T) {
	f := mustSocketIO(t, socketIOOptions{})
	for in, want := range map[string]string{
		"ws://h/socket.io/?EIO=4&transport=websocket": "ws://h/socket.io/?EIO=4&transport=websocket",
		"ws://h/socket.io/":                           "ws://h/socket.io/?EIO=4&transport=websocket",
		"ws://h/socket.io?EIO=4":                      "ws://h/socket.io/?EIO=4&transport=websocket",
		"http://h:8080":                               "ws://h:8080/socket.io/?EIO=4&transport=websocket",
		"https://h/socket.io/?EIO=4&transport=polling&sid=abc&t=N8hyd6w": "wss://h/socket.io/?EIO=4&t=N8hyd6w&transport=websocket",
		"wss://h/feed/ws/?token=a":                                       "wss://h/feed/ws/?EIO=4&token=a&transport=websocket",
	} {
		got, err := f.dialURL(context.Background(), nil, nil, in)
		if err != nil || got != want {
			t.Errorf("dialURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"ws://h/socket.io/?EIO=3", "ftp://h/", "ws://h/%zz"} {
		if got, err := f.dialURL(context.Background(), nil, nil, in); err == nil {
			t.Errorf("dialURL(%q) = %q, want an error", in, got)
		}
	}
}

func TestSocketIODecode(t *testing.T) {
	type want struct {
		recs   []string
		reply  string
		closed string // substring; "" = not closed
		skip   string // substring of skipped(); "" = nil
	}
	cases := []struct {
		ns   string
		in   string
		bin  bool
		want want
	}{
		{in: "2", want: want{reply: "3"}},
		{in: "2probe", want: want{reply: "3probe"}},
		{in: "3"}, {in: "6"}, {in: "5"}, {in: `0{"sid":"x"}`},
		{in: "1", want: want{closed: "Engine.IO close packet"}},
		{in: "", want: want{closed: "empty Engine.IO packet"}},
		{in: "9", want: want{closed: "unknown Engine.IO packet type"}},
		{in: `42["quote",{"a":1}]`, want: want{recs: []string{`["quote",{"a":1}]`}}},
		{in: `42 ["quote"]`, want: want{recs: []string{` ["quote"]`}}},
		{in: `4212["quote",1]`, want: want{recs: []string{`["quote",1]`}}},
		{in: `42/,["quote",1]`, want: want{recs: []string{`["quote",1]`}}},
		{in: `42/m,["quote",1]`},
		{ns: "/m", in: `42/m,["quote",1]`, want: want{recs: []string{`["quote",1]`}}},
		{ns: "/m", in: `42/m,7["quote",1]`, want: want{recs: []string{`["quote",1]`}}},
		{ns: "/m", in: `42["quote",1]`},
		{in: `43["ok"]`, want: want{recs: []string{`["ok"]`}}},
		{in: `431[]`, want: want{recs: []string{`[]`}}},
		{in: `42{}`, want: want{closed: "EVENT payload is not a JSON array"}},
		{in: `42[]`, want: want{closed: "EVENT payload is not a JSON array"}},
		{in: `42[ ]`, want: want{closed: "EVENT payload is not a JSON array"}},
		{in: `42`, want: want{closed: "EVENT payload is not a JSON array"}},
		{in: `43"x"`, want: want{closed: "ACK payload is not a JSON array"}},
		{in: `40{"sid":"y"}`},
		{in: `41`, want: want{closed: `disconnected the namespace "/"`}},
		{in: `41/m,`},
		{ns: "/m", in: `41/m,`, want: want{closed: `disconnected the namespace "/m"`}},
		{in: `44{"message":"not authorized"}`, want: want{closed: `refused the namespace "/": not authorized`}},
		{in: `44{"message":"no","data":{"code":7}}`, want: want{closed: `no (data: {"code":7})`}},
		{in: `44"old style"`, want: want{closed: "old style"}},
		{in: `44`, want: want{closed: "no reason given"}},
		{in: `47`, want: want{closed: "unknown Socket.IO packet type"}},
		{in: `4`, want: want{closed: "unknown Socket.IO packet type"}},
		{in: `45-["quote"]`, want: want{closed: "attachment count"}},
		{in: `451["quote"]`, want: want{closed: "attachment count"}},
		{in: `4512345678901-[]`, want: want{closed: "attachment count"}},
		{in: `4299999999999999999["x"]`, want: want{closed: "ack id"}},
		{in: `451-["quote",{"_placeholder":true,"num":0}]`, want: want{skip: `BINARY_EVENT "quote" with 1 binary attachment(s) is not supported`}},
		{in: `461-/m,3[{"_placeholder":true,"num":0}]`},
		{in: "\x01\x02", bin: true, want: want{closed: "binary message outside a binary event"}},
	}
	for _, c := range cases {
		f := mustSocketIO(t, socketIOOptions{Namespace: c.ns})
		typ := websocket.MessageText
		if c.bin {
			typ = websocket.MessageBinary
		}
		recs, reply, closed := f.decode(nil, typ, []byte(c.in))
		var got []string
		for _, r := range recs {
			if r.binary {
				t.Errorf("%q: binary record", c.in)
			}
			got = append(got, string(r.data))
		}
		if strings.Join(got, "|") != strings.Join(c.want.recs, "|") || string(reply) != c.want.reply {
			t.Errorf("ns %q decode(%q) = %q reply %q; want %q reply %q", c.ns, c.in, got, reply, c.want.recs, c.want.reply)
		}
		if (closed == nil) != (c.want.closed == "") || (closed != nil && !strings.Contains(closed.Error(), c.want.closed)) {
			t.Errorf("ns %q decode(%q) closed = %v, want %q", c.ns, c.in, closed, c.want.closed)
		}
		skip := f.skipped()
		if (skip == nil) != (c.want.skip == "") || (skip != nil && !strings.Contains(skip.Error(), c.want.skip)) {
			t.Errorf("ns %q decode(%q) skipped = %v, want %q", c.ns, c.in, skip, c.want.skip)
		}
	}
}

// TestSocketIOBinaryAttachments: the binary messages after a binary event's
// header are skipped, in any namespace; the session goes on; one more is a
// protocol error.
func TestSocketIOBinaryAttachments(t *testing.T) {
	f := mustSocketIO(t, socketIOOptions{})
	steps := []struct {
		typ    websocket.MessageType
		in     string
		recs   int
		closed bool
	}{
		{websocket.MessageText, `452-["quote",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, 0, false},
		{websocket.MessageBinary, "\x01", 0, false},
		{websocket.MessageBinary, "\x02", 0, false},
		{websocket.MessageText, `42["quote",1]`, 1, false},
		{websocket.MessageText, `451-/other,["x",{"_placeholder":true,"num":0}]`, 0, false},
		{websocket.MessageBinary, "\x03", 0, false},
		{websocket.MessageBinary, "\x04", 0, true},
	}
	for i, s := range steps {
		recs, _, closed := f.decode(nil, s.typ, []byte(s.in))
		if len(recs) != s.recs || (closed != nil) != s.closed {
			t.Fatalf("step %d (%q): %d records, closed %v", i, s.in, len(recs), closed)
		}
	}
}

func TestSocketIOEncode(t *testing.T) {
	if got := mustSocketIO(t, socketIOOptions{}).encode(nil, []byte(`["subscribe","BTC"]`)); string(got) != `42["subscribe","BTC"]` {
		t.Fatalf("encode = %q", got)
	}
	if got := mustSocketIO(t, socketIOOptions{Namespace: "/m"}).encode([]byte("x"), []byte(`1["subscribe","BTC"]`)); string(got) != `x42/m,1["subscribe","BTC"]` {
		t.Fatalf("encode = %q", got)
	}
	if mustSocketIO(t, socketIOOptions{}).keepalive() != nil {
		t.Fatal("socketio has a keepalive")
	}
}

// TestSocketIOOpenErrors: servers that break the handshake give an error
// that says how, never a hang (each case is bounded by the context).
func TestSocketIOOpenErrors(t *testing.T) {
	cases := map[string]struct {
		script func(ctx context.Context, ws *websocket.Conn)
		want   string
	}{
		"not an open packet": {func(ctx context.Context, ws *websocket.Conn) {
			_ = ws.Write(ctx, websocket.MessageText, []byte(`{"hello":1}`))
		}, "expected the Engine.IO open packet"},
		"binary open": {func(ctx context.Context, ws *websocket.Conn) {
			_ = ws.Write(ctx, websocket.MessageBinary, []byte{0})
		}, "a binary message of 1 bytes"},
		"no sid": {func(ctx context.Context, ws *websocket.Conn) {
			_ = ws.Write(ctx, websocket.MessageText, []byte(`0{"pingInterval":1}`))
		}, "no sid"},
		"bad JSON": {func(ctx context.Context, ws *websocket.Conn) {
			_ = ws.Write(ctx, websocket.MessageText, []byte(`0{"sid":`))
		}, "open packet"},
		"negative interval": {func(ctx context.Context, ws *websocket.Conn) {
			_ = ws.Write(ctx, websocket.MessageText, []byte(`0{"sid":"a","pingInterval":-1,"pingTimeout":1}`))
		}, "out of range"},
		"engine close while connecting": {func(ctx context.Context, ws *websocket.Conn) {
			_ = ws.Write(ctx, websocket.MessageText, []byte(`0{"sid":"a","pingInterval":100,"pingTimeout":100}`))
			_, _, _ = ws.Read(ctx)
			_ = ws.Write(ctx, websocket.MessageText, []byte(`1`))
			_, _, _ = ws.Read(ctx)
		}, "Engine.IO close packet"},
		"no answer": {func(ctx context.Context, ws *websocket.Conn) {
			_ = ws.Write(ctx, websocket.MessageText, []byte(`0{"sid":"a","pingInterval":100,"pingTimeout":100}`))
			for range 100 {
				_ = ws.Write(ctx, websocket.MessageText, []byte(`6`))
			}
			_, _, _ = ws.Read(ctx)
		}, "no answer to the namespace \"/\" connect within 64 packets"},
		"silent": {func(ctx context.Context, ws *websocket.Conn) {
			_, _, _ = ws.Read(ctx)
		}, "waiting for the open packet"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			srv := scripted(t, c.script)
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			_, err := tryOpenFraming(ctx, mustSocketIO(t, socketIOOptions{}), wsURL(srv, "/socket.io/"), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("open error = %v, want %q", err, c.want)
			}
		})
	}
}

// TestSocketIOOpenScripted: pings during the namespace connect are
// answered, the connect answer is recognised, and readIdle is
// pingInterval + pingTimeout (EIO Heartbeat).
func TestSocketIOOpenScripted(t *testing.T) {
	got := make(chan string, 4)
	srv := scripted(t, func(ctx context.Context, ws *websocket.Conn) {
		_ = ws.Write(ctx, websocket.MessageText, []byte(`0{"sid":"a","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}`))
		_, p, _ := ws.Read(ctx)
		got <- string(p)
		_ = ws.Write(ctx, websocket.MessageText, []byte(`2`))
		_, p, _ = ws.Read(ctx)
		got <- string(p)
		_ = ws.Write(ctx, websocket.MessageText, []byte(`40/m,{"sid":"b"}`))
		_, _, _ = ws.Read(ctx)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s := openFraming(ctx, t, mustSocketIO(t, socketIOOptions{Namespace: "/m", Auth: `{"token":"t"}`}), wsURL(srv, "/socket.io/"), nil)
	if c, p := <-got, <-got; c != `40/m,{"token":"t"}` || p != "3" {
		t.Fatalf("client sent %q then %q", c, p)
	}
	if s.info.readIdle != 500*time.Millisecond || s.info.pingInterval != 0 {
		t.Fatalf("openInfo = %+v", s.info)
	}
}

// eventOf decodes a Socket.IO record (the event array).
func eventOf(t *testing.T, r record) (string, json.RawMessage) {
	t.Helper()
	var ev []json.RawMessage
	if err := json.Unmarshal(r.data, &ev); err != nil || len(ev) == 0 {
		t.Fatalf("record %q is not an event array", r.data)
	}
	var name string
	_ = json.Unmarshal(ev[0], &name)
	if len(ev) < 2 {
		return name, nil
	}
	return name, ev[1]
}

func FuzzSocketIODecode(f *testing.F) {
	for _, s := range []string{"2", "1", `42["quote",{"a":1}]`, `42/m,7["x"]`, `451-["q",{"_placeholder":true,"num":0}]`, `44{"message":"x"}`, `43/m,1[]`, "4", "45-", `0{"sid":"a"}`} {
		f.Add([]byte(s), false, "/")
		f.Add([]byte(s), false, "/m")
	}
	f.Add([]byte{1, 2, 3}, true, "/")
	f.Fuzz(func(t *testing.T, p []byte, binary bool, ns string) {
		fr, err := newSocketIOFraming(socketIOOptions{Namespace: ns})
		if err != nil {
			return
		}
		typ := websocket.MessageText
		if binary {
			typ = websocket.MessageBinary
		}
		for range 2 { // twice: attachment state carries over
			recs, reply, closed := fr.decode(nil, typ, p)
			if closed != nil && (len(recs) > 0 || reply != nil) {
				t.Fatalf("closed with records or a reply: %q", p)
			}
			for _, r := range recs {
				if !isJSONArray(r.data, false) {
					t.Fatalf("record %q is not an array", r.data)
				}
			}
			if reply != nil && (len(reply) == 0 || reply[0] != '3') {
				t.Fatalf("reply %q", reply)
			}
		}
	})
}

func TestFramingTemplateChecks(t *testing.T) {
	sio := mustSocketIO(t, socketIOOptions{})
	sr := newSignalRFraming(signalROptions{})
	for tmpl, ok := range map[string]bool{
		`["subscribe","{symbol}"]`:     true,
		` ["subscribe"]`:               true,
		`{id}["subscribe","{symbol}"]`: true,
		`12["subscribe"]`:              true,
		`42["subscribe","{symbol}"]`:   false,
		`42/m,["subscribe"]`:           false,
		`{"op":"subscribe"}`:           false,
		`subscribe`:                    false,
	} {
		if err := sio.checkTemplate(tmpl); (err == nil) != ok {
			t.Errorf("socketio checkTemplate(%q) = %v", tmpl, err)
		}
	}
	for tmpl, ok := range map[string]bool{
		`{"type":1,"target":"Subscribe","arguments":["{symbol}"]}`: true,
		`["Subscribe"]`: false,
		``:              false,
	} {
		if err := sr.checkTemplate(tmpl); (err == nil) != ok {
			t.Errorf("signalr checkTemplate(%q) = %v", tmpl, err)
		}
	}
}
