package relay

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// Framings name the protocols an upstream may speak over its WebSocket.
const (
	FramingJSON     = "json"     // every message is one JSON document (after decompress)
	FramingSocketIO = "socketio" // Socket.IO v4 over Engine.IO v4
	FramingSignalR  = "signalr"  // ASP.NET Core SignalR, JSON hub protocol
)

// A framing is the protocol between the WebSocket and the frame rules: it
// may negotiate before the dial, run a handshake after it, split messages
// into records, wrap what is sent and keep the session alive. One framing
// value serves one connection at a time (it may keep per-session state).
type framing interface {
	// dialURL returns the URL to dial for target; SignalR negotiates here.
	dialURL(ctx context.Context, client *http.Client, header http.Header, target string) (string, error)
	// open runs the protocol's handshake on a new connection, before
	// anything is subscribed (Socket.IO: open packet and namespace
	// connect; SignalR: handshake record).
	open(ctx context.Context, ws *websocket.Conn) (openInfo, error)
	// decode splits one WebSocket message into records, each one input of
	// the frame rules, appended to dst. reply is sent back at once
	// (Socket.IO "3" for "2"); closed is not nil when the peer ended the
	// session in-band (Socket.IO "41" or "44", a SignalR close record):
	// its text becomes the symbol's last error.
	decode(dst []record, typ websocket.MessageType, p []byte) (recs []record, reply []byte, closed error)
	// encode turns one rendered template into the message to send
	// (Socket.IO: "42" + payload; SignalR: payload + 0x1E).
	encode(dst, payload []byte) []byte
	// keepalive is the message sent every ping interval (SignalR's ping
	// record), nil for none.
	keepalive() []byte
}

// openInfo is what a framing's handshake learnt about the session.
type openInfo struct {
	// readIdle: no message for this long means the session is dead
	// (0: no limit beyond the WebSocket pings).
	readIdle time.Duration
	// pingInterval is the protocol's own keepalive period; 0 keeps the
	// upstream's ping_interval.
	pingInterval time.Duration
}

// record is one input of the frame rules.
type record struct {
	binary bool
	data   []byte
}

// newFraming returns the framing named by an upstream's config.
func newFraming(u *UpstreamConfig) (framing, error) {
	switch u.Framing {
	case "", FramingJSON:
		return jsonFraming{}, nil
	case FramingSocketIO:
		return newSocketIOFraming(socketIOOptions{Namespace: u.Namespace, Auth: u.NamespaceAuth})
	case FramingSignalR:
		// The client pings at least every 15 s (the hub's default
		// keep-alive), sooner when ping_interval says so.
		ka := signalRKeepAlive
		if u.PingInterval > 0 {
			ka = min(ka, u.PingInterval)
		}
		return newSignalRFraming(signalROptions{KeepAlive: ka}), nil
	}
	return nil, fmt.Errorf("%q is not json, socketio or signalr", u.Framing)
}

// checkFraming validates the keys that belong to the upstream's framing.
func (u *UpstreamConfig) checkFraming() error {
	fr, err := newFraming(u)
	if err != nil {
		if u.Framing != "" && u.Framing != FramingJSON && u.Framing != FramingSocketIO && u.Framing != FramingSignalR {
			return fieldErr("framing", err)
		}
		return fieldErr("namespace", err)
	}
	if u.Framing != FramingSocketIO && (u.Namespace != "" || u.NamespaceAuth != "") {
		return fieldErrf("namespace", "only with framing: socketio")
	}
	if tc, ok := fr.(templateChecker); ok {
		for key, ts := range map[string][]string{"subscribe": u.Subscribe, "unsubscribe": u.Unsubscribe, "app_ping": {u.AppPing}} {
			for i, t := range ts {
				if t == "" {
					continue
				}
				if err := tc.checkTemplate(t); err != nil {
					return fieldErr(idx(key, i, len(ts)), err)
				}
			}
		}
	}
	return nil
}

// jsonFraming is the default: one message is one record, sent as it is.
type jsonFraming struct{}

func (jsonFraming) dialURL(_ context.Context, _ *http.Client, _ http.Header, target string) (string, error) {
	return target, nil
}

func (jsonFraming) open(context.Context, *websocket.Conn) (openInfo, error) { return openInfo{}, nil }

func (jsonFraming) decode(dst []record, typ websocket.MessageType, p []byte) ([]record, []byte, error) {
	return append(dst, record{binary: typ == websocket.MessageBinary, data: p}), nil, nil
}

func (jsonFraming) encode(dst, payload []byte) []byte { return append(dst, payload...) }

func (jsonFraming) keepalive() []byte { return nil }
