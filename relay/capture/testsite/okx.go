package testsite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// OKXConfig configures an OKX-like feed. A zero field means its default.
type OKXConfig struct {
	// Rate is pushes per second per subscribed instrument (default 10).
	Rate float64
	// Idle closes a connection whose client sent nothing for this long
	// (default 30s). OKX's docs (WebSocket API, "Overview") say the
	// connection breaks when nothing happens for 30 seconds and tell
	// clients to send the string "ping" and expect "pong"; venues such as
	// Bybit and Bitget close connections whose client stops pinging. The
	// fake holds the client to it: only client frames count.
	Idle time.Duration
}

// OKX is an OKX-like public feed (v5 public WebSocket, tickers channel):
//
//	→ {"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}
//	← {"event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"},"connId":"…"}
//	← {"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"…",…}]}
//	→ ping   ← pong
//
// Unknown channels or instruments get {"event":"error","code":"60018",…}
// (OKX's "doesn't exist" code), frames that are not requests
// {"event":"error","code":"60012",…}. It is an http.Handler; Close ends
// every connection and waits for them.
type OKX struct {
	server
	cfg OKXConfig
}

// NewOKX returns an OKX-like feed.
func NewOKX(cfg OKXConfig) *OKX {
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 30 * time.Second
	}
	return &OKX{server: newServer(), cfg: cfg}
}

// okxInstID is how OKX spells spot instruments: BASE-QUOTE in capitals.
var okxInstID = regexp.MustCompile(`^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$`)

type okxArg struct {
	Channel string `json:"channel"`
	InstID  string `json:"instId"`
}

// ServeHTTP serves one connection.
func (o *OKX) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws := o.accept(w, r)
	if ws == nil {
		return
	}
	defer o.done(ws)
	ctx, cancel := context.WithCancel(o.ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	connID := fmt.Sprintf("%08x", o.Stats.Accepted.Load()*2654435761%(1<<32))
	subs := map[string]context.CancelFunc{}
	heard := make(chan struct{}, 1)
	wg.Add(1)
	go func() { // the idle rule
		defer wg.Done()
		t := time.NewTimer(o.cfg.Idle)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-heard:
				t.Reset(o.cfg.Idle)
			case <-t.C:
				o.Stats.IdleCloses.Add(1)
				_ = ws.Close(4004, "No data received in 30s.")
				return
			}
		}
	}()
	for {
		typ, p, err := ws.Read(ctx)
		if err != nil {
			return
		}
		select {
		case heard <- struct{}{}:
		default:
		}
		if typ == websocket.MessageText && string(p) == "ping" {
			o.Stats.Pings.Add(1)
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			_ = ws.Write(wctx, websocket.MessageText, []byte("pong"))
			wcancel()
			continue
		}
		var req struct {
			Op   string   `json:"op"`
			Args []okxArg `json:"args"`
		}
		if typ != websocket.MessageText || json.Unmarshal(p, &req) != nil || (req.Op != "subscribe" && req.Op != "unsubscribe") || len(req.Args) == 0 {
			o.Stats.BadMessages.Add(1)
			_ = writeJSON(ctx, ws, websocket.MessageText, map[string]string{"event": "error", "code": "60012",
				"msg": "Invalid request: " + truncate(string(p), 64), "connId": connID}, nil)
			continue
		}
		for _, a := range req.Args {
			if a.Channel != "tickers" || !okxInstID.MatchString(a.InstID) {
				o.Stats.Rejected.Add(1)
				_ = writeJSON(ctx, ws, websocket.MessageText, map[string]string{"event": "error", "code": "60018",
					"msg": fmt.Sprintf("Wrong URL or channel:%s,instId:%s doesn't exist.", a.Channel, a.InstID), "connId": connID}, nil)
				continue
			}
			if req.Op == "unsubscribe" {
				if stop, ok := subs[a.InstID]; ok {
					stop()
					delete(subs, a.InstID)
				}
				_ = writeJSON(ctx, ws, websocket.MessageText, map[string]any{"event": "unsubscribe", "arg": a, "connId": connID}, nil)
				continue
			}
			if _, dup := subs[a.InstID]; dup {
				continue
			}
			o.Stats.Subscribes.Add(1)
			_ = writeJSON(ctx, ws, websocket.MessageText, map[string]any{"event": "subscribe", "arg": a, "connId": connID}, nil)
			sctx, stop := context.WithCancel(ctx)
			subs[a.InstID] = stop
			wg.Add(1)
			go func(a okxArg) {
				defer wg.Done()
				px := &walk{p: basePrice(a.InstID)}
				pusher(sctx, o.cfg.Rate, func(int) bool {
					last := px.next()
					now := strconv.FormatInt(time.Now().UnixMilli(), 10)
					err := writeJSON(ctx, ws, websocket.MessageText, map[string]any{"arg": a, "data": []map[string]string{{
						"instType": "SPOT", "instId": a.InstID, "last": fmt.Sprintf("%.2f", last), "lastSz": "0.01",
						"askPx": fmt.Sprintf("%.2f", last+0.01), "askSz": "1.5", "bidPx": fmt.Sprintf("%.2f", last-0.01), "bidSz": "2.5",
						"ts": now}}}, nil)
					if err == nil {
						o.Stats.Quotes.Add(1)
					}
					return err == nil
				})
			}(a)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
