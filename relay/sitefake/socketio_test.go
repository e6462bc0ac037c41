package sitefake

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawSIO is a bare Engine.IO/Socket.IO client over coder/websocket: packets
// are written and read as the wire shows them.
type rawSIO struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialSIO(ctx context.Context, t *testing.T, url string) *rawSIO {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &rawSIO{t: t, ws: ws}
}

func (c *rawSIO) send(ctx context.Context, s string) {
	c.t.Helper()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// next returns the next packet, answering pings.
func (c *rawSIO) next(ctx context.Context) (websocket.MessageType, string) {
	c.t.Helper()
	for {
		typ, p, err := c.ws.Read(ctx)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if typ == websocket.MessageText && string(p) == "2" {
			c.send(ctx, "3")
			continue
		}
		return typ, string(p)
	}
}

// TestSocketIOSite walks the site's protocol by hand: open packet, namespace
// connect, welcome, subscribe, quotes without gaps, unknown symbol, the
// /private namespace's connect error, pings and the control commands.
func TestSocketIOSite(t *testing.T) {
	RequireNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	site, err := StartSocketIO(ctx, SocketIOConfig{Interval: 10 * time.Millisecond, PingInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()

	c := dialSIO(ctx, t, site.URL)
	typ, open := c.next(ctx)
	if typ != websocket.MessageText || !strings.HasPrefix(open, `0{"sid":`) || !strings.Contains(open, `"pingInterval":100`) {
		t.Fatalf("open packet = %q", open)
	}
	c.send(ctx, "40")
	if _, p := c.next(ctx); !strings.HasPrefix(p, `40{"sid":`) {
		t.Fatalf("connect answer = %q", p)
	}
	if _, p := c.next(ctx); !strings.HasPrefix(p, `42["welcome",`) {
		t.Fatalf("welcome = %q", p)
	}
	c.send(ctx, `42["subscribe","ETH-USD"]`)
	last := int64(0)
	for n := 0; n < 20; {
		_, p := c.next(ctx)
		var ev []json.RawMessage
		if !strings.HasPrefix(p, "42") || json.Unmarshal([]byte(p[2:]), &ev) != nil || len(ev) != 2 {
			t.Fatalf("unexpected packet %q", p)
		}
		var q struct {
			Symbol string `json:"symbol"`
			Seq    int64  `json:"seq"`
		}
		if err := json.Unmarshal(ev[1], &q); err != nil || string(ev[0]) != `"quote"` || q.Symbol != "ETH-USD" {
			t.Fatalf("not an ETH-USD quote: %q", p)
		}
		if last != 0 && q.Seq != last+1 {
			t.Fatalf("seq %d after %d", q.Seq, last)
		}
		last = q.Seq
		n++
	}
	// Ack form: the rejection comes back as ACK 7.
	c.send(ctx, `427["subscribe","NOPE"]`)
	for {
		_, p := c.next(ctx)
		if strings.HasPrefix(p, "437") {
			if p != `437[{"ok":false,"error":"unknown symbol NOPE"}]` {
				t.Fatalf("ack = %q", p)
			}
			break
		}
	}
	// Event form.
	c.send(ctx, `42["subscribe","NOPE2"]`)
	for {
		_, p := c.next(ctx)
		if strings.HasPrefix(p, `42["subscribe_error"`) {
			if p != `42["subscribe_error",{"symbol":"NOPE2","message":"unknown symbol NOPE2"}]` {
				t.Fatalf("error event = %q", p)
			}
			break
		}
	}

	// /private without a token is refused with CONNECT_ERROR.
	p2 := dialSIO(ctx, t, site.URL)
	p2.next(ctx)
	p2.send(ctx, "40/private,")
	if _, p := p2.next(ctx); p != `44/private,{"message":"not authorized"}` {
		t.Fatalf("private connect = %q", p)
	}
	// With it, accepted.
	p3 := dialSIO(ctx, t, site.URL)
	p3.next(ctx)
	p3.send(ctx, `40/private,{"token":"secret"}`)
	if _, p := p3.next(ctx); !strings.HasPrefix(p, `40/private,{"sid":`) {
		t.Fatalf("private connect with token = %q", p)
	}

	// Binary events arrive as a header and an attachment.
	if err := site.EmitBinary(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	for {
		typ, p := c.next(ctx)
		if strings.HasPrefix(p, `451-["quote",`) {
			if typ, _ := c.next(ctx); typ != websocket.MessageBinary {
				t.Fatalf("attachment is %v", typ)
			}
			break
		}
		if typ == websocket.MessageBinary {
			t.Fatal("attachment before its header")
		}
	}

	st, err := site.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pongs == 0 || st.Rejected != 2 || st.Subscribes != 1 || st.Connections != 2 {
		t.Fatalf("stats = %+v", st)
	}
	if n, err := site.Disconnect(ctx, "/"); err != nil || n != 1 {
		t.Fatalf("disconnect = %d, %v", n, err)
	}
	for {
		_, p := c.next(ctx)
		if p == "41" {
			break
		}
	}
}

// TestSocketIOSiteStartErrors: a cancelled context fails the start and
// leaves no process behind.
func TestSocketIOSiteStartErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := StartSocketIO(ctx, SocketIOConfig{}); err == nil {
		t.Fatal("start with a cancelled context succeeded")
	}
}
