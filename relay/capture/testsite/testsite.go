// Package testsite holds small exchange-like web sites for tests of
// `wsrelay import` and `probe`: a market page that opens a WebSocket and
// subscribes the way such pages do, and feeds in the dialects import must
// handle: OKX-like (JSON, client text pings "ping"/"pong") and HTX-like
// (gzip binary frames, server pings {"ping":n} answered {"pong":n}). The
// seed protocol's feed is relay/simfeed.
//
// The feeds are strict where the real venues are: a connection that does
// not keep itself alive is closed, and both count what they closed and
// why, so a test can prove that an imported config keeps the connection
// alive the way the page did. They are test infrastructure, like faultnet.
package testsite

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Stats counts what a feed saw. All fields are read with atomic loads.
type Stats struct {
	Accepted    atomic.Int64 // connections accepted
	Subscribes  atomic.Int64 // subscriptions accepted
	Rejected    atomic.Int64 // subscribe frames refused
	Pings       atomic.Int64 // keepalive frames from clients (OKX "ping", HTX {"pong":n})
	IdleCloses  atomic.Int64 // connections closed because the client kept silent (OKX) or missed pings (HTX)
	Quotes      atomic.Int64 // quote frames pushed
	BadMessages atomic.Int64 // client frames that were not understood
}

// server is what both feeds share: accepted connections, their
// goroutines, and shutdown.
type server struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[*websocket.Conn]struct{}
	Stats  Stats
}

func newServer() server {
	ctx, cancel := context.WithCancel(context.Background())
	return server{ctx: ctx, cancel: cancel, conns: map[*websocket.Conn]struct{}{}}
}

// accept upgrades r and registers the connection; nil when shutting down.
func (s *server) accept(w http.ResponseWriter, r *http.Request) *websocket.Conn {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil
	}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		ws.CloseNow()
		return nil
	}
	s.conns[ws] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.Stats.Accepted.Add(1)
	ws.SetReadLimit(1 << 20)
	return ws
}

func (s *server) done(ws *websocket.Conn) {
	s.mu.Lock()
	delete(s.conns, ws)
	s.mu.Unlock()
	ws.CloseNow()
	s.wg.Done()
}

// Close ends every connection and waits for their goroutines; it is
// idempotent.
func (s *server) Close() {
	s.mu.Lock()
	s.cancel()
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.CloseNow()
	}
	s.wg.Wait()
}

// pusher runs fn at rate per second until ctx ends.
func pusher(ctx context.Context, rate float64, fn func(k int) bool) {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn(k) {
				return
			}
		}
	}
}

// walk is a random-walk price.
type walk struct {
	mu sync.Mutex
	p  float64
}

func (w *walk) next() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.p *= math.Exp(rand.NormFloat64() * 0.0005)
	return math.Round(w.p*100) / 100
}

func basePrice(sym string) float64 {
	h := 0
	for _, c := range sym {
		h = h*31 + int(c)
	}
	return 100 + float64(h%90000)
}

func writeJSON(ctx context.Context, ws *websocket.Conn, typ websocket.MessageType, v any, enc func([]byte) []byte) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if enc != nil {
		b = enc(b)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return ws.Write(wctx, typ, b)
}
