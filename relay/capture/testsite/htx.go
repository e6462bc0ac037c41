package testsite

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// HTXConfig configures an HTX-like feed. A zero field means its default.
type HTXConfig struct {
	// Rate is pushes per second per subscribed topic (default 10).
	Rate float64
	// PingEvery is the server's ping period (default 5s, as HTX's docs
	// say: "the server will send a ping message every 5 seconds").
	PingEvery time.Duration
	// MissedPings closes a connection that left this many pings in a row
	// unanswered (default 2: "Connection will be closed if server doesn't
	// receive pong after 2 consecutive ping messages").
	MissedPings int
}

// HTX is an HTX-like (Huobi) public market feed: every server frame is
// gzip-compressed binary ("all return data of websocket Market APIs are
// compressed with GZIP"), and the server pings with {"ping":<ms>}, to be
// answered {"pong":<the same ms>}.
//
//	→ {"sub":"market.btcusdt.ticker","id":"id1"}
//	← {"id":"id1","status":"ok","subbed":"market.btcusdt.ticker","ts":…}
//	← {"ch":"market.btcusdt.ticker","ts":…,"tick":{"open":…,"close":…,"bid":…,"ask":…,…}}
//	← {"ping":1492420473027}   → {"pong":1492420473027}
//
// An invalid topic gets {"status":"error","err-code":"bad-request",
// "err-msg":"invalid topic …"}. It is an http.Handler; Close ends every
// connection and waits for them.
type HTX struct {
	server
	cfg HTXConfig
}

// NewHTX returns an HTX-like feed.
func NewHTX(cfg HTXConfig) *HTX {
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.PingEvery <= 0 {
		cfg.PingEvery = 5 * time.Second
	}
	if cfg.MissedPings <= 0 {
		cfg.MissedPings = 2
	}
	return &HTX{server: newServer(), cfg: cfg}
}

var htxTopic = regexp.MustCompile(`^market\.([a-z0-9]{2,20})\.ticker$`)

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	_, _ = w.Write(b)
	_ = w.Close()
	return out.Bytes()
}

// ServeHTTP serves one connection.
func (h *HTX) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws := h.accept(w, r)
	if ws == nil {
		return
	}
	defer h.done(ws)
	ctx, cancel := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	send := func(v any) error { return writeJSON(ctx, ws, websocket.MessageBinary, v, gzipped) }
	var mu sync.Mutex
	outstanding := map[int64]bool{} // pings not answered yet
	wg.Add(1)
	go func() { // the ping rule
		defer wg.Done()
		t := time.NewTicker(h.cfg.PingEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			missed := len(outstanding)
			ts := time.Now().UnixMilli()
			outstanding[ts] = true
			mu.Unlock()
			if missed >= h.cfg.MissedPings {
				h.Stats.IdleCloses.Add(1)
				_ = ws.Close(websocket.StatusPolicyViolation, "pong timeout")
				return
			}
			if send(map[string]int64{"ping": ts}) != nil {
				return
			}
		}
	}()
	subs := map[string]context.CancelFunc{}
	for {
		typ, p, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var req struct {
			Sub   string `json:"sub"`
			Unsub string `json:"unsub"`
			ID    string `json:"id"`
			Pong  *int64 `json:"pong"`
		}
		if typ != websocket.MessageText || json.Unmarshal(p, &req) != nil {
			h.Stats.BadMessages.Add(1)
			continue
		}
		switch {
		case req.Pong != nil:
			mu.Lock()
			if outstanding[*req.Pong] {
				clear(outstanding) // answered: the count of missed pings starts again
				h.Stats.Pings.Add(1)
			}
			mu.Unlock()
		case req.Unsub != "":
			if stop, ok := subs[req.Unsub]; ok {
				stop()
				delete(subs, req.Unsub)
			}
			_ = send(map[string]any{"id": req.ID, "status": "ok", "unsubbed": req.Unsub, "ts": time.Now().UnixMilli()})
		case req.Sub != "":
			m := htxTopic.FindStringSubmatch(req.Sub)
			if m == nil {
				h.Stats.Rejected.Add(1)
				_ = send(map[string]any{"id": req.ID, "status": "error", "err-code": "bad-request",
					"err-msg": "invalid topic " + truncate(req.Sub, 64), "ts": time.Now().UnixMilli()})
				continue
			}
			if _, dup := subs[req.Sub]; dup {
				continue
			}
			h.Stats.Subscribes.Add(1)
			_ = send(map[string]any{"id": req.ID, "status": "ok", "subbed": req.Sub, "ts": time.Now().UnixMilli()})
			sctx, stop := context.WithCancel(ctx)
			subs[req.Sub] = stop
			wg.Add(1)
			go func(topic, sym string) {
				defer wg.Done()
				px := &walk{p: basePrice(sym)}
				count := int64(0)
				pusher(sctx, h.cfg.Rate, func(int) bool {
					last := px.next()
					count++
					err := send(map[string]any{"ch": topic, "ts": time.Now().UnixMilli(), "tick": map[string]any{
						"open": last, "high": last + 1, "low": last - 1, "close": last, "amount": 12.5, "vol": 1234567.8,
						"count": count, "bid": last - 0.01, "bidSize": 0.5, "ask": last + 0.01, "askSize": 0.7,
						"lastPrice": last, "lastSize": 0.001}})
					if err == nil {
						h.Stats.Quotes.Add(1)
					}
					return err == nil
				})
			}(req.Sub, m[1])
		default:
			h.Stats.BadMessages.Add(1)
		}
	}
}
