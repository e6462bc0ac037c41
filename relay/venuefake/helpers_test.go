package venuefake

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is what every venue type offers to the helpers.
type fake interface {
	http.Handler
	Close()
}

// serve serves f on loopback and returns its ws:// base URL; at cleanup f
// is closed before the HTTP server (it ends the WebSockets the server
// would wait for).
func serve(t *testing.T, f fake) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(f.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// testCtx bounds a test's waits.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial opens a client connection or fails the test.
func dial(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// dialNoPong opens a client connection that never answers the server's
// WebSocket pings.
func dialNoPong(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		OnPingReceived: func(context.Context, []byte) bool { return false },
	})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// dialStatus tries a handshake and returns the HTTP status of a refusal,
// or 101 (and closes the connection) when it is admitted.
func dialStatus(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil {
		c.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial %s: no response: %v", url, err)
	}
	return resp.StatusCode
}

// send writes one text frame.
func send(t *testing.T, ctx context.Context, c *websocket.Conn, s string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("write %s: %v", s, err)
	}
}

// frame is one frame read by a test client.
type frame struct {
	binary bool
	data   []byte // gunzipped when it was gzip
	gzip   bool
}

// read reads one frame, gunzipping a gzip binary frame.
func read(ctx context.Context, c *websocket.Conn) (frame, error) {
	typ, p, err := c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	f := frame{binary: typ == websocket.MessageBinary, data: p}
	if f.binary && len(p) > 2 && p[0] == 0x1f && p[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return f, err
		}
		f.data, err = io.ReadAll(zr)
		if err != nil {
			return f, err
		}
		f.gzip = true
	}
	return f, nil
}

// obj decodes a frame's JSON object, numbers kept as json.Number.
func obj(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", b, err)
	}
	return m
}

// readUntil reads frames until match returns true (it returns that
// frame), at most max frames.
func readUntil(t *testing.T, ctx context.Context, c *websocket.Conn, max int, match func(b []byte) bool) []byte {
	t.Helper()
	for range max {
		f, err := read(ctx, c)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if match(f.data) {
			return f.data
		}
	}
	t.Fatalf("no matching frame in %d frames", max)
	return nil
}

// has is a frame predicate: the frame's text contains every part.
func has(parts ...string) func([]byte) bool {
	return func(b []byte) bool {
		for _, p := range parts {
			if !bytes.Contains(b, []byte(p)) {
				return false
			}
		}
		return true
	}
}

// closedWithin reads (and discards) frames until the connection ends; it
// returns how long that took and the close error. It fails the test if
// the connection is still open after limit.
func closedWithin(t *testing.T, c *websocket.Conn, limit time.Duration) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	start := time.Now()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("connection still open after %v", limit)
			}
			return time.Since(start), err
		}
	}
}

// isClose reports whether err is a close frame from the server.
func isClose(err error) bool {
	var ce websocket.CloseError
	return errors.As(err, &ce)
}
