package capture

import (
	"encoding/base64"
	"encoding/json"
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

// The entry as DevTools' Log.ts builds it (field order kept: JSON
// objects are written in Log.ts's key order so that the file reads like a
// Chrome export).
type outLog struct {
	Log struct {
		Version string     `json:"version"`
		Creator outCreator `json:"creator"`
		Pages   []outPage  `json:"pages"`
		Entries []outEntry `json:"entries"`
	} `json:"log"`
}

type outCreator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type outPage struct {
	StartedDateTime string `json:"startedDateTime"`
	ID              string `json:"id"`
	Title           string `json:"title"`
	PageTimings     struct {
		OnContentLoad float64 `json:"onContentLoad"`
		OnLoad        float64 `json:"onLoad"`
	} `json:"pageTimings"`
}

type outEntry struct {
	Initiator    map[string]any `json:"_initiator"`
	Priority     *string        `json:"_priority"`
	ResourceType string         `json:"_resourceType"`
	Messages     []outMessage   `json:"_webSocketMessages"`
	Cache        struct{}       `json:"cache"`
	Pageref      string         `json:"pageref,omitempty"`
	Request      outRequest     `json:"request"`
	Response     outResponse    `json:"response"`
	ServerIP     string         `json:"serverIPAddress"`
	Started      string         `json:"startedDateTime"`
	Time         float64        `json:"time"`
	Timings      outTimings     `json:"timings"`
}

type outMessage struct {
	Type   string  `json:"type"`
	Time   float64 `json:"time"`
	Opcode int     `json:"opcode"`
	Data   string  `json:"data"`
}

type outHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type outRequest struct {
	Method      string      `json:"method"`
	URL         string      `json:"url"`
	HTTPVersion string      `json:"httpVersion"`
	Headers     []outHeader `json:"headers"`
	QueryString []outHeader `json:"queryString"`
	Cookies     []outHeader `json:"cookies"`
	HeadersSize int         `json:"headersSize"`
	BodySize    int         `json:"bodySize"`
}

type outResponse struct {
	Status       int         `json:"status"`
	StatusText   string      `json:"statusText"`
	HTTPVersion  string      `json:"httpVersion"`
	Headers      []outHeader `json:"headers"`
	Cookies      []outHeader `json:"cookies"`
	Content      outContent  `json:"content"`
	RedirectURL  string      `json:"redirectURL"`
	HeadersSize  int         `json:"headersSize"`
	BodySize     int         `json:"bodySize"`
	TransferSize int         `json:"_transferSize"`
	Error        *string     `json:"_error"`
	ViaSW        bool        `json:"_fetchedViaServiceWorker"`
}

type outContent struct {
	Size     int    `json:"size"`
	MimeType string `json:"mimeType"`
}

type outTimings struct {
	Blocked  float64 `json:"blocked"`
	DNS      float64 `json:"dns"`
	SSL      float64 `json:"ssl"`
	Connect  float64 `json:"connect"`
	Send     float64 `json:"send"`
	Wait     float64 `json:"wait"`
	Receive  float64 `json:"receive"`
	Queueing float64 `json:"_blocked_queueing"`
}

// WriteHAR writes sessions as a HAR in Chrome's shape: one websocket entry
// each, frames in _webSocketMessages with the time in seconds, opcode 1
// for text and 2 for binary (base64). ReadHAR reads it back.
func WriteHAR(w io.Writer, sessions []Session, opts WriteOptions) error {
	var l outLog
	l.Log.Version = "1.2"
	l.Log.Creator = outCreator{Name: opts.Creator, Version: opts.Version}
	l.Log.Pages = []outPage{}
	l.Log.Entries = []outEntry{}
	for _, s := range sessions {
		l.Log.Entries = append(l.Log.Entries, entryOf(s, opts.Sanitize))
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(&l)
}

func entryOf(s Session, sanitize bool) outEntry {
	e := outEntry{
		Initiator:    map[string]any{"type": "other"},
		ResourceType: "websocket",
		Messages:     []outMessage{},
		Request: outRequest{Method: "GET", URL: s.URL, HTTPVersion: "HTTP/1.1", Headers: []outHeader{},
			QueryString: []outHeader{}, Cookies: []outHeader{}, HeadersSize: -1},
		Response: outResponse{Status: s.Status, StatusText: statusText(s.Status), HTTPVersion: "HTTP/1.1", Headers: []outHeader{},
			Cookies: []outHeader{}, Content: outContent{MimeType: "x-unknown"}, HeadersSize: -1, BodySize: -1},
		Timings: outTimings{Blocked: -1, DNS: -1, SSL: -1, Connect: -1, Queueing: -1},
	}
	for _, h := range s.Request {
		if sanitize && (strings.EqualFold(h.Name, "cookie") || strings.EqualFold(h.Name, "authorization")) {
			continue
		}
		e.Request.Headers = append(e.Request.Headers, outHeader(h))
	}
	if !sanitize {
		for _, c := range s.Cookies {
			e.Request.Cookies = append(e.Request.Cookies, outHeader(c))
		}
	}
	for _, h := range s.Response {
		if sanitize && strings.EqualFold(h.Name, "set-cookie") {
			continue
		}
		e.Response.Headers = append(e.Response.Headers, outHeader(h))
	}
	if u, err := url.Parse(s.URL); err == nil {
		for _, kv := range strings.Split(u.RawQuery, "&") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			k, _ = url.QueryUnescape(k)
			v, _ = url.QueryUnescape(v)
			e.Request.QueryString = append(e.Request.QueryString, outHeader{Name: k, Value: v})
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
		m := outMessage{Type: "receive", Opcode: 1, Data: string(f.Data)}
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
		e.Messages = append(e.Messages, m)
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
