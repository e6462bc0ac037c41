package capture

import (
	"encoding/base64"
	"io"
	"net/url"
	"strings"
	"time"
)

// WriteOptions configure WriteHAR.
type WriteOptions struct {
	// Creator names the writer in log.creator ("wsrelay probe").
	Creator, Version string
	// Sanitize drops Cookie and Authorization request headers, request
	// cookies and Set-Cookie, as Chrome's default "Export HAR (sanitized)"
	// does (devtools-frontend Log.ts, options.sanitize).
	Sanitize bool
}

// WriteHAR writes sessions as a HAR in Chrome's shape: one websocket entry
// each, frames in _webSocketMessages with the time in seconds, opcode 1
// for text and 2 for binary (base64). ReadHAR reads it back.
func WriteHAR(w io.Writer, sessions []Session, opts WriteOptions) error {
	var l HARLog
	l.Log.Version = "1.2"
	l.Log.Creator = HARCreator{Name: opts.Creator, Version: opts.Version}
	l.Log.Pages = []HARPage{}
	l.Log.Entries = []HAREntry{}
	for _, s := range sessions {
		l.Log.Entries = append(l.Log.Entries, entryOf(s, opts.Sanitize))
	}
	return l.Encode(w)
}

func entryOf(s Session, sanitize bool) HAREntry {
	msgs := []HARMessage{}
	e := HAREntry{
		Initiator:    map[string]any{"type": "other"},
		ResourceType: "websocket",
		Messages:     &msgs,
		Request: HARRequest{Method: "GET", URL: s.URL, HTTPVersion: "HTTP/1.1", Headers: []HARHeader{},
			QueryString: []HARHeader{}, Cookies: []HARHeader{}, HeadersSize: -1},
		Response: HARResponse{Status: s.Status, StatusText: statusText(s.Status), HTTPVersion: "HTTP/1.1", Headers: []HARHeader{},
			Cookies: []HARHeader{}, Content: HARContent{MimeType: "x-unknown"}, HeadersSize: -1, BodySize: -1},
		Timings: HARTimings{Blocked: -1, DNS: -1, SSL: -1, Connect: -1, Queueing: -1},
	}
	for _, h := range s.Request {
		if sanitize && (strings.EqualFold(h.Name, "cookie") || strings.EqualFold(h.Name, "authorization")) {
			continue
		}
		e.Request.Headers = append(e.Request.Headers, HARHeader(h))
	}
	if !sanitize {
		for _, c := range s.Cookies {
			e.Request.Cookies = append(e.Request.Cookies, HARHeader(c))
		}
	}
	for _, h := range s.Response {
		if sanitize && strings.EqualFold(h.Name, "set-cookie") {
			continue
		}
		e.Response.Headers = append(e.Response.Headers, HARHeader(h))
	}
	if u, err := url.Parse(s.URL); err == nil {
		for _, kv := range strings.Split(u.RawQuery, "&") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			k, _ = url.QueryUnescape(k)
			v, _ = url.QueryUnescape(v)
			e.Request.QueryString = append(e.Request.QueryString, HARHeader{Name: k, Value: v})
		}
	}
	start := s.Started
	if start.IsZero() && len(s.Frames) > 0 {
		start = s.Frames[0].At
	}
	if !start.IsZero() {
		e.Started = start.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	var last time.Time
	for _, f := range s.Frames {
		m := HARMessage{Type: "receive", Opcode: 1, Data: string(f.Data)}
		if f.Sent {
			m.Type = "send"
		}
		switch {
		case f.Error != "":
			m.Type, m.Opcode, m.Data = "error", -1, f.Error
		case f.Binary:
			m.Opcode, m.Data = 2, base64.StdEncoding.EncodeToString(f.Data)
		}
		if !f.At.IsZero() {
			m.Time = float64(f.At.UnixMicro()) / 1e6
			last = f.At
		}
		msgs = append(msgs, m)
	}
	if !last.IsZero() && !start.IsZero() {
		e.Time = float64(last.Sub(start).Microseconds()) / 1e3
		e.Timings.Wait = e.Time
	}
	return e
}

func statusText(code int) string {
	if code == 101 {
		return "Switching Protocols"
	}
	return ""
}
