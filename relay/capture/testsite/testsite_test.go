package testsite

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func dial(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func read(t *testing.T, ws *websocket.Conn) (websocket.MessageType, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, p, err := ws.Read(ctx)
	if typ == websocket.MessageBinary {
		zr, zerr := gzip.NewReader(bytes.NewReader(p))
		if zerr != nil {
			t.Fatalf("binary frame is not gzip: %v", zerr)
		}
		p, _ = io.ReadAll(zr)
	}
	return typ, string(p), err
}

// TestOKXKeepsOnlyTalkingClients: subscribe, quotes, ping/pong, an error
// for an unknown instrument, and a silent client is closed with 4004.
func TestOKXKeepsOnlyTalkingClients(t *testing.T) {
	o := NewOKX(OKXConfig{Rate: 50, Idle: 400 * time.Millisecond})
	srv := httptest.NewServer(o)
	defer srv.Close()
	defer o.Close()
	ws := dial(t, srv)
	defer ws.CloseNow()
	ctx := context.Background()
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}`))
	if _, m, _ := read(t, ws); !strings.Contains(m, `"event":"subscribe"`) {
		t.Fatalf("ack %s", m)
	}
	if _, m, _ := read(t, ws); !strings.Contains(m, `"data":[{`) || !strings.Contains(m, `"instId":"BTC-USDT"`) {
		t.Fatalf("quote %s", m)
	}
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","args":[{"channel":"tickers","instId":"btcusdt"}]}`))
	_ = ws.Write(ctx, websocket.MessageText, []byte("ping"))
	var sawErr, sawPong bool
	for !(sawErr && sawPong) {
		_, m, err := read(t, ws)
		if err != nil {
			t.Fatal(err)
		}
		sawErr = sawErr || strings.Contains(m, `"code":"60018"`)
		sawPong = sawPong || m == "pong"
	}
	// Now silent: closed within the idle time.
	start := time.Now()
	for {
		if _, _, err := read(t, ws); err != nil {
			if websocket.CloseStatus(err) != 4004 {
				t.Fatalf("closed with %v", err)
			}
			break
		}
	}
	if time.Since(start) > 3*time.Second || o.Stats.IdleCloses.Load() != 1 || o.Stats.Pings.Load() != 1 {
		t.Fatalf("idle close after %s, stats idle %d pings %d", time.Since(start), o.Stats.IdleCloses.Load(), o.Stats.Pings.Load())
	}
}

// TestHTXClosesWithoutPongs: gzip frames, {"ping":n} answered keeps the
// connection, two unanswered pings close it.
func TestHTXClosesWithoutPongs(t *testing.T) {
	h := NewHTX(HTXConfig{Rate: 20, PingEvery: 100 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	ws := dial(t, srv)
	defer ws.CloseNow()
	ctx := context.Background()
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"sub":"market.btcusdt.ticker","id":"id1"}`))
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"sub":"market.BTC/USDT.ticker","id":"id2"}`))
	quotes, pongs, sawErr, sawAck := 0, 0, false, false
	for pongs < 3 || quotes < 3 || !sawErr || !sawAck {
		typ, m, err := read(t, ws)
		if err != nil {
			t.Fatalf("read: %v (quotes %d pongs %d)", err, quotes, pongs)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("text frame %q", m)
		}
		var f struct {
			Ping   int64  `json:"ping"`
			Ch     string `json:"ch"`
			Status string `json:"status"`
		}
		_ = json.Unmarshal([]byte(m), &f)
		switch {
		case f.Ping != 0:
			b, _ := json.Marshal(map[string]int64{"pong": f.Ping})
			_ = ws.Write(ctx, websocket.MessageText, b)
			pongs++
		case f.Ch == "market.btcusdt.ticker":
			quotes++
		case f.Status == "error":
			sawErr = true
		case f.Status == "ok":
			sawAck = true
		}
	}
	// Stop answering: closed after two missed pings.
	for {
		if _, _, err := read(t, ws); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("closed with %v", err)
			}
			break
		}
	}
	if h.Stats.IdleCloses.Load() != 1 || h.Stats.Pings.Load() < 3 || h.Stats.Rejected.Load() != 1 {
		t.Fatalf("stats: idle %d pings %d rejected %d", h.Stats.IdleCloses.Load(), h.Stats.Pings.Load(), h.Stats.Rejected.Load())
	}
}
