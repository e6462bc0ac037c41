package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Socket.IO v5 over Engine.IO v4, WebSocket transport only. Sources, cited
// below by name:
//   - EIO: socket.io docs/engine.io-protocol/v4-current.md
//   - SIO: socket.io docs/socket.io-protocol/v5-current.md
//   - client: socket.io-client (the reference client), where the documents
//     leave a case open.

// socketIOOpenLimit bounds the packets read while waiting for the
// namespace's CONNECT answer.
const socketIOOpenLimit = 64

// socketIOOptions configure a Socket.IO framing; zero values are defaults.
type socketIOOptions struct {
	// Namespace to connect to (SIO "Connection to a namespace"); default
	// "/", the main namespace. Proposed upstream key: namespace.
	Namespace string
	// Auth is the CONNECT packet's payload, a JSON object (SIO: "the
	// CONNECT packet now can contain a payload", e.g. {"token":"123"});
	// empty for none.
	Auth string
}

// socketIOFraming is framing: socketio. The record handed to the frame
// rules is an event's array (["name", data…]) or an ACK's argument array;
// pointers apply to it (/0 the event name, /1 the first argument).
type socketIOFraming struct {
	namespace string
	connect   []byte // "40" or "40/ns," plus the auth payload
	event     []byte // "42" or "42/ns,"

	// Per session, reset by open.
	attachments int   // binary messages still to skip after a BINARY_EVENT/BINARY_ACK header
	skip        error // why the last decode dropped a message, see skipped
}

func newSocketIOFraming(o socketIOOptions) (*socketIOFraming, error) {
	ns := o.Namespace
	if ns == "" {
		ns = "/"
	}
	// SIO Format: the namespace is written up to the ",": a comma inside it
	// could not be read back.
	if !strings.HasPrefix(ns, "/") || strings.ContainsAny(ns, ",\x00") {
		return nil, fmt.Errorf("socketio: namespace %q must start with / and hold no comma", ns)
	}
	if o.Auth != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(o.Auth), &obj); err != nil {
			return nil, fmt.Errorf("socketio: auth must be a JSON object: %w", err)
		}
	}
	f := &socketIOFraming{namespace: ns}
	nsPart := ""
	if ns != "/" { // SIO Format: "the namespace is only included if it is different from the main namespace"
		nsPart = ns + ","
	}
	f.connect = []byte("40" + nsPart + o.Auth)
	f.event = []byte("42" + nsPart)
	return f, nil
}

// dialURL makes target the Engine.IO WebSocket URL: ws(s) scheme,
// EIO=4 and transport=websocket (EIO "WebSocket": both mandatory), no sid
// (a captured session's id is refused by the server: "Session ID unknown"),
// and the default /socket.io/ path when the URL has none (the client's
// default; the server matches the path with its trailing slash).
func (f *socketIOFraming) dialURL(_ context.Context, _ *http.Client, _ http.Header, target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("socketio: url: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("socketio: url scheme %q is not ws, wss, http or https", u.Scheme)
	}
	switch {
	case u.Path == "" || u.Path == "/":
		u.Path = "/socket.io/"
	case strings.HasSuffix(u.Path, "/socket.io"):
		u.Path += "/"
	}
	q := u.Query()
	if v := q.Get("EIO"); v != "" && v != "4" {
		return "", fmt.Errorf("socketio: EIO=%s is not supported: only Engine.IO v4 (Socket.IO v3 and later servers, EIO=4) is", v)
	}
	q.Set("EIO", "4")
	q.Set("transport", "websocket")
	q.Del("sid")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// eioOpen is the open packet's payload (EIO "Handshake").
type eioOpen struct {
	SID          string `json:"sid"`
	PingInterval int64  `json:"pingInterval"`
	PingTimeout  int64  `json:"pingTimeout"`
	MaxPayload   int64  `json:"maxPayload"`
}

// open reads the open packet, connects to the namespace and waits for the
// server's answer.
func (f *socketIOFraming) open(ctx context.Context, ws *websocket.Conn) (openInfo, error) {
	f.attachments, f.skip = 0, nil
	typ, p, err := ws.Read(ctx)
	if err != nil {
		return openInfo{}, fmt.Errorf("waiting for the open packet: %w", err)
	}
	if typ != websocket.MessageText || len(p) == 0 || p[0] != '0' {
		return openInfo{}, fmt.Errorf("expected the Engine.IO open packet 0{…}, got %s", quoteMsg(typ, p))
	}
	var op eioOpen
	if err := json.Unmarshal(p[1:], &op); err != nil {
		return openInfo{}, fmt.Errorf("open packet: %w", err)
	}
	if op.SID == "" {
		return openInfo{}, errors.New("open packet has no sid")
	}
	const maxMS = int64(24 * time.Hour / time.Millisecond)
	if op.PingInterval < 0 || op.PingTimeout < 0 || op.PingInterval > maxMS || op.PingTimeout > maxMS {
		return openInfo{}, fmt.Errorf("open packet has pingInterval %d, pingTimeout %d (ms): out of range", op.PingInterval, op.PingTimeout)
	}
	// EIO Heartbeat: "if the client does not receive a ping packet within
	// pingInterval + pingTimeout, then it SHOULD consider that the
	// connection is closed." Without both values there is no such limit.
	var info openInfo
	if op.PingInterval > 0 && op.PingTimeout > 0 {
		info.readIdle = time.Duration(op.PingInterval+op.PingTimeout) * time.Millisecond
	}

	// SIO "Connection to a namespace": the client MUST send CONNECT first.
	if err := ws.Write(ctx, websocket.MessageText, f.connect); err != nil {
		return openInfo{}, fmt.Errorf("namespace connect: %w", err)
	}
	for range socketIOOpenLimit {
		typ, p, err := ws.Read(ctx)
		if err != nil {
			return openInfo{}, fmt.Errorf("waiting for the namespace %q to accept the connection: %w", f.namespace, err)
		}
		// No event reaches a socket before its CONNECT is answered (SIO), so
		// records here would be another namespace's: dropped.
		_, reply, closed := f.packet(nil, typ, p)
		if reply != nil {
			if err := ws.Write(ctx, websocket.MessageText, reply); err != nil {
				return openInfo{}, fmt.Errorf("pong: %w", err)
			}
		}
		if closed != nil {
			return openInfo{}, closed
		}
		if typ == websocket.MessageText && len(p) >= 2 && p[0] == '4' && p[1] == '0' {
			if pk, err := parseSIOPacket(p[1:]); err == nil && f.ours(pk.nsp) {
				f.skip = nil
				return info, nil
			}
		}
	}
	return openInfo{}, fmt.Errorf("no answer to the namespace %q connect within %d packets", f.namespace, socketIOOpenLimit)
}

// ours reports whether a packet's namespace is the one connected to.
func (f *socketIOFraming) ours(nsp []byte) bool {
	if len(nsp) == 0 {
		return f.namespace == "/"
	}
	return string(nsp) == f.namespace
}

// decode reads one Engine.IO packet (EIO "WebSocket": each packet is its
// own WebSocket message).
func (f *socketIOFraming) decode(dst []record, typ websocket.MessageType, p []byte) ([]record, []byte, error) {
	dst, reply, closed := f.packet(dst, typ, p)
	if closed != nil {
		closed = fmt.Errorf("socketio: %w", closed)
	}
	return dst, reply, closed
}

// packet is decode with errors that do not name the framing.
func (f *socketIOFraming) packet(dst []record, typ websocket.MessageType, p []byte) ([]record, []byte, error) {
	f.skip = nil
	if typ == websocket.MessageBinary {
		// SIO BINARY_EVENT: the attachments follow their header, each in its
		// own binary message.
		if f.attachments > 0 {
			f.attachments--
			return dst, nil, nil
		}
		// client: socket.io-parser throws "got binary data when not
		// reconstructing a packet" and the manager closes ("parse error").
		return dst, nil, errors.New("binary message outside a binary event (protocol error)")
	}
	if len(p) == 0 {
		return dst, nil, errors.New("empty Engine.IO packet (protocol error)")
	}
	switch p[0] {
	case '0', '3', '5', '6': // open (already done), pong, upgrade, noop: nothing to do
		return dst, nil, nil
	case '1': // EIO close
		return dst, nil, errors.New("the server closed the session (Engine.IO close packet)")
	case '2': // EIO Heartbeat: answer ping with pong, echoing the payload
		reply := make([]byte, len(p))
		reply[0] = '3'
		copy(reply[1:], p[1:])
		return dst, reply, nil
	case '4':
		return f.message(dst, p[1:])
	}
	// client: engine.io-parser decodes an unknown type as an error packet,
	// on which the socket closes.
	return dst, nil, fmt.Errorf("unknown Engine.IO packet type %q (protocol error)", p[0])
}

// message handles one Socket.IO packet.
func (f *socketIOFraming) message(dst []record, p []byte) ([]record, []byte, error) {
	pk, err := parseSIOPacket(p)
	if err != nil {
		return dst, nil, err
	}
	if pk.typ == sioBinaryEvent || pk.typ == sioBinaryAck {
		f.attachments = pk.attachments // skipped whatever their namespace
	}
	if !f.ours(pk.nsp) {
		return dst, nil, nil // another namespace: not this session's
	}
	switch pk.typ {
	case sioConnect: // answered already
	case sioDisconnect:
		return dst, nil, fmt.Errorf("the server disconnected the namespace %q (DISCONNECT packet)", f.namespace)
	case sioConnectError:
		return dst, nil, fmt.Errorf("the server refused the namespace %q: %s", f.namespace, connectErrorText(pk.payload))
	case sioEvent, sioAck:
		// SIO "Sending and receiving data": an EVENT's payload "MUST be a
		// non-empty array. If that's not the case, then the receiver MUST
		// close the connection"; an ACK's "MUST be an array (possibly
		// empty)".
		if !isJSONArray(pk.payload, pk.typ == sioEvent) {
			return dst, nil, fmt.Errorf("%s payload is not a JSON array: %s (protocol error)", sioTypeName(pk.typ), quoteMsg(websocket.MessageText, pk.payload))
		}
		return append(dst, record{data: pk.payload}), nil, nil
	case sioBinaryEvent, sioBinaryAck:
		f.skip = fmt.Errorf("socketio: %s %s with %d binary attachment(s) is not supported; ignored", sioTypeName(pk.typ), eventName(pk.payload), pk.attachments)
	}
	return dst, nil, nil
}

// skipped returns why the last decode dropped a message (a binary event),
// nil if it dropped nothing; see skipReporter.
func (f *socketIOFraming) skipped() error { return f.skip }

// encode makes a rendered template (the event array, optionally preceded
// by an ack id) an EVENT packet: "42" + namespace + payload.
func (f *socketIOFraming) encode(dst, payload []byte) []byte {
	dst = append(dst, f.event...)
	return append(dst, payload...)
}

// keepalive: none. EIO v4 reversed the heartbeat: the server pings, the
// client answers (decode's reply).
func (f *socketIOFraming) keepalive() []byte { return nil }

// Socket.IO packet types (SIO "Exchange protocol").
const (
	sioConnect      = 0
	sioDisconnect   = 1
	sioEvent        = 2
	sioAck          = 3
	sioConnectError = 4
	sioBinaryEvent  = 5
	sioBinaryAck    = 6
)

func sioTypeName(t int) string {
	return [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}[t]
}

// sioPacket is a parsed Socket.IO packet; its slices alias the input.
type sioPacket struct {
	typ         int
	attachments int
	nsp         []byte // without the trailing comma; empty for "/"
	ackID       int64  // -1: none
	payload     []byte // JSON, possibly empty
}

// parseSIOPacket reads SIO "Format":
//
//	<packet type>[<# of binary attachments>-][<namespace>,][<acknowledgment id>][JSON-stringified payload without binary]
func parseSIOPacket(p []byte) (sioPacket, error) {
	pk := sioPacket{ackID: -1}
	if len(p) == 0 || p[0] < '0' || p[0] > '6' {
		return pk, fmt.Errorf("unknown Socket.IO packet type in %s (protocol error)", quoteMsg(websocket.MessageText, p))
	}
	pk.typ = int(p[0] - '0')
	i := 1
	if pk.typ == sioBinaryEvent || pk.typ == sioBinaryAck {
		j := i
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
		if j == i || j-i > 9 || j >= len(p) || p[j] != '-' {
			return pk, fmt.Errorf("%s without a valid attachment count (protocol error)", sioTypeName(pk.typ))
		}
		pk.attachments, _ = strconv.Atoi(string(p[i:j]))
		i = j + 1
	}
	if i < len(p) && p[i] == '/' {
		j := bytes.IndexByte(p[i:], ',')
		if j < 0 { // the namespace runs to the end ("1/admin,"'s comma is optional to the parser)
			pk.nsp, i = p[i:], len(p)
		} else {
			pk.nsp, i = p[i:i+j], i+j+1
		}
		if len(pk.nsp) == 1 { // "/" spelled out
			pk.nsp = nil
		}
	}
	if i < len(p) && p[i] >= '0' && p[i] <= '9' {
		j := i
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
		id, err := strconv.ParseInt(string(p[i:j]), 10, 64)
		if err != nil || j-i > 15 {
			return pk, fmt.Errorf("ack id %q out of range (protocol error)", p[i:j])
		}
		pk.ackID, i = id, j
	}
	pk.payload = p[i:]
	return pk, nil
}

// isJSONArray reports whether p starts as a JSON array (non-empty if
// nonEmpty). Whether the rest is valid JSON is the frame rules' concern:
// they ignore what is not.
func isJSONArray(p []byte, nonEmpty bool) bool {
	p = bytes.TrimLeft(p, " \t\r\n")
	if len(p) == 0 || p[0] != '[' {
		return false
	}
	if !nonEmpty {
		return true
	}
	rest := bytes.TrimLeft(p[1:], " \t\r\n")
	return len(rest) > 0 && rest[0] != ']'
}

// connectErrorText is the message of a CONNECT_ERROR payload: an object
// with "message" (and "data" when the server set it) since v5, a string
// before.
func connectErrorText(payload []byte) string {
	var obj struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(payload, &obj); err == nil && obj.Message != "" {
		if len(obj.Data) > 0 && string(obj.Data) != "null" {
			return truncate(obj.Message, 256) + " (data: " + truncate(string(obj.Data), 256) + ")"
		}
		return truncate(obj.Message, 256)
	}
	var s string
	if err := json.Unmarshal(payload, &s); err == nil && s != "" {
		return truncate(s, 256)
	}
	if len(payload) == 0 {
		return "no reason given"
	}
	return truncate(string(payload), 256)
}

// eventName is the quoted name of an event payload, or "" if unreadable.
func eventName(payload []byte) string {
	var arr []json.RawMessage
	if json.Unmarshal(payload, &arr) != nil || len(arr) == 0 {
		return ""
	}
	var name string
	if json.Unmarshal(arr[0], &name) != nil {
		return ""
	}
	return strconv.Quote(truncate(name, 64))
}

// quoteMsg shows a message in an error: text quoted and cut, binary as its
// length.
func quoteMsg(typ websocket.MessageType, p []byte) string {
	if typ == websocket.MessageBinary {
		return fmt.Sprintf("a binary message of %d bytes", len(p))
	}
	return strconv.Quote(truncate(string(p), 128))
}
