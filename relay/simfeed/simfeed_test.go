package simfeed

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSeedProtocol: subscribe is acknowledged and yields quote frames of
// the seed shape with a growing n and a send time; unsubscribe stops them;
// a bad channel is answered with an error event.
func TestSeedProtocol(t *testing.T) {
	f := New(Config{Rate: 200, Pad: 300})
	srv := httptest.NewServer(f)
	defer func() { f.Close(); srv.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	send := func(s string) {
		if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	reads := 0
	read := func() map[string]any {
		_, b, err := c.Read(ctx)
		reads++
		if err != nil {
			t.Fatalf("read %d: %v (feed saw %v)", reads, err, f.CloseCodes())
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("not JSON: %s", b)
		}
		m["_len"] = float64(len(b))
		return m
	}
	send(`{"action":"subscribe","args":["QuoteBin5m:BTC/USDT"]}`)
	if ack := read(); ack["event"] != "subscribed" {
		t.Fatalf("ack %v", ack)
	}
	var lastN float64
	for range 5 {
		m := read()
		data := m["data"].([]any)[0].(map[string]any)
		if m["group"] != "QuoteBin5m:BTC/USDT" || data["n"].(float64) != lastN+1 || data["sent_ns"].(float64) == 0 || data["close"] == "" {
			t.Fatalf("frame %v", m)
		}
		if m["_len"].(float64) != 300 {
			t.Fatalf("frame of %v bytes, want exactly 300", m["_len"])
		}
		lastN = data["n"].(float64)
	}
	if f.Subscribed("BTC/USDT") != 1 || f.Received()[0] != `{"action":"subscribe","args":["QuoteBin5m:BTC/USDT"]}` {
		t.Fatalf("subscribed %d, received %v", f.Subscribed("BTC/USDT"), f.Received())
	}
	send(`{"action":"unsubscribe","args":["QuoteBin5m:BTC/USDT"]}`)
	for {
		if m := read(); m["event"] == "unsubscribed" {
			break
		}
	}
	send(`{"action":"subscribe","args":["nope"]}`)
	for {
		m := read()
		if m["event"] == "error" {
			break
		}
		if m["group"] != nil {
			t.Fatalf("a quote after unsubscribe: %v", m)
		}
	}
	if f.Subscribed("BTC/USDT") != 0 {
		t.Fatal("still subscribed")
	}
}
