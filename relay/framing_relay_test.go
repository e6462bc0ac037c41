package relay

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/faultnet"
	"github.com/wsrelay/wsrelay/relay/sitefake"
)

// recSink is the broker, recording the site's seq of every quote it is
// given, so a test can prove none was lost between two quotes.
type recSink struct {
	*Broker
	mu   sync.Mutex
	seqs map[string][]int64
}

func (s *recSink) Publish(symbol string, data []byte, at time.Time) (*Event, error) {
	var q struct {
		Seq int64 `json:"seq"`
	}
	_ = json.Unmarshal(data, &q)
	s.mu.Lock()
	s.seqs[symbol] = append(s.seqs[symbol], q.Seq)
	s.mu.Unlock()
	return s.Broker.Publish(symbol, data, at)
}

// seqsOf returns the seqs of symbol's quotes and how many times one did not
// follow the previous one.
func (s *recSink) seqsOf(symbol string) (n int, gaps int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seqs := s.seqs[symbol]
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			gaps++
		}
	}
	return len(seqs), gaps
}

// startRelay runs a relay with one upstream into a recording broker.
func startRelay(t *testing.T, uc UpstreamConfig) (*Relay, *recSink) {
	t.Helper()
	if uc.Name == "" {
		uc.Name = "site"
	}
	if uc.Backoff == (Backoff{}) {
		uc.Backoff = Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	b, err := NewBroker(BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recSink{Broker: b, seqs: map[string][]int64{}}
	r, err := New(Config{Upstreams: []UpstreamConfig{uc}}, sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		b.Close()
	})
	return r, sink
}

func statusOf(t *testing.T, r *Relay, sym string) SymbolStatus {
	t.Helper()
	st, ok := r.Status(sym)
	if !ok {
		t.Fatalf("no status for %s", sym)
	}
	return st
}

// waitLastError waits until sym's last_error contains want.
func waitLastError(t *testing.T, r *Relay, sym, want string) SymbolStatus {
	t.Helper()
	var st SymbolStatus
	eventually(t, sym+"'s last_error to say "+want, func() bool {
		st = statusOf(t, r, sym)
		return strings.Contains(st.LastError, want)
	})
	return st
}

// socketIOUpstream is the YAML of the report, as a config:
//
//	framing: socketio
//	url: ws://HOST/socket.io/?EIO=4&transport=websocket
//	subscribe: '["subscribe","{symbol}"]'
//	accept: {match: /0, equals: quote}
//	extract: /1
//	reject: {match: /0, equals: subscribe_error, message: /1/message}
func socketIOUpstream(url string, syms ...string) UpstreamConfig {
	uc := UpstreamConfig{
		URL: url, Framing: FramingSocketIO,
		Subscribe: []string{`["subscribe","{symbol}"]`},
		Accept:    []Matcher{Equals("/0", "quote")},
		Extract:   "/1",
		Reject:    []RejectRule{{Matcher: Equals("/0", "subscribe_error"), Message: "/1/message"}},
	}
	for _, s := range syms {
		uc.Symbols = append(uc.Symbols, Symbol{Name: s})
	}
	return uc
}

// TestRelaySocketIO: a relay upstream with framing socketio against the real
// Socket.IO server: both symbols go live and their quotes reach the broker
// without a gap for fifteen ping periods, every ping answered (the server
// counts the pongs and drops nobody), no reconnect; the unknown symbol is
// rejected with the site's message; the site's DISCONNECT becomes the
// symbol's last_error and the relay reconnects.
func TestRelaySocketIO(t *testing.T) {
	site := startSocketIOSite(t, sitefake.SocketIOConfig{Interval: 10 * time.Millisecond, PingInterval: 100 * time.Millisecond, PingTimeout: 400 * time.Millisecond})
	r, sink := startRelay(t, socketIOUpstream(site.URL, "BTC-USD", "ETH-USD", "NOPE"))

	eventually(t, "both symbols live", func() bool {
		return statusOf(t, r, "BTC-USD").State == StateLive && statusOf(t, r, "ETH-USD").State == StateLive
	})
	st := waitLastError(t, r, "NOPE", "rejected by the venue: unknown symbol NOPE")
	if st.State != StateRejected {
		t.Fatalf("NOPE: %+v", st)
	}
	time.Sleep(1500 * time.Millisecond) // fifteen server pings
	for _, sym := range []string{"BTC-USD", "ETH-USD"} {
		st := statusOf(t, r, sym)
		n, gaps := sink.seqsOf(sym)
		if st.State != StateLive || st.Reconnects != 0 || n < 50 || gaps != 0 {
			t.Fatalf("%s: %d quotes, %d gaps, status %+v", sym, n, gaps, st)
		}
	}
	ss, err := site.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ss.Pongs < 20 || ss.Disconnects["ping timeout"] != 0 {
		t.Fatalf("site stats %+v: want ≥20 pongs (two connections, 15 periods) and no ping timeout", ss)
	}

	if n, err := site.Disconnect(t.Context(), "/"); err != nil || n < 2 {
		t.Fatalf("disconnect: %d, %v", n, err)
	}
	waitLastError(t, r, "BTC-USD", `socketio: the server disconnected the namespace "/" (DISCONNECT packet)`)
	eventually(t, "BTC-USD back", func() bool {
		st := statusOf(t, r, "BTC-USD")
		return st.State == StateLive && st.Reconnects >= 1
	})
}

// TestRelaySocketIOIdle: a connection that goes silent (a dead NAT: no
// byte, no FIN) is given up after the server's pingInterval + pingTimeout,
// long before the relay's own ping would notice, and the relay reconnects
// to quotes again.
func TestRelaySocketIOIdle(t *testing.T) {
	site := startSocketIOSite(t, sitefake.SocketIOConfig{Interval: 10 * time.Millisecond, PingInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	proxy, err := faultnet.NewProxy(strings.TrimPrefix(siteBase(site), "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	uc := socketIOUpstream("ws://"+proxy.Addr()+"/socket.io/", "BTC-USD")
	uc.PingInterval, uc.PingTimeout = time.Minute, 10*time.Second
	r, _ := startRelay(t, uc)
	eventually(t, "BTC-USD live", func() bool { return statusOf(t, r, "BTC-USD").State == StateLive })
	proxy.Silence()
	waitLastError(t, r, "BTC-USD", "no message for 300ms")
	proxy.Resume()
	eventually(t, "BTC-USD back", func() bool {
		st := statusOf(t, r, "BTC-USD")
		return st.State == StateLive && st.Reconnects >= 1
	})
}

// TestRelaySocketIORefused: a server that refuses the namespace connect
// (CONNECT_ERROR) leaves its words in last_error, and the symbol never
// goes live.
func TestRelaySocketIORefused(t *testing.T) {
	site := startSocketIOSite(t, sitefake.SocketIOConfig{TokenEverywhere: true})
	r, _ := startRelay(t, socketIOUpstream(site.URL, "BTC-USD"))
	st := waitLastError(t, r, "BTC-USD", `socketio handshake: the server refused the namespace "/": not authorized`)
	if st.State == StateLive || st.EverLive {
		t.Fatalf("status %+v", st)
	}
}

// signalRUpstream is the YAML of the report, as a config:
//
//	framing: signalr
//	url: ws://HOST/hub
//	subscribe: '{"type":1,"invocationId":"{id}","target":"Subscribe","arguments":["{symbol}"]}'
//	accept: {match: /target, equals: quote}
//	extract: /arguments/0
//	reject: {match: /error, message: /error, id: /invocationId}
func signalRUpstream(url string, syms ...string) UpstreamConfig {
	uc := UpstreamConfig{
		URL: url, Framing: FramingSignalR,
		Subscribe: []string{`{"type":1,"invocationId":"{id}","target":"Subscribe","arguments":["{symbol}"]}`},
		Accept:    []Matcher{Equals("/target", "quote")},
		Extract:   "/arguments/0",
		Reject:    []RejectRule{{Matcher: Exists("/error"), Message: "/error", ID: "/invocationId"}},
	}
	for _, s := range syms {
		uc.Symbols = append(uc.Symbols, Symbol{Name: s})
	}
	return uc
}

// TestRelaySignalR: a relay upstream with framing signalr against the hub
// fake: negotiate, handshake, the invocation template; quotes (three
// records per message) reach the broker from seq 1 without a gap while the
// hub pings every 50 ms for 1.5 s without a reconnect; the unknown symbol's
// completion error rejects it; the hub's close message with an error
// becomes last_error and the relay reconnects; none of the relay's
// messages broke the hub's strict rules.
func TestRelaySignalR(t *testing.T) {
	hub, srv := startHub(t, sitefake.SignalRConfig{Interval: 10 * time.Millisecond, QuotesPerTick: 3, KeepAliveInterval: 50 * time.Millisecond})
	r, sink := startRelay(t, signalRUpstream(wsURL(srv, "/hub"), "BTC-USD", "NOPE"))

	eventually(t, "BTC-USD live", func() bool { return statusOf(t, r, "BTC-USD").State == StateLive })
	st := waitLastError(t, r, "NOPE", "rejected by the venue: An unexpected error occurred invoking 'Subscribe' on the server. HubException: unknown symbol NOPE")
	if st.State != StateRejected {
		t.Fatalf("NOPE: %+v", st)
	}
	time.Sleep(1500 * time.Millisecond)
	n, gaps := sink.seqsOf("BTC-USD")
	st = statusOf(t, r, "BTC-USD")
	if st.State != StateLive || st.Reconnects != 0 || n < 100 || gaps != 0 {
		t.Fatalf("BTC-USD: %d quotes, %d gaps, status %+v", n, gaps, st)
	}
	sink.mu.Lock()
	first := sink.seqs["BTC-USD"][0]
	sink.mu.Unlock()
	if first != 1 {
		t.Fatalf("first quote has seq %d, want 1", first)
	}

	hub.CloseAll("going down for maintenance")
	waitLastError(t, r, "BTC-USD", "signalr: the server closed the connection: going down for maintenance")
	eventually(t, "BTC-USD back", func() bool {
		st := statusOf(t, r, "BTC-USD")
		return st.State == StateLive && st.Reconnects >= 1
	})
	if hs := hub.Stats(); hs.ProtocolErrors != 0 || hs.ClientTimeouts != 0 {
		t.Fatalf("hub stats %+v", hs)
	}
}

// TestRelaySignalRRefused: a negotiate error and a refused handshake each
// end up, in the server's words, as last_error.
func TestRelaySignalRRefused(t *testing.T) {
	_, nsrv := startHub(t, sitefake.SignalRConfig{NegotiateError: "This connection is not allowed."})
	_, hsrv := startHub(t, sitefake.SignalRConfig{HandshakeError: "The protocol 'json' is disabled here."})
	r1, _ := startRelay(t, signalRUpstream(wsURL(nsrv, "/hub"), "BTC-USD"))
	r2, _ := startRelay(t, signalRUpstream(wsURL(hsrv, "/hub"), "BTC-USD"))
	waitLastError(t, r1, "BTC-USD", "signalr: negotiate refused: This connection is not allowed.")
	waitLastError(t, r2, "BTC-USD", "signalr handshake: refused: The protocol 'json' is disabled here.")
}
