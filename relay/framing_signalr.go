package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// ASP.NET Core SignalR, JSON hub protocol, WebSockets transport. Sources,
// cited below by name:
//   - Hub: aspnetcore src/SignalR/docs/specs/HubProtocol.md
//   - Transport: aspnetcore src/SignalR/docs/specs/TransportProtocols.md
//   - client: the official JavaScript client (@microsoft/signalr), where
//     the documents leave a case open.

const (
	// signalRRS ends every JSON message (Hub "JSON Encoding").
	signalRRS = 0x1e
	// Defaults of the client (client: DEFAULT_PING_INTERVAL_IN_MS,
	// DEFAULT_TIMEOUT_IN_MS); the server's KeepAliveInterval is 15 s and its
	// ClientTimeoutInterval 30 s.
	signalRKeepAlive     = 15 * time.Second
	signalRServerTimeout = 30 * time.Second
	// signalRMaxRedirects bounds negotiate redirects.
	signalRMaxRedirects = 10
	// signalRMaxNegotiate bounds a negotiate response body.
	signalRMaxNegotiate = 1 << 16
)

var (
	// signalRHandshake asks for the JSON protocol, version 1 (Hub: "the
	// value must always be 1").
	signalRHandshake = []byte(`{"protocol":"json","version":1}` + "\x1e")
	// signalRPing is the Ping message (Hub "Ping Message Encoding").
	signalRPing = []byte(`{"type":6}` + "\x1e")
)

// Hub message types (Hub "JSON Encoding").
const (
	signalRInvocation = 1
	signalRStreamItem = 2
	signalRCompletion = 3
	signalRPingType   = 6
	signalRClose      = 7
	signalRAck        = 8
	signalRSequence   = 9
)

// signalROptions configure a SignalR framing; zero values are defaults.
type signalROptions struct {
	KeepAlive     time.Duration // the client's ping period; default 15 s
	ServerTimeout time.Duration // silence after which the server is gone; default 30 s
}

// signalRFraming is framing: signalr. Each hub message is one record;
// pointers apply to it (/type, /target, /arguments/0, /error).
type signalRFraming struct {
	keepAliveEvery time.Duration
	serverTimeout  time.Duration

	// Per session, reset by open: messages that came with the handshake
	// response, handed out before the next message's.
	pending []byte
}

func newSignalRFraming(o signalROptions) *signalRFraming {
	if o.KeepAlive <= 0 {
		o.KeepAlive = signalRKeepAlive
	}
	if o.ServerTimeout <= 0 {
		o.ServerTimeout = signalRServerTimeout
	}
	return &signalRFraming{keepAliveEvery: o.KeepAlive, serverTimeout: o.ServerTimeout}
}

// negotiateResponse holds every form of a negotiate answer (Transport
// "POST [endpoint-base]/negotiate request").
type negotiateResponse struct {
	ConnectionToken     string `json:"connectionToken"`
	ConnectionID        string `json:"connectionId"`
	NegotiateVersion    int    `json:"negotiateVersion"`
	AvailableTransports []struct {
		Transport       string   `json:"transport"`
		TransferFormats []string `json:"transferFormats"`
	} `json:"availableTransports"`
	URL                  string          `json:"url"`
	AccessToken          string          `json:"accessToken"`
	Error                *string         `json:"error"`
	ProtocolVersion      json.RawMessage `json:"ProtocolVersion"`
	UseStatefulReconnect bool            `json:"useStatefulReconnect"`
}

// dialURL negotiates (following redirects) and returns the hub URL with the
// connection token as id.
func (f *signalRFraming) dialURL(ctx context.Context, client *http.Client, header http.Header, target string) (string, error) {
	if client == nil {
		client = &http.Client{}
	}
	hub, err := signalRHubURL(target)
	if err != nil {
		return "", err
	}
	hdr := header.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	accessToken := ""
	for range signalRMaxRedirects {
		nr, err := f.negotiate(ctx, client, hdr, hub)
		if err != nil {
			return "", err
		}
		if nr.URL == "" {
			token := nr.ConnectionToken
			if nr.NegotiateVersion < 1 { // Transport "Version 0": the id is the connectionId
				token = nr.ConnectionID
			}
			return signalRConnectURL(hub, token, accessToken), nil
		}
		// Transport "All versions": a redirect to another URL, optionally
		// with a bearer token for it (client: it negotiates again there).
		next, err := signalRHubURL(nr.URL)
		if err != nil {
			return "", fmt.Errorf("signalr: negotiate redirect: %w", err)
		}
		hub = next
		if nr.AccessToken != "" {
			accessToken = nr.AccessToken
			hdr.Set("Authorization", "Bearer "+accessToken)
		}
	}
	return "", fmt.Errorf("signalr: negotiate: more than %d redirects", signalRMaxRedirects)
}

// negotiate runs one POST {hub}/negotiate?negotiateVersion=1.
func (f *signalRFraming) negotiate(ctx context.Context, client *http.Client, hdr http.Header, hub *url.URL) (*negotiateResponse, error) {
	nu := *hub
	nu.Scheme = strings.Replace(nu.Scheme, "ws", "http", 1)
	// client _resolveNegotiateUrl: "/negotiate" appended to the path, the
	// query kept, negotiateVersion added if absent.
	nu.Path = strings.TrimSuffix(nu.Path, "/") + "/negotiate"
	nu.RawPath = ""
	q := nu.Query()
	if !q.Has("negotiateVersion") {
		q.Set("negotiateVersion", "1")
	}
	nu.RawQuery = q.Encode()
	shown := RedactURL(nu.String())

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, nu.String(), http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("signalr: negotiate %s: %w", shown, err)
	}
	for k, vs := range hdr {
		if strings.HasPrefix(strings.ToLower(k), "sec-websocket-") {
			continue
		}
		req.Header[k] = vs
	}
	// What the browser client sends with its (empty, text) POST.
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its text repeats the URL, query and all
			err = ue.Err
		}
		return nil, fmt.Errorf("signalr: negotiate %s: %w", shown, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, signalRMaxNegotiate+1))
	if err != nil {
		return nil, fmt.Errorf("signalr: negotiate %s: reading the response: %w", shown, err)
	}
	// client: any status but 200 fails ("Unexpected status code returned
	// from negotiate"); a 404 means no SignalR endpoint there.
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusNotFound {
			hint = " (no SignalR hub at this URL?)"
		}
		return nil, fmt.Errorf("signalr: negotiate %s: HTTP %s%s%s", shown, resp.Status, hint, bodySnippet(body))
	}
	if len(body) > signalRMaxNegotiate {
		return nil, fmt.Errorf("signalr: negotiate %s: response larger than %d bytes", shown, signalRMaxNegotiate)
	}
	var nr negotiateResponse
	if err := json.Unmarshal(body, &nr); err != nil {
		return nil, fmt.Errorf("signalr: negotiate %s: response is not JSON: %w%s", shown, err, bodySnippet(body))
	}
	switch {
	case nr.Error != nil: // Transport: "an error which should stop the connection attempt"
		return nil, fmt.Errorf("signalr: negotiate refused: %s", truncate(*nr.Error, 256))
	case len(nr.ProtocolVersion) > 0:
		return nil, errors.New("signalr: this is a classic ASP.NET SignalR server, not ASP.NET Core SignalR: not supported")
	case nr.URL != "":
		return &nr, nil
	case nr.UseStatefulReconnect:
		// client: "Client didn't negotiate Stateful Reconnect but the server did."
		return nil, errors.New("signalr: negotiate: the server asked for stateful reconnect, which the relay did not request")
	}
	if len(nr.AvailableTransports) > 0 {
		var names []string
		ok := false
		for _, t := range nr.AvailableTransports {
			names = append(names, t.Transport)
			if t.Transport == "WebSockets" {
				for _, tf := range t.TransferFormats {
					ok = ok || tf == "Text"
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("signalr: negotiate: the hub offers no WebSockets transport with Text frames (offers %s)", strings.Join(names, ", "))
		}
	}
	return &nr, nil
}

// signalRHubURL parses a hub URL and drops a captured connection's id.
func signalRHubURL(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("signalr: url: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("signalr: url scheme %q is not ws, wss, http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("signalr: url has no host")
	}
	q := u.Query()
	if q.Has("id") { // Transport: the id of a negotiated connection, valid once
		q.Del("id")
		u.RawQuery = q.Encode()
	}
	return u, nil
}

// signalRConnectURL is the WebSocket URL: the hub with id={connectionToken}
// (Transport "WebSockets") and, after a redirect that gave one, the access
// token as access_token (client: how browsers pass it to a WebSocket).
func signalRConnectURL(hub *url.URL, token, accessToken string) string {
	u := *hub
	q := u.Query()
	if token != "" {
		q.Set("id", token)
	}
	if accessToken != "" {
		q.Set("access_token", accessToken)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// bodySnippet shows the start of an HTTP error body.
func bodySnippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	return ": " + strconv.Quote(truncate(s, 200))
}

// handshakeResponse is Hub "HandshakeResponse"; a type means it is a hub
// message instead (client: "Expected a handshake response from the server.").
type handshakeResponse struct {
	Error *string         `json:"error"`
	Type  json.RawMessage `json:"type"`
}

// open sends the handshake request and reads its response (Hub: "the
// client must send a HandshakeRequest message to the server as its first
// message").
func (f *signalRFraming) open(ctx context.Context, ws *websocket.Conn) (openInfo, error) {
	f.pending = f.pending[:0]
	if err := ws.Write(ctx, websocket.MessageText, signalRHandshake); err != nil {
		return openInfo{}, fmt.Errorf("sending the handshake request: %w", err)
	}
	typ, p, err := ws.Read(ctx)
	if err != nil {
		return openInfo{}, fmt.Errorf("waiting for the handshake response: %w", err)
	}
	if typ != websocket.MessageText {
		return openInfo{}, fmt.Errorf("the handshake response is %s, not text", quoteMsg(typ, p))
	}
	i := bytes.IndexByte(p, signalRRS)
	if i < 0 {
		return openInfo{}, fmt.Errorf("the handshake response %s does not end with 0x1E (incomplete)", quoteMsg(typ, p))
	}
	var hr handshakeResponse
	if err := json.Unmarshal(p[:i], &hr); err != nil {
		return openInfo{}, fmt.Errorf("the handshake response %s: %w", quoteMsg(typ, p[:i]), err)
	}
	if hr.Error != nil {
		return openInfo{}, fmt.Errorf("refused: %s", truncate(*hr.Error, 256))
	}
	if len(hr.Type) > 0 {
		return openInfo{}, fmt.Errorf("expected a handshake response, got a hub message %s", quoteMsg(typ, p[:i]))
	}
	// client parseHandshakeResponse: what follows the response in the same
	// message are ordinary messages.
	f.pending = append(f.pending, p[i+1:]...)
	// Hub "Ping": "If the client detects that the server has stopped
	// pinging, the client will close the connection"; the server pings every
	// 15 s, the client gives up after 30 s.
	return openInfo{readIdle: f.serverTimeout, pingInterval: f.keepAliveEvery}, nil
}

// hubMessage is what decode reads of each record.
type hubMessage struct {
	Type  json.RawMessage `json:"type"`
	Error *string         `json:"error"`
}

// decode splits a message into hub messages: pings, acks and sequence
// messages are swallowed, a close message ends the session, invocations,
// stream items and completions are records.
func (f *signalRFraming) decode(dst []record, typ websocket.MessageType, p []byte) ([]record, []byte, error) {
	if typ == websocket.MessageBinary {
		// client JsonHubProtocol: "Invalid input for JSON hub protocol.
		// Expected a string." (MessagePack is not spoken here.)
		return dst, nil, errors.New("signalr: binary message on the JSON hub protocol (protocol error)")
	}
	dst, closed := f.records(dst, p)
	if closed != nil {
		closed = fmt.Errorf("signalr: %w", closed)
	}
	return dst, nil, closed
}

// records is decode of a text message, with errors that do not name the
// framing.
func (f *signalRFraming) records(dst []record, p []byte) ([]record, error) {
	if len(f.pending) > 0 {
		var closed error
		dst, closed = f.split(dst, f.pending)
		f.pending = f.pending[:0]
		if closed != nil {
			return dst, closed
		}
	}
	return f.split(dst, p)
}

// split appends the records of p, which must end with the separator
// (client TextMessageFormat.parse: otherwise "Message is incomplete.").
func (f *signalRFraming) split(dst []record, p []byte) ([]record, error) {
	if len(p) == 0 {
		return dst, nil
	}
	if p[len(p)-1] != signalRRS {
		return dst, fmt.Errorf("message %s does not end with 0x1E (incomplete record)", quoteMsg(websocket.MessageText, p))
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, signalRRS)
		rec := p[:i]
		p = p[i+1:]
		if len(bytes.TrimSpace(rec)) == 0 {
			continue
		}
		var m hubMessage
		if err := json.Unmarshal(rec, &m); err != nil {
			return dst, fmt.Errorf("hub message %s is not JSON: %w", quoteMsg(websocket.MessageText, rec), err)
		}
		t, err := strconv.Atoi(string(m.Type))
		if err != nil { // client: "Invalid payload." unless type is a number
			return dst, fmt.Errorf("hub message %s has no numeric type (protocol error)", quoteMsg(websocket.MessageText, rec))
		}
		switch t {
		case signalRInvocation, signalRStreamItem, signalRCompletion:
			dst = append(dst, record{data: rec})
		case signalRPingType, signalRAck, signalRSequence:
			// Ping: liveness only ("The receiving endpoint may choose to
			// ignore the message"); Ack and Sequence belong to stateful
			// reconnect, which is not negotiated.
		case signalRClose:
			if m.Error != nil && *m.Error != "" {
				return dst, fmt.Errorf("the server closed the connection: %s", truncate(*m.Error, 256))
			}
			return dst, errors.New("the server closed the connection (close message without error)")
		default:
			// client: "Unknown message type '…' ignored."
		}
	}
	return dst, nil
}

// encode ends a rendered template (a hub message) with the separator,
// unless the template already does.
func (f *signalRFraming) encode(dst, payload []byte) []byte {
	dst = append(dst, payload...)
	if len(payload) == 0 || payload[len(payload)-1] != signalRRS {
		dst = append(dst, signalRRS)
	}
	return dst
}

// keepalive is the Ping message, sent every keepAliveEvery (openInfo).
func (f *signalRFraming) keepalive() []byte { return signalRPing }
