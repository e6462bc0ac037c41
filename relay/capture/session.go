package capture

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Session is one WebSocket connection as it was captured: the handshake and
// every message in both directions, in the order they were recorded.
type Session struct {
	// Entry is the index of the HAR entry the session came from (0-based),
	// -1 for a live recording.
	Entry int
	// URL is the socket's URL with the scheme mapped to ws:// or wss://
	// (mitmproxy writes http(s)://).
	URL string
	// Status is the handshake's HTTP status (101, or 2xx over HTTP/2); 0
	// when the capture does not say.
	Status int
	// Request and Response are the handshake headers in capture order,
	// without HTTP/2 pseudo-headers.
	Request, Response []Header
	// Cookies are the request cookies the capture lists besides the
	// headers (name and value).
	Cookies []Header
	// Started is when the handshake began (zero when unknown).
	Started time.Time
	// Frames are the messages. NoFrames is true when the capture has no
	// message list at all for this socket (Firefox and Safari HARs, a
	// Playwright HAR saved in attach mode), as opposed to an empty list.
	Frames   []Frame
	NoFrames bool
	// FramesFile names the file holding the frames when the capture keeps
	// them outside the HAR (Playwright's attach mode).
	FramesFile string
	// Dropped counts messages beyond the reader's limits (not kept).
	Dropped int
	// Control counts control frames (close, ping, pong opcodes) some
	// writers record; they are not kept.
	Control int
	// Polled counts the frames in front of Frames that came from
	// Socket.IO's long-polling requests before the upgrade (see Capture.Polling).
	Polled int
}

// Header is one header (or cookie, or query parameter) as name and value.
type Header struct {
	Name, Value string
}

// Frame is one WebSocket message.
type Frame struct {
	// Sent is true for messages the client sent.
	Sent bool
	// At is when the message was recorded; zero when the capture gives no
	// usable time.
	At time.Time
	// Binary is true for binary messages (opcode 2); Data then holds the
	// decoded bytes.
	Binary bool
	Data   []byte
	// Error is the text of an error entry (Chrome's type "error"); such a
	// frame has no data.
	Error string
}

// header returns the first value of name (case-insensitive).
func header(hs []Header, name string) (string, bool) {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// wsURL maps a captured URL to the WebSocket scheme: mitmproxy writes the
// socket's URL as http(s)://, others as ws(s)://. The fragment is dropped.
func wsURL(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return raw, false
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	default:
		return raw, false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), true
}

// canonicalName writes a header name the way HTTP/1 clients do (h2
// captures have lowercase names).
func canonicalName(name string) string { return http.CanonicalHeaderKey(name) }
