package sitefake

// The rules below come from, and cite by name:
//   - Hub: aspnetcore src/SignalR/docs/specs/HubProtocol.md
//   - Transport: aspnetcore src/SignalR/docs/specs/TransportProtocols.md
//   - server: ASP.NET Core's hub server (HubConnectionContext,
//     DefaultHubDispatcher), for its error texts and defaults where the
//     documents leave them open.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// SignalRConfig configures a SignalRHub. A zero field means its default.
type SignalRConfig struct {
	// Path is the hub's path; default "/hub". Negotiate is Path+"/negotiate".
	Path string
	// Symbols the hub knows; default BTC-USD, ETH-USD, SOL-USD.
	Symbols []string
	// Interval between two quote ticks of a subscribed symbol; default 50 ms.
	Interval time.Duration
	// QuotesPerTick quote invocations go out per tick and symbol, all in one
	// WebSocket message (as the server's pipe coalesces them); default 1.
	QuotesPerTick int
	// KeepAliveInterval: the hub pings when it has sent nothing for this
	// long; default 15 s (server KeepAliveInterval).
	KeepAliveInterval time.Duration
	// ClientTimeout: the hub drops a client it has heard nothing from for
	// this long; default 30 s (server ClientTimeoutInterval).
	ClientTimeout time.Duration
	// HandshakeTimeout; default 15 s (server HandshakeTimeout).
	HandshakeTimeout time.Duration
	// MaxMessageSize caps one hub message from the client; default 32 KiB
	// (server MaximumReceiveMessageSize).
	MaxMessageSize int
	// NegotiateError makes negotiate answer {"error": NegotiateError}.
	NegotiateError string
	// HandshakeError makes every handshake fail with this error.
	HandshakeError string
	// RedirectURL makes negotiate answer a redirect {"url", "accessToken"}.
	RedirectURL, RedirectToken string
	// RequireToken makes negotiate and the WebSocket demand the bearer token
	// (Authorization: Bearer T, or access_token=T as browsers send it).
	RequireToken string
	// Logger; default discards.
	Logger *slog.Logger
}

// SignalRStats is what a hub counted.
type SignalRStats struct {
	Negotiations   int64 // negotiate requests answered 200
	Connections    int64 // handshakes completed
	Open           int   // connections open now
	PingsReceived  int64 // Ping messages from clients
	Subscribes     int64
	Rejected       int64 // Subscribe calls for unknown symbols
	ProtocolErrors int64
	ClientTimeouts int64
}

// SignalRHub is a strict fake of an ASP.NET Core SignalR hub speaking the
// JSON hub protocol over WebSockets: negotiate, handshake, records ended by
// 0x1E, pings both ways, close messages. Its hub methods are
// Subscribe(symbol) and Unsubscribe(symbol); it invokes "quote" on the
// client with {symbol, seq, price, ts}, seq counting that connection's
// quotes of the symbol from 1. It is an http.Handler; all methods are safe
// for concurrent use; Close is idempotent and waits for every connection.
type SignalRHub struct {
	cfg   SignalRConfig
	log   *slog.Logger
	known map[string]bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	tokens    map[string]bool // negotiated ids → used
	conns     map[*hubConn]struct{}
	negHeader http.Header

	negotiations, connections, pings, subscribes, rejected, protoErrs, timeouts atomic.Int64
}

// NewSignalRHub returns a hub; serve it with httptest.NewServer.
func NewSignalRHub(cfg SignalRConfig) *SignalRHub {
	if cfg.Path == "" {
		cfg.Path = "/hub"
	}
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = []string{"BTC-USD", "ETH-USD", "SOL-USD"}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 50 * time.Millisecond
	}
	if cfg.QuotesPerTick <= 0 {
		cfg.QuotesPerTick = 1
	}
	if cfg.KeepAliveInterval <= 0 {
		cfg.KeepAliveInterval = 15 * time.Second
	}
	if cfg.ClientTimeout <= 0 {
		cfg.ClientTimeout = 30 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 15 * time.Second
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 32 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &SignalRHub{cfg: cfg, log: cfg.Logger, known: map[string]bool{}, tokens: map[string]bool{}, conns: map[*hubConn]struct{}{}}
	for _, s := range cfg.Symbols {
		h.known[s] = true
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// ServeHTTP serves negotiate and the WebSocket endpoint, and at / a page
// that watches quotes through the official browser client (/signalr.js,
// from testdata/node's node_modules; 404 without them).
func (h *SignalRHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case h.cfg.Path + "/negotiate":
		h.negotiate(w, r)
	case h.cfg.Path:
		h.connect(w, r)
	case "/":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, strings.Replace(signalRPage, "HUB_PATH", h.cfg.Path, 1))
	case "/signalr.js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, filepath.Join(NodeDir(), "node_modules", "@microsoft", "signalr", "dist", "browser", "signalr.min.js"))
	default:
		http.NotFound(w, r)
	}
}

// signalRPage subscribes to ?symbols= (default BTC-USD) as a site's page
// would: negotiate, then WebSockets. window.quotes counts the quotes.
const signalRPage = `<!doctype html>
<meta charset="utf-8"><title>sitefake quotes</title>
<pre id="log"></pre>
<script src="/signalr.js"></script>
<script>
const params = new URLSearchParams(location.search);
const symbols = (params.get("symbols") || "BTC-USD").split(",");
const conn = new signalR.HubConnectionBuilder().withUrl("HUB_PATH").build();
window.quotes = 0;
conn.on("quote", (q) => {
  window.quotes++;
  document.getElementById("log").textContent = q.symbol + " " + q.price + " #" + q.seq;
});
conn.start().then(() => Promise.all(symbols.map((s) => conn.invoke("Subscribe", s))));
</script>
`

// authorized checks RequireToken.
func (h *SignalRHub) authorized(r *http.Request) bool {
	if h.cfg.RequireToken == "" {
		return true
	}
	return r.Header.Get("Authorization") == "Bearer "+h.cfg.RequireToken ||
		r.URL.Query().Get("access_token") == h.cfg.RequireToken
}

// negotiate answers POST {path}/negotiate (Transport "POST
// [endpoint-base]/negotiate request").
func (h *SignalRHub) negotiate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "negotiate is POST", http.StatusMethodNotAllowed)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.mu.Lock()
	h.negHeader = r.Header.Clone()
	h.mu.Unlock()
	// Transport: "If the query string is omitted, the server treats the
	// version as zero"; a version above the server's gets its largest (1).
	version := 0
	if v := r.URL.Query().Get("negotiateVersion"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, "invalid negotiateVersion", http.StatusBadRequest)
			return
		}
		version = min(n, 1)
	}
	resp := map[string]any{}
	switch {
	case h.cfg.NegotiateError != "":
		resp["error"] = h.cfg.NegotiateError
	case h.cfg.RedirectURL != "":
		resp["url"] = h.cfg.RedirectURL
		if h.cfg.RedirectToken != "" {
			resp["accessToken"] = h.cfg.RedirectToken
		}
	default:
		// Transport "Version 1": connectionToken is the id of the
		// WebSocket request; "Version 0": connectionId is.
		id := randomID()
		resp["connectionId"] = id
		resp["negotiateVersion"] = version
		key := id
		if version >= 1 {
			key = randomID()
			resp["connectionToken"] = key
		}
		resp["availableTransports"] = []map[string]any{{"transport": "WebSockets", "transferFormats": []string{"Text", "Binary"}}}
		h.mu.Lock()
		if len(h.tokens) >= 10000 { // bounded: forget unused ones
			clear(h.tokens)
		}
		h.tokens[key] = false
		h.mu.Unlock()
	}
	h.negotiations.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// NegotiateHeader returns the headers of the last negotiate request.
func (h *SignalRHub) NegotiateHeader() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.negHeader.Clone()
}

// connect serves the WebSocket endpoint (Transport "WebSockets").
func (h *SignalRHub) connect(w http.ResponseWriter, r *http.Request) {
	id, hasID := r.URL.Query()["id"]
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		// The long polling and SSE endpoints need an id; this hub offers
		// WebSockets only.
		if !hasID {
			http.Error(w, "Connection ID required", http.StatusBadRequest)
			return
		}
		http.Error(w, "only the WebSockets transport is enabled", http.StatusBadRequest)
		return
	}
	if !h.authorized(r) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if hasID {
		h.mu.Lock()
		used, ok := h.tokens[id[0]]
		if ok && !used {
			h.tokens[id[0]] = true
		}
		h.mu.Unlock()
		switch {
		case !ok: // "If the parameter is specified but there is no connection with the specified ID value, a 404 Not Found"
			http.Error(w, "No Connection with that ID", http.StatusNotFound)
			return
		case used: // "Establishing a second WebSocket connection … will fail with a 409 Conflict"
			http.Error(w, "Connection already has a WebSocket", http.StatusConflict)
			return
		}
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(int64(h.cfg.MaxMessageSize) + 1<<10)
	c := &hubConn{h: h, ws: ws, subs: map[string]*hubSub{}}
	c.lastRecv.Store(time.Now().UnixNano())
	c.lastSend.Store(time.Now().UnixNano())
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		ws.CloseNow()
		return
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	c.run()
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// CloseAll sends every open connection a Close message with errText (Hub
// "Close Message Encoding"; none when empty) and closes it. It returns
// how many connections it closed.
func (h *SignalRHub) CloseAll(errText string) int {
	h.mu.Lock()
	conns := make([]*hubConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.closeWith(errText)
	}
	return len(conns)
}

// Stats returns the hub's counters.
func (h *SignalRHub) Stats() SignalRStats {
	h.mu.Lock()
	open := len(h.conns)
	h.mu.Unlock()
	return SignalRStats{
		Negotiations: h.negotiations.Load(), Connections: h.connections.Load(), Open: open,
		PingsReceived: h.pings.Load(), Subscribes: h.subscribes.Load(), Rejected: h.rejected.Load(),
		ProtocolErrors: h.protoErrs.Load(), ClientTimeouts: h.timeouts.Load(),
	}
}

// Close ends every connection and waits for them (a connection already in
// a close handshake with a peer that does not answer takes up to 10 s).
func (h *SignalRHub) Close() {
	h.mu.Lock()
	h.cancel()
	for c := range h.conns {
		c.ws.CloseNow()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
