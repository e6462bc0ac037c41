package capture

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wsrelay/wsrelay/relay"
)

// recKind is what one record of a session turned out to be.
type recKind uint8

const (
	recJSON    recKind = iota + 1 // a JSON document
	recText                       // text that is not JSON ("pong")
	recOpaque                     // binary that is not (compressed) JSON
	recControl                    // the framing's own packet (Engine.IO ping, SignalR handshake…)
)

// record is one input of the frame rules (for the json framing, one
// message; Socket.IO and SignalR messages may hold control packets or
// several records).
type record struct {
	sess, frame int // where it came from
	sent        bool
	at          time.Time
	kind        recKind
	doc         []byte // compact JSON (recJSON) or the text (recText)
	nodes       []node // doc walked (recJSON)
	input       []byte // what the relay's frame rules get
	binary      bool   // input is a binary message
	compressed  string // gzip, zlib or deflate
	control     string // recControl: which packet ("engine.io ping", "signalr handshake"…)
	role        role
	answer      []byte // rolePing: what the client sent back
	ns          string // Socket.IO: the packet's namespace ("/" for the main one)
}

// role is what the inference decided a record is.
type role uint8

const (
	roleNone      role = iota
	roleQuote          // published
	rolePing           // a server ping that the client answered
	rolePong           // the client's answer to a server ping
	roleAppPing        // the client's own keepalive
	roleHeartbeat      // a server frame that only proves the connection alive
	roleSubscribe      // a subscribe frame (or a frame of the subscribe list)
	roleUnsubscribe
	roleAuth // a login frame left out
)

// decoder turns messages into records for one framing.
type decoder struct {
	framing string
	rules   *relay.FrameRules // no accept: decompresses and compacts
	limit   int64
}

func newDecoder(framing string, limit int64) (*decoder, error) {
	rules, err := (&relay.UpstreamConfig{ReadLimit: limit}).FrameRules()
	if err != nil {
		return nil, err
	}
	return &decoder{framing: framing, rules: rules, limit: limit}, nil
}

// decode appends the records of frame fi of session si.
func (d *decoder) decode(dst []record, si, fi int, f Frame) []record {
	base := record{sess: si, frame: fi, sent: f.Sent, at: f.At}
	if f.Error != "" {
		return dst
	}
	switch d.framing {
	case relay.FramingSocketIO:
		return d.socketIO(dst, base, f)
	case relay.FramingSignalR:
		return d.signalR(dst, base, f)
	}
	return append(dst, d.payload(base, f.Binary, f.Data))
}

// payload classifies one record's bytes as the json framing sees them,
// through the relay's own decompression.
func (d *decoder) payload(r record, binary bool, p []byte) record {
	r.input, r.binary = p, binary
	if binary && !looksJSON(p) {
		r.compressed = compression(p)
	}
	res, err := d.rules.Handle(binary, p)
	if err == nil && res.Kind == relay.FrameQuote {
		r.kind, r.doc = recJSON, bytes.Clone(res.Data)
		r.nodes = walkJSON(r.doc)
		if binary && r.compressed == "" && !looksJSON(p) {
			r.compressed = "deflate"
		}
		return r
	}
	if binary {
		r.kind, r.compressed = recOpaque, ""
		return r
	}
	r.kind, r.doc = recText, p
	return r
}

// compression names the container of a compressed payload by its magic
// bytes (raw deflate has none).
func compression(p []byte) string {
	switch {
	case len(p) >= 2 && p[0] == 0x1f && p[1] == 0x8b:
		return "gzip"
	case len(p) >= 2 && p[0]&0x0f == 8 && (uint16(p[0])<<8|uint16(p[1]))%31 == 0:
		return "zlib"
	}
	return ""
}

func looksJSON(p []byte) bool {
	p = bytes.TrimLeft(p, " \t\r\n")
	return len(p) > 0 && (p[0] == '{' || p[0] == '[')
}

// describeOpaque says what a binary payload that is not JSON looks like:
// its first bytes, and whether something inflates inside it.
func describeOpaque(p []byte, limit int64) string {
	head := p[:min(len(p), 4)]
	var hex strings.Builder
	for i, b := range head {
		if i > 0 {
			hex.WriteByte(' ')
		}
		fmt.Fprintf(&hex, "%02x", b)
	}
	desc := "first bytes " + hex.String()
	switch c := compression(p); {
	case c != "":
		if out, err := inflate(p, limit); err == nil {
			desc += ", " + c + " that inflates to " + textOrBinary(out)
		} else {
			desc += ", " + c + " that does not inflate"
		}
	default:
		for off := 1; off <= 8 && off < len(p)-2; off++ {
			if compression(p[off:]) == "zlib" {
				if _, err := inflate(p[off:], limit); err == nil {
					desc += fmt.Sprintf(", a %d-byte header and then zlib (a custom packet format)", off)
					return desc
				}
			}
		}
		if out, err := inflate(p, limit); err == nil && len(out) > 0 && utf8.Valid(out) {
			desc += ", raw deflate that inflates to " + textOrBinary(out)
		} else if looksProtobuf(p) {
			desc += ", possibly protobuf"
		}
	}
	return desc
}

func textOrBinary(p []byte) string {
	if json.Valid(p) {
		return "JSON"
	}
	if utf8.Valid(p) {
		return "text that is not JSON"
	}
	return "binary that is not JSON"
}

// looksProtobuf: a first byte that is a plausible field key (field 1–15,
// wire type 0, 1, 2 or 5).
func looksProtobuf(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	wt, field := p[0]&7, p[0]>>3
	return field >= 1 && field <= 15 && (wt == 0 || wt == 1 || wt == 2 || wt == 5)
}

// inflate decompresses p (gzip, zlib or raw deflate), at most limit bytes.
func inflate(p []byte, limit int64) ([]byte, error) {
	var rd io.Reader
	switch compression(p) {
	case "gzip":
		gz, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, err
		}
		rd = gz
	case "zlib":
		zl, err := zlib.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, err
		}
		rd = zl
	default:
		rd = flate.NewReader(bytes.NewReader(p))
	}
	out, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("inflates past %d bytes", limit)
	}
	return out, nil
}

// socketIO splits an Engine.IO v4 packet (docs/engine.io-protocol/v4-current.md:
// 0 open, 1 close, 2 ping, 3 pong, 4 message, 5 upgrade, 6 noop) carrying
// a Socket.IO v5 packet (docs/socket.io-protocol/v5-current.md:
// <type>[<attachments>-][<namespace>,][<ack id>][JSON], 0 CONNECT,
// 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT,
// 6 BINARY_ACK). Events become their JSON array.
func (d *decoder) socketIO(dst []record, r record, f Frame) []record {
	p := f.Data
	r.input, r.binary = p, f.Binary
	if f.Binary || len(p) == 0 {
		r.kind, r.control = recControl, "socket.io binary attachment"
		return append(dst, r)
	}
	r.kind = recControl
	switch p[0] {
	case '0':
		r.control = "engine.io open"
		r.doc = p[1:]
	case '1':
		r.control = "engine.io close"
	case '2':
		r.control = "engine.io ping"
	case '3':
		r.control = "engine.io pong"
	case '5':
		r.control = "engine.io upgrade"
	case '6':
		r.control = "engine.io noop"
	case '4':
		typ, ns, body := splitSocketIO(p[1:])
		r.ns = ns
		if r.ns == "" {
			r.ns = "/"
		}
		switch typ {
		case '0':
			r.control = "socket.io connect" + nsSuffix(ns)
			r.doc = body
		case '1':
			r.control = "socket.io disconnect" + nsSuffix(ns)
		case '4':
			r.control = "socket.io connect_error" + nsSuffix(ns)
			r.doc = body
		case '5', '6':
			r.control = "socket.io binary event"
		case '2', '3':
			if json.Valid(body) {
				r.kind, r.doc, r.control = recJSON, compact(body), ""
				r.nodes = walkJSON(r.doc)
				r.input = r.doc
				if typ == '3' {
					r.control = "socket.io ack"
				}
			} else {
				r.control = "socket.io packet without JSON"
			}
		default:
			r.control = "socket.io unknown packet"
		}
	default:
		r.control = "engine.io unknown packet"
	}
	return append(dst, r)
}

// splitSocketIO returns a Socket.IO packet's type, namespace ("" for the
// main one) and JSON body (after any attachment count and ack id).
func splitSocketIO(p []byte) (byte, string, []byte) {
	if len(p) == 0 {
		return 0, "", nil
	}
	typ, rest := p[0], p[1:]
	if i := bytes.IndexByte(rest, '-'); i > 0 && allDigits(rest[:i]) {
		rest = rest[i+1:]
	}
	ns := ""
	if len(rest) > 0 && rest[0] == '/' {
		if i := bytes.IndexByte(rest, ','); i >= 0 {
			ns, rest = string(rest[:i]), rest[i+1:]
		} else {
			ns, rest = string(rest), nil
		}
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	return typ, ns, rest[i:]
}

func nsSuffix(ns string) string {
	if ns == "" {
		return ""
	}
	return " " + ns
}

func allDigits(p []byte) bool {
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(p) > 0
}

// recordSeparator ends every record of SignalR's JSON hub protocol
// (aspnetcore src/SignalR/docs/specs/HubProtocol.md).
const recordSeparator = 0x1e

// signalR splits a message into its records: the handshake request
// {"protocol":"json","version":1} and response {} are control packets,
// as are pings (type 6) and close (type 7); invocations (1), stream items
// (2) and completions (3) are records for the frame rules.
func (d *decoder) signalR(dst []record, r record, f Frame) []record {
	if f.Binary {
		r.kind, r.control, r.input, r.binary = recControl, "signalr binary (MessagePack)", f.Data, true
		return append(dst, r)
	}
	for _, part := range bytes.Split(f.Data, []byte{recordSeparator}) {
		if len(bytes.TrimSpace(part)) == 0 {
			continue
		}
		rec := r
		rec.input = part
		if !json.Valid(part) {
			rec.kind, rec.doc = recText, part
			dst = append(dst, rec)
			continue
		}
		doc := compact(part)
		nodes := walkJSON(doc)
		t, hasType := find(nodes, "/type")
		switch {
		case !hasType:
			if _, ok := find(nodes, "/protocol"); ok {
				rec.kind, rec.control, rec.doc = recControl, "signalr handshake", doc
			} else {
				rec.kind, rec.control, rec.doc = recControl, "signalr handshake response", doc
			}
		case t.str == "6":
			rec.kind, rec.control = recControl, "signalr ping"
		case t.str == "7":
			rec.kind, rec.control, rec.doc = recControl, "signalr close", doc
		default:
			rec.kind, rec.doc, rec.nodes, rec.input = recJSON, doc, nodes, doc
		}
		dst = append(dst, rec)
	}
	return dst
}

// detectFraming names the protocol a socket speaks over WebSocket from
// its URL and first frames: the signatures are fixed by each protocol's
// documentation, so the detection is reliable. unsupported is not empty
// for protocols the relay cannot speak.
func detectFraming(ss []Session) (framing, why, unsupported string) {
	for _, s := range ss {
		u, _ := url.Parse(s.URL)
		if u != nil {
			q := u.Query()
			eio := q.Get("EIO")
			if strings.Contains(u.Path, "/socket.io") || eio != "" {
				if eio == "3" || eio == "2" {
					return "", "", "Socket.IO 2 (Engine.IO v" + eio + " in the URL): the relay speaks Socket.IO v4 over Engine.IO v4 only"
				}
				return relay.FramingSocketIO, "the URL is a Socket.IO endpoint (" + u.Path + ", EIO=" + eio + ")", ""
			}
		}
	}
	for _, s := range ss {
		for i, f := range s.Frames {
			if i > 20 {
				break
			}
			if f.Binary || f.Error != "" {
				continue
			}
			p := f.Data
			switch {
			case f.Sent && bytes.HasPrefix(p, []byte(`{"protocol":`)) && bytes.HasSuffix(p, []byte{recordSeparator}):
				if bytes.Contains(p, []byte(`"messagepack"`)) {
					return "", "", "SignalR with the MessagePack hub protocol (binary): the relay speaks SignalR's JSON protocol only"
				}
				return relay.FramingSignalR, "the page sent SignalR's handshake record {\"protocol\":\"json\"…}", ""
			case !f.Sent && bytes.HasPrefix(p, []byte(`0{"sid":`)):
				if eioV3ClientPings(s) {
					return "", "", "Socket.IO 2 (Engine.IO v3: the client sends the pings): the relay speaks Socket.IO v4 over Engine.IO v4 only"
				}
				return relay.FramingSocketIO, "the server opened with an Engine.IO open packet 0{\"sid\":…}", ""
			case bytes.HasPrefix(p, []byte("CONNECT\n")), bytes.HasPrefix(p, []byte("STOMP\n")), bytes.HasPrefix(p, []byte("CONNECTED\n")),
				bytes.HasPrefix(p, []byte("SUBSCRIBE\n")), bytes.HasPrefix(p, []byte("MESSAGE\n")):
				return "", "", "STOMP frames (CONNECT/SUBSCRIBE/MESSAGE): the relay has no STOMP framing"
			case !f.Sent && i < 3 && (string(p) == "o" || bytes.HasPrefix(p, []byte(`a["`))):
				return "", "", "SockJS frames (o, h, a[…]): the relay has no SockJS framing"
			case !f.Sent && bytes.HasSuffix(p, []byte{recordSeparator}) && bytes.HasPrefix(p, []byte("{")):
				return relay.FramingSignalR, "the server's records end with SignalR's 0x1E separator", ""
			}
		}
	}
	return relay.FramingJSON, "", ""
}

// eioV3ClientPings reports an Engine.IO v3 session: the client sends "2".
func eioV3ClientPings(s Session) bool {
	for _, f := range s.Frames {
		if f.Sent && string(f.Data) == "2" {
			return true
		}
	}
	return false
}

// base64Gzip reports text frames that carry base64 of a gzip stream (some
// venues compress and then base64-encode into text frames).
func base64Gzip(p []byte) bool {
	if len(p) < 16 || len(p)%4 != 0 || json.Valid(p) {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(string(p))
	return err == nil && compression(b) != ""
}
