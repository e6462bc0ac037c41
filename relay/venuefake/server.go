package venuefake

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Canonical channel names: every venue maps its own channel names onto
// these (Binance @bookTicker, OKX bbo-tbt, Bybit orderbook.1 and Kraken's
// ticker with event_trigger bbo are all ChannelBBO).
const (
	ChannelTicker = "ticker"
	ChannelTrades = "trades"
	ChannelBBO    = "bbo"
)

// Config is embedded in every venue's config. A zero field means the
// venue's documented default.
type Config struct {
	// Symbols are the instruments the venue lists, in its own spelling
	// (BTCUSDT, BTC-USDT, BTC/USD, btcusdt); empty means the venue's
	// default list. Anything else is refused in the venue's words.
	Symbols []string
	// TimeScale multiplies every default duration of the venue; 0 means 1.
	// Durations set explicitly in a config are not scaled.
	TimeScale float64
	// PushInterval is the time between two events of one stream; 0 means
	// the venue's default (scaled); negative means no automatic pushes
	// (Push sends them by hand).
	PushInterval time.Duration
	// HandshakeLimit and HandshakeWindow: at most HandshakeLimit accepted
	// handshakes per client IP in any window of HandshakeWindow; past it
	// the handshake is answered 429. 0 means the venue's default; a
	// negative limit means none.
	HandshakeLimit  int
	HandshakeWindow time.Duration
	// MaxConns is the number of open connections per client IP past which
	// a handshake is answered 429; 0 means the venue's default, negative
	// means none.
	MaxConns int
	// AnnounceGrace is the time between Announce's notice and the close
	// of the announced connections; 0 means the venue's default (scaled).
	AnnounceGrace time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// settings are a venue's resolved rules, filled by its constructor.
type settings struct {
	path      string        // the WebSocket path a client dials (WSURL)
	symbols   []string      // default listed symbols
	push      time.Duration // default push interval (unscaled)
	hsLimit   int           // default handshakes per window (0 = none)
	hsWindow  time.Duration // default window (unscaled)
	hsBurst   int           // >0: the default is a token bucket (hsLimit per hsWindow, this burst)
	hsBan     time.Duration // >0: past the rate, the IP is refused for this long (unscaled)
	maxConns  int           // default open connections per IP (0 = none)
	grace     time.Duration // default announce grace (unscaled)
	gzip      bool          // every server frame is a gzip binary message
	readLimit int64         // client frame size limit; 0 = 1 MiB

	// Generic keepalive rules, already resolved (scaled) by the venue;
	// zero disables each.
	wsPing         time.Duration        // server WebSocket ping period
	wsPongDeadline time.Duration        // close when a ping is not answered within this
	idle           time.Duration        // close when the server sent nothing for this long
	idleCode       websocket.StatusCode // close code of the idle rule; 0 = 1001
	idleReason     string               // its reason; "" = "idle"
	subscribeBy    time.Duration        // close when nothing is subscribed this long after open
	maxAge         time.Duration        // close this long after open
	inLimit        int                  // client messages per inWindow; past it close
	inWindow       time.Duration
	inControl      bool                 // control frames (ping, pong) count toward inLimit
	inCode         websocket.StatusCode // close code past inLimit; 0 = 1008
	inReason       string               // close reason past inLimit; "" = "too many messages"

	announceCode websocket.StatusCode // close code after Announce; 0 = 1001
}

// venue is what a venue file supplies to the base.
type venue interface {
	// handshake checks the request before the upgrade. A non-zero status
	// refuses it with that HTTP status and body. state becomes conn.state.
	handshake(r *http.Request) (state any, status int, body string)
	// opened runs once the WebSocket is up, on the connection's read
	// goroutine, before the first client frame is read.
	opened(c *conn)
	// message handles one client frame (control frames excluded).
	message(c *conn, typ websocket.MessageType, p []byte)
	// render returns event e of stream k as the frame to send on c, or nil
	// to send nothing. snapshot is true for the copy of the last event
	// sent to a new subscriber by Server.subscribe(…, snapshot=true).
	render(c *conn, k streamKey, e *event, snapshot bool) []byte
	// announce sends the venue's shutdown notice on c.
	announce(c *conn)
}

// plainHTTP is implemented by a venue that also answers plain HTTP
// requests beside its WebSocket (KuCoin's POST /api/v1/bullet-public). It
// is asked first for every request that is not a WebSocket upgrade and
// reports whether it answered; such requests are not handshakes.
type plainHTTP interface {
	servePlain(w http.ResponseWriter, r *http.Request) bool
}

// Server is the base of every venue fake: an http.Handler that upgrades to
// a WebSocket, enforces the handshake rate and connection cap, runs the
// streams and the generic keepalive rules, and delegates the protocol to
// its venue. All methods are safe for concurrent use.
type Server struct {
	name  string
	v     venue
	set   settings
	log   *slog.Logger
	scale float64

	listed   map[string]bool
	push     time.Duration
	limiter  limiter
	maxConns int
	grace    time.Duration
	ban      time.Duration
	banned   map[string]time.Time // IP → end of its ban; guarded by mu

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	accepting sync.RWMutex // held (read) from upgrade to registration

	mu      sync.Mutex
	closed  bool
	conns   map[*conn]struct{}
	perIP   map[string]int
	streams map[streamKey]*stream
	prices  map[string]float64
	open    int
	maxOpen int

	logMu    sync.Mutex
	received []string
	closes   []string

	handshakes atomic.Uint64
	refused    atomic.Uint64
	pushing    atomic.Bool
}

// maxLog bounds Received and Closes.
const maxLog = 10000

// newServer builds the base for venue v.
func newServer(name string, v venue, cfg Config, set settings) *Server {
	s := &Server{name: name, v: v, set: set, log: cfg.Logger, scale: cfg.TimeScale}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.scale <= 0 {
		s.scale = 1
	}
	syms := cfg.Symbols
	if len(syms) == 0 {
		syms = set.symbols
	}
	s.listed = make(map[string]bool, len(syms))
	for _, sym := range syms {
		s.listed[sym] = true
	}
	s.push = s.dur(cfg.PushInterval, set.push)
	limit, window := cfg.HandshakeLimit, s.dur(cfg.HandshakeWindow, set.hsWindow)
	explicit := limit != 0 || cfg.HandshakeWindow != 0
	if limit == 0 {
		limit = set.hsLimit
	}
	switch {
	case limit <= 0 || window <= 0:
	case set.hsBurst > 0 && !explicit:
		s.limiter = newBucketLimiter(limit, window, set.hsBurst)
	default:
		s.limiter = newWindowLimiter(limit, window)
	}
	if set.hsBan > 0 {
		s.ban = s.dur(0, set.hsBan)
		s.banned = map[string]time.Time{}
	}
	s.maxConns = cfg.MaxConns
	if s.maxConns == 0 {
		s.maxConns = set.maxConns
	}
	s.grace = s.dur(cfg.AnnounceGrace, set.grace)
	if s.set.readLimit == 0 {
		s.set.readLimit = 1 << 20
	}
	if s.set.idleCode == 0 {
		s.set.idleCode = websocket.StatusGoingAway
	}
	if s.set.idleReason == "" {
		s.set.idleReason = "idle"
	}
	if s.set.inCode == 0 {
		s.set.inCode = websocket.StatusPolicyViolation
	}
	if s.set.inReason == "" {
		s.set.inReason = "too many messages"
	}
	if s.set.announceCode == 0 {
		s.set.announceCode = websocket.StatusGoingAway
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.conns = map[*conn]struct{}{}
	s.perIP = map[string]int{}
	s.streams = map[streamKey]*stream{}
	s.prices = map[string]float64{}
	s.pushing.Store(true)
	return s
}

// scaler returns the function a venue constructor resolves its own
// durations with: a duration set in the config as is, else the venue's
// default multiplied by the TimeScale (0 meaning 1).
func scaler(timeScale float64) func(set, def time.Duration) time.Duration {
	if timeScale <= 0 {
		timeScale = 1
	}
	return func(set, def time.Duration) time.Duration {
		if set != 0 {
			return set
		}
		return time.Duration(float64(def) * timeScale)
	}
}

// dur returns set when non-zero, else def scaled by the config's TimeScale.
func (s *Server) dur(set, def time.Duration) time.Duration {
	if set != 0 {
		return set
	}
	return time.Duration(float64(def) * s.scale)
}

// Scaled returns d multiplied by the fake's TimeScale: what a test uses to
// derive its own waits from a venue's documented duration.
func (s *Server) Scaled(d time.Duration) time.Duration { return s.dur(0, d) }

// WSURL returns the WebSocket URL of the fake served at base (an
// httptest server's http:// URL): ws:// plus the venue's path, e.g.
// ws://127.0.0.1:PORT/ws/v5/public for OKX.
func (s *Server) WSURL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http") + s.set.path
}

// Listed reports whether the venue lists symbol (in the venue's spelling).
func (s *Server) Listed(symbol string) bool { return s.listed[symbol] }

// ServeHTTP runs one handshake and, if it is admitted, the connection
// until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p, ok := s.v.(plainHTTP); ok && !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		if p.servePlain(w, r) {
			return
		}
	}
	s.handshakes.Add(1)
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	// The cap and the rate are both answered 429 before the upgrade, as
	// the venues do (EXCHANGES.md §0.1, §7.6, §8.6).
	if s.maxConns > 0 && s.perIP[ip] >= s.maxConns {
		s.mu.Unlock()
		s.refuse(w, r, "connection cap")
		return
	}
	now := time.Now()
	if until, ok := s.banned[ip]; ok && now.Before(until) {
		s.mu.Unlock()
		s.refuse(w, r, "banned")
		return
	}
	if s.limiter != nil && !s.limiter.allow(ip, now) {
		if s.ban > 0 {
			s.banned[ip] = now.Add(s.ban)
		}
		s.mu.Unlock()
		s.refuse(w, r, "handshake rate")
		return
	}
	// Reserve the slot before the upgrade so that concurrent handshakes
	// cannot pass the cap together.
	s.perIP[ip]++
	s.open++
	s.maxOpen = max(s.maxOpen, s.open)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	release := func() {
		s.mu.Lock()
		s.perIP[ip]--
		if s.perIP[ip] == 0 {
			delete(s.perIP, ip)
		}
		s.open--
		s.mu.Unlock()
	}
	state, status, body := s.v.handshake(r)
	if status != 0 {
		release()
		http.Error(w, body, status)
		return
	}
	var c *conn // set before the first Read, so before the callbacks run
	opts := &websocket.AcceptOptions{
		InsecureSkipVerify: true,
		// permessage-deflate is off: the relay dials without it and the
		// payload compression that matters (HTX gzip) is in the frames
		// (EXCHANGES.md §0.4).
		CompressionMode: websocket.CompressionDisabled,
		OnPingReceived: func(context.Context, []byte) bool {
			c.control()
			return true
		},
		OnPongReceived: func(context.Context, []byte) { c.control() },
	}
	// A handshake in progress is registered before Announce looks: a
	// client that saw its 101 is announced to.
	s.accepting.RLock()
	ws, err := websocket.Accept(w, r, opts)
	if err != nil {
		s.accepting.RUnlock()
		release()
		return
	}
	c = newConn(s, ws, ip, state)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.accepting.RUnlock()
		release()
		ws.CloseNow()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.accepting.RUnlock()
	defer release()
	c.run()
}

// refuse answers a handshake 429 and counts it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, why string) {
	s.refused.Add(1)
	s.log.Debug("handshake refused", "venue", s.name, "why", why, "remote", r.RemoteAddr)
	http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
}

// Handshakes returns how many handshakes were attempted (admitted or not).
func (s *Server) Handshakes() uint64 { return s.handshakes.Load() }

// Refused429 returns how many handshakes were answered 429 (rate or cap).
func (s *Server) Refused429() uint64 { return s.refused.Load() }

// Open returns the number of connections open now (including handshakes
// in progress).
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// MaxOpen returns the highest number of connections open at once.
func (s *Server) MaxOpen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen
}

// Received returns the text of every client frame seen so far (binary
// frames as their bytes), oldest first, at most the first 10 000.
func (s *Server) Received() []string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return slices.Clone(s.received)
}

// Closes returns, for every connection the fake itself closed, the reason
// it gave (e.g. "pong timeout"), oldest first, at most the first 10 000.
// Connections closed by the client are not listed.
func (s *Server) Closes() []string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return slices.Clone(s.closes)
}

// logRecord appends v to one of the bounded logs. It takes only logMu, so
// it may be called with s.mu held.
func (s *Server) logRecord(list *[]string, v string) {
	s.logMu.Lock()
	if len(*list) < maxLog {
		*list = append(*list, v)
	}
	s.logMu.Unlock()
}

// Announce sends the venue's shutdown notice on every open connection,
// then closes those connections after the venue's grace (scaled). New
// connections are accepted meanwhile, as a venue's other servers would.
func (s *Server) Announce() {
	s.accepting.Lock()
	conns := s.snapshot()
	s.accepting.Unlock()
	for _, c := range conns {
		s.v.announce(c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(s.grace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		for _, c := range conns {
			c.close(s.set.announceCode, "announced shutdown")
		}
	}()
}

func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Close ends every connection and waits for every goroutine of the fake.
// It is idempotent. Call it before the httptest server's Close.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	for _, c := range s.snapshot() {
		c.ws.CloseNow()
	}
	s.wg.Wait()
}
