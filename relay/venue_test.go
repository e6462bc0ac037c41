package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testVenue is a small, strict exchange for the engine's tests (the venue
// fakes of relay/venuefake test the presets). Its protocol:
//
//	client: {"op":"sub","sym":"X","id":N}  {"op":"unsub","sym":"X"}  {"op":"hello"}  {"pong":N}
//	server: {"ack":N}  {"error":"unknown symbol X","id":N}  {"sym":"X","seq":K}  {"ping":N}
//	        {"event":"reconnect"}  {"type":"welcome"}
//
// Every symbol has one global sequence: each tick goes to every connection
// subscribed to it (as a venue broadcasts), so a test can prove that the
// relay lost nothing across connections. It enforces a handshake rate and
// a connection cap (HTTP 429), a token, a welcome before subscribing and
// answers to its pings, as configured.
type testVenue struct {
	t   testing.TB
	srv *httptest.Server
	cfg venueConfig

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	conns      map[*vconn]struct{}
	seq        map[string]uint64
	dials      []time.Time
	handshakes int
	upgrading  int // handshakes not yet refused or open
	refused    int
	maxOpen    int
	received   []string
	closeCodes []websocket.StatusCode
}

type venueConfig struct {
	tick      time.Duration   // push interval of every subscribed symbol
	known     map[string]bool // nil: every symbol is listed
	rate      Rate            // handshakes per window (429 past it)
	maxConns  int             // open connections (429 past it)
	pingEvery time.Duration   // server {"ping":N}; no pong within 2 periods closes
	welcome   time.Duration   // > 0: {"type":"welcome"} after this; a subscribe before it closes (4000)
	token     string          // required ?token=; POST /bullet gives it
	pathSym   bool            // /ws/<sym> streams <sym> with no subscribe
	textNoise bool            // also send a non-JSON text frame now and then
	subRate   Rate            // subscribes per window and connection; past it the connection is closed (4008)
	silent    map[string]bool // acked but never pushed
}

type vconn struct {
	ws     *websocket.Conn
	subs_  []time.Time // recent subscribes, for subRate
	mu     sync.Mutex
	subs   map[string]bool
	pongs  map[uint64]bool
	welcom bool
	lagQ   chan lagged   // set by lagOpen: frames written lag late, in order
	lag    time.Duration // (both under mu)
}

type lagged struct {
	frame string
	due   time.Time
}

func newTestVenue(t testing.TB, cfg venueConfig) *testVenue {
	if cfg.tick == 0 {
		cfg.tick = 10 * time.Millisecond
	}
	v := &testVenue{t: t, cfg: cfg, conns: map[*vconn]struct{}{}, seq: map[string]uint64{}}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /bullet", v.bullet)
	mux.HandleFunc("/ws", v.serveWS)
	mux.HandleFunc("/ws/", v.serveWS)
	v.srv = httptest.NewServer(mux)
	v.wg.Add(1)
	go v.pump()
	t.Cleanup(v.close)
	return v
}

func (v *testVenue) wsURL() string { return "ws" + strings.TrimPrefix(v.srv.URL, "http") + "/ws" }

func (v *testVenue) bullet(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"code":"200000","data":{"token":%q,"instanceServers":[{"endpoint":%q,"pingInterval":%d}]}}`,
		v.cfg.token, v.wsURL(), (200 * time.Millisecond).Milliseconds())
}

func (v *testVenue) serveWS(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	v.handshakes++
	v.upgrading++
	upgraded := false
	defer func() {
		if !upgraded {
			v.mu.Lock()
			v.upgrading--
			v.mu.Unlock()
		}
	}()
	now := time.Now()
	if rt := v.cfg.rate; rt.N > 0 {
		for len(v.dials) > 0 && now.Sub(v.dials[0]) >= rt.Per {
			v.dials = v.dials[1:]
		}
		if len(v.dials) >= rt.N {
			v.refused++
			v.mu.Unlock()
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
		v.dials = append(v.dials, now)
	}
	if v.cfg.maxConns > 0 && len(v.conns) >= v.cfg.maxConns {
		v.refused++
		v.mu.Unlock()
		http.Error(w, "too many connections", http.StatusTooManyRequests)
		return
	}
	if v.cfg.token != "" && r.URL.Query().Get("token") != v.cfg.token {
		v.mu.Unlock()
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	v.mu.Unlock()
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c := &vconn{ws: ws, subs: map[string]bool{}, pongs: map[uint64]bool{}}
	if sym, ok := strings.CutPrefix(r.URL.Path, "/ws/"); ok && v.cfg.pathSym {
		c.subs[sym] = true
	}
	v.mu.Lock()
	if v.ctx.Err() != nil {
		v.mu.Unlock()
		ws.CloseNow()
		return
	}
	v.conns[c] = struct{}{}
	v.upgrading--
	upgraded = true
	v.maxOpen = max(v.maxOpen, len(v.conns))
	v.wg.Add(1)
	v.mu.Unlock()
	defer v.wg.Done()
	defer func() {
		v.mu.Lock()
		delete(v.conns, c)
		v.mu.Unlock()
		ws.CloseNow()
	}()
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	if v.cfg.welcome > 0 {
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(v.cfg.welcome):
				c.mu.Lock()
				c.welcom = true
				c.mu.Unlock()
				v.send(c, `{"id":"w1","type":"welcome"}`)
			}
		}()
	}
	if v.cfg.pingEvery > 0 {
		go v.pinger(ctx, c)
	}
	for {
		_, p, err := ws.Read(ctx)
		if err != nil {
			v.mu.Lock()
			v.closeCodes = append(v.closeCodes, websocket.CloseStatus(err))
			v.mu.Unlock()
			return
		}
		v.mu.Lock()
		v.received = append(v.received, string(p))
		v.mu.Unlock()
		var m struct {
			Op   string  `json:"op"`
			Sym  string  `json:"sym"`
			ID   *uint64 `json:"id"`
			Pong *uint64 `json:"pong"`
		}
		if json.Unmarshal(p, &m) != nil {
			ws.Close(websocket.StatusUnsupportedData, "not json")
			return
		}
		if m.Pong != nil {
			c.mu.Lock()
			c.pongs[*m.Pong] = true
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		early := v.cfg.welcome > 0 && !c.welcom
		c.mu.Unlock()
		if early && m.Op != "" {
			ws.Close(4000, "subscribe before welcome")
			return
		}
		if m.Op == "sub" && v.cfg.subRate.N > 0 {
			now := time.Now()
			for len(c.subs_) > 0 && now.Sub(c.subs_[0]) >= v.cfg.subRate.Per {
				c.subs_ = c.subs_[1:]
			}
			if len(c.subs_) >= v.cfg.subRate.N {
				v.send(c, `{"error":"too_many_requests"}`)
				ws.Close(4008, "too many requests")
				return
			}
			c.subs_ = append(c.subs_, now)
		}
		switch m.Op {
		case "sub":
			id := uint64(0)
			if m.ID != nil {
				id = *m.ID
			}
			if v.cfg.known != nil && !v.cfg.known[m.Sym] {
				v.send(c, fmt.Sprintf(`{"error":"unknown symbol %s","id":%d}`, m.Sym, id))
				continue
			}
			c.mu.Lock()
			c.subs[m.Sym] = true
			c.mu.Unlock()
			v.send(c, fmt.Sprintf(`{"ack":%d}`, id))
		case "unsub":
			c.mu.Lock()
			delete(c.subs, m.Sym)
			c.mu.Unlock()
		case "hello", "":
		default:
			ws.Close(websocket.StatusPolicyViolation, "unknown op")
			return
		}
	}
}

// pinger sends {"ping":N} every period and closes the connection when a
// ping is two periods old without its pong.
func (v *testVenue) pinger(ctx context.Context, c *vconn) {
	t := time.NewTicker(v.cfg.pingEvery)
	defer t.Stop()
	var sent []uint64
	for n := uint64(1); ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		for len(sent) > 0 && c.pongs[sent[0]] {
			sent = sent[1:]
		}
		late := len(sent) >= 2
		c.mu.Unlock()
		if late {
			c.ws.Close(4001, "no pong")
			return
		}
		sent = append(sent, n)
		v.send(c, fmt.Sprintf(`{"ping":%d}`, n))
	}
}

// pump ticks every subscribed symbol's sequence and broadcasts it.
func (v *testVenue) pump() {
	defer v.wg.Done()
	t := time.NewTicker(v.cfg.tick)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-v.ctx.Done():
			return
		case <-t.C:
		}
		v.mu.Lock()
		conns := make([]*vconn, 0, len(v.conns))
		for c := range v.conns {
			conns = append(conns, c)
		}
		bySym := map[string][]*vconn{}
		for _, c := range conns {
			c.mu.Lock()
			for s := range c.subs {
				bySym[s] = append(bySym[s], c)
			}
			c.mu.Unlock()
		}
		frames := map[string]string{}
		for s := range bySym {
			if v.cfg.silent[s] {
				delete(bySym, s)
				continue
			}
			v.seq[s]++
			frames[s] = fmt.Sprintf(`{"sym":%q,"seq":%d,"px":"1.%d"}`, s, v.seq[s], v.seq[s])
		}
		v.mu.Unlock()
		for s, cs := range bySym {
			for _, c := range cs {
				v.send(c, frames[s])
			}
		}
		if v.cfg.textNoise && n%5 == 0 {
			for _, c := range conns {
				v.send(c, "hello, not json")
			}
		}
	}
}

// lagOpen makes every open connection write its frames d late, in
// order, while its WebSocket pongs go out at once (a venue whose send
// queue is behind: a pong overtakes the quotes queued before it).
// Connections opened later are not slowed.
func (v *testVenue) lagOpen(d time.Duration) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	for c := range v.conns {
		q := make(chan lagged, 4096)
		c.mu.Lock()
		c.lagQ, c.lag = q, d
		c.mu.Unlock()
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			for {
				select {
				case <-v.ctx.Done():
					return
				case f := <-q:
					select {
					case <-v.ctx.Done():
						return
					case <-time.After(time.Until(f.due)):
					}
					ctx, cancel := context.WithTimeout(v.ctx, time.Second)
					err := c.ws.Write(ctx, websocket.MessageText, []byte(f.frame))
					cancel()
					if err != nil {
						return
					}
				}
			}
		}()
	}
	return len(v.conns)
}

func (v *testVenue) send(c *vconn, s string) {
	c.mu.Lock()
	q, lag := c.lagQ, c.lag
	c.mu.Unlock()
	if q != nil {
		select {
		case q <- lagged{frame: s, due: time.Now().Add(lag)}:
		default:
			c.ws.CloseNow() // the queue is full: a slow consumer
		}
		return
	}
	ctx, cancel := context.WithTimeout(v.ctx, time.Second)
	defer cancel()
	_ = c.ws.Write(ctx, websocket.MessageText, []byte(s))
}

// announce sends {"event":"reconnect"} on every connection and closes them
// after grace, as a venue about to restart does.
func (v *testVenue) announce(grace time.Duration) {
	v.mu.Lock()
	conns := make([]*vconn, 0, len(v.conns))
	for c := range v.conns {
		conns = append(conns, c)
	}
	v.mu.Unlock()
	for _, c := range conns {
		v.send(c, `{"event":"reconnect"}`)
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		select {
		case <-v.ctx.Done():
		case <-time.After(grace):
		}
		for _, c := range conns {
			c.ws.Close(websocket.StatusGoingAway, "restart")
		}
	}()
}

// dropAll cuts every connection without a close frame.
func (v *testVenue) dropAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for c := range v.conns {
		c.ws.CloseNow()
	}
}

// stats reports the handshakes so far, those refused, the connections
// open or being opened (a handshake still upgrading counts: a test waiting
// for a number of open connections must not see a quiet moment between a
// handshake and its registration) and the most open at once.
func (v *testVenue) stats() (handshakes, refused, open, maxOpen int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.handshakes, v.refused, len(v.conns) + v.upgrading, v.maxOpen
}

func (v *testVenue) countReceived(sub string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, r := range v.received {
		if strings.Contains(r, sub) {
			n++
		}
	}
	return n
}

func (v *testVenue) close() {
	v.cancel()
	v.mu.Lock()
	for c := range v.conns {
		c.ws.CloseNow()
	}
	v.mu.Unlock()
	v.srv.CloseClientConnections()
	v.srv.Close()
	v.wg.Wait()
}

// venueUpstream is an upstream on the test venue.
func venueUpstream(v *testVenue, syms ...string) UpstreamConfig {
	u := UpstreamConfig{
		Name: "v", URL: v.wsURL(),
		Subscribe:   []string{`{"op":"sub","sym":"{symbol}","id":{id}}`},
		Unsubscribe: []string{`{"op":"unsub","sym":"{symbol}"}`},
		Accept:      []Matcher{Exists("/seq")},
		Reject:      []RejectRule{{Matcher: Exists("/error"), Message: "/error", ID: "/id"}},
		ReconnectOn: []Matcher{Equals("/event", "reconnect")},
		Heartbeat:   []Matcher{Exists("/ack")},
		Backoff:     Backoff{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond},
		StaleAfter:  time.Hour,
	}
	for _, s := range syms {
		u.Symbols = append(u.Symbols, Symbol{Name: s})
	}
	return u
}

// seqs returns the venue sequence numbers of every retained quote of sym.
func seqs(t testing.TB, b *Broker, sym string) []uint64 {
	t.Helper()
	evs, _, err := b.History(sym, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range evs {
		var q struct {
			Data struct {
				Sym string `json:"sym"`
				Seq uint64 `json:"seq"`
			} `json:"data"`
		}
		if err := json.Unmarshal(e.JSON, &q); err != nil {
			t.Fatal(err)
		}
		if q.Data.Sym != sym {
			t.Fatalf("quote of %s published as %s: %s", q.Data.Sym, sym, e.JSON)
		}
		out = append(out, q.Data.Seq)
	}
	return out
}

// gaps counts venue sequence numbers missing between the lowest and the
// highest quote. A repeat is not a loss, and neither is a quote out of
// order: a handover publishes the old connection's late quotes after some
// of the new one's, as nothing tells the relay their order.
func gaps(s []uint64) (missing int) {
	if len(s) == 0 {
		return 0
	}
	have := make(map[uint64]bool, len(s))
	for _, n := range s {
		have[n] = true
	}
	for n := slices.Min(s); n <= slices.Max(s); n++ {
		if !have[n] {
			missing++
		}
	}
	return missing
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
