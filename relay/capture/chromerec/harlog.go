package chromerec

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/network"
)

// The HAR as front_end/models/har/Log.ts (devtools-frontend) builds it:
// struct fields are in Log.ts's key order, and fields Log.ts deletes when
// they do not apply are omitted.

type harLog struct {
	Log struct {
		Version string     `json:"version"`
		Creator harCreator `json:"creator"`
		Pages   []harPage  `json:"pages"`
		Entries []harEntry `json:"entries"`
	} `json:"log"`
}

type harCreator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type harPage struct {
	StartedDateTime string `json:"startedDateTime"`
	ID              string `json:"id"`
	Title           string `json:"title"`
	PageTimings     struct {
		OnContentLoad float64 `json:"onContentLoad"`
		OnLoad        float64 `json:"onLoad"`
	} `json:"pageTimings"`
}

type harHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harMessage struct {
	Type   string  `json:"type"`
	Time   float64 `json:"time"`
	Opcode float64 `json:"opcode"`
	Data   string  `json:"data"`
}

type harEntry struct {
	ConnectionID string             `json:"_connectionId,omitempty"`
	Initiator    *network.Initiator `json:"_initiator"`
	Priority     *string            `json:"_priority"`
	ResourceType string             `json:"_resourceType"`
	Messages     *[]harMessage      `json:"_webSocketMessages,omitempty"`
	Cache        struct{}           `json:"cache"`
	Connection   string             `json:"connection,omitempty"`
	Pageref      string             `json:"pageref,omitempty"`
	Request      harRequest         `json:"request"`
	Response     harResponse        `json:"response"`
	ServerIP     string             `json:"serverIPAddress"`
	Started      string             `json:"startedDateTime"`
	Time         float64            `json:"time"`
	Timings      harTimings         `json:"timings"`
}

type harRequest struct {
	Method      string       `json:"method"`
	URL         string       `json:"url"`
	HTTPVersion string       `json:"httpVersion"`
	Headers     []harHeader  `json:"headers"`
	QueryString []harHeader  `json:"queryString"`
	Cookies     []harHeader  `json:"cookies"`
	HeadersSize int          `json:"headersSize"`
	BodySize    int          `json:"bodySize"`
	PostData    *harPostData `json:"postData,omitempty"`
}

type harPostData struct {
	MimeType string `json:"mimeType"`
	Text     string `json:"text"`
}

type harResponse struct {
	Status       int64       `json:"status"`
	StatusText   string      `json:"statusText"`
	HTTPVersion  string      `json:"httpVersion"`
	Headers      []harHeader `json:"headers"`
	Cookies      []harHeader `json:"cookies"`
	Content      harContent  `json:"content"`
	RedirectURL  string      `json:"redirectURL"`
	HeadersSize  int         `json:"headersSize"`
	BodySize     float64     `json:"bodySize"`
	TransferSize float64     `json:"_transferSize"`
	Error        *string     `json:"_error"`
	ViaSW        bool        `json:"_fetchedViaServiceWorker"`
}

type harContent struct {
	Size        float64  `json:"size"`
	MimeType    string   `json:"mimeType"`
	Compression *float64 `json:"compression,omitempty"`
	Text        *string  `json:"text,omitempty"`
	Encoding    string   `json:"encoding,omitempty"`
}

type harTimings struct {
	Blocked  float64 `json:"blocked"`
	DNS      float64 `json:"dns"`
	SSL      float64 `json:"ssl"`
	Connect  float64 `json:"connect"`
	Send     float64 `json:"send"`
	Wait     float64 `json:"wait"`
	Receive  float64 `json:"receive"`
	Queueing float64 `json:"_blocked_queueing"`
}

// toMilliseconds is Entry.toMilliseconds: -1 stays -1.
func toMilliseconds(t float64) float64 {
	if t == -1 {
		return -1
	}
	return t * 1000
}

// isoTime is Date.toJSON of a time in seconds since the epoch.
func isoTime(sec float64) string {
	return time.UnixMicro(int64(math.Round(sec * 1e6))).UTC().Format("2006-01-02T15:04:05.000Z")
}

// httpVersion is NetworkRequest.requestHttpVersion/responseHttpVersion:
// the version in the first line of the raw headers, else the protocol.
func httpVersion(headersText, protocol string, request bool) string {
	if headersText != "" {
		first, _, _ := strings.Cut(headersText, "\r\n")
		f := strings.Fields(first)
		if request && len(f) == 3 {
			return f[2]
		}
		if !request && len(f) >= 1 {
			return f[0]
		}
	}
	p := strings.ToLower(protocol)
	if p == "h2" {
		return "http/2.0"
	}
	return p
}

// entry is Entry.build for one request; sanitize is Log.ts's
// options.sanitize (the default "Export HAR (sanitized)").
func entry(r *request, sanitize bool, pageref string) harEntry {
	e := harEntry{Initiator: r.initiator, Priority: r.priority, ResourceType: r.resourceType, Pageref: pageref}
	if e.Initiator == nil {
		e.Initiator = &network.Initiator{Type: network.InitiatorTypeOther}
	}
	u := strings.SplitN(r.url, "#", 2)[0]
	e.Request = harRequest{Method: r.method, URL: u, HTTPVersion: httpVersion(r.reqHeadersTxt, r.protocol, true),
		Headers: headerArray(r.reqHeaders), QueryString: []harHeader{}, Cookies: []harHeader{}, HeadersSize: -1}
	if r.reqHeadersTxt != "" {
		e.Request.HeadersSize = len(r.reqHeadersTxt)
	}
	if pu, err := url.Parse(u); err == nil {
		for _, kv := range strings.Split(pu.RawQuery, "&") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			e.Request.QueryString = append(e.Request.QueryString, harHeader{Name: k, Value: v})
		}
	}
	if len(r.postData) > 0 {
		// buildPostData: the request's Content-Type, the body as text.
		ct := ""
		for k, v := range r.reqHeaders {
			if strings.EqualFold(k, "content-type") {
				ct = fmt.Sprint(v)
			}
		}
		e.Request.PostData = &harPostData{MimeType: ct, Text: string(r.postData)}
		e.Request.BodySize = len(r.postData)
	}
	mime := r.mimeType
	if mime == "" {
		mime = "x-unknown"
	}
	e.Response = harResponse{Status: r.status, StatusText: r.statusText, HTTPVersion: httpVersion(r.respHeadersTx, r.protocol, false),
		Headers: headerArray(r.respHeaders), Cookies: []harHeader{}, Content: harContent{MimeType: mime},
		HeadersSize: -1, BodySize: -1, TransferSize: r.transferSize}
	if r.resourceType != "websocket" {
		e.Response.Content.Size = r.transferSize
	}
	if r.respHeadersTx != "" {
		// responseBodySize and responseCompression of Log.ts.
		e.Response.HeadersSize = len(r.respHeadersTx)
		e.Response.BodySize = r.transferSize - float64(len(r.respHeadersTx))
		c := e.Response.Content.Size - e.Response.BodySize
		e.Response.Content.Compression = &c
	}
	if r.body != nil {
		// HARWriter adds the content: text, or base64 with its encoding.
		text := string(r.body)
		if r.bodyBase64 {
			text, e.Response.Content.Encoding = base64.StdEncoding.EncodeToString(r.body), "base64"
		}
		e.Response.Content.Text = &text
	}
	if r.remotePort > 0 {
		e.ServerIP, e.Connection = r.remoteIP, strconv.FormatInt(r.remotePort, 10)
	}
	e.Started = isoTime(r.pseudoWallTime(r.issueTime))
	// buildTimings without a ResourceTiming (as for sockets).
	e.Timings = harTimings{Blocked: -1, DNS: -1, SSL: -1, Connect: -1, Queueing: -1}
	if r.responseTime != -1 {
		wait := toMilliseconds(r.responseTime - r.issueTime)
		e.Timings.Wait = wait
		if r.endTime != -1 {
			e.Timings.Receive = max(toMilliseconds(r.endTime-r.issueTime)-wait, 0)
		}
	}
	e.Time = max(e.Timings.Send, 0) + max(e.Timings.Wait, 0) + max(e.Timings.Receive, 0)
	if sanitize {
		keep := e.Request.Headers[:0]
		for _, h := range e.Request.Headers {
			if n := strings.ToLower(h.Name); n != "authorization" && n != "cookie" {
				keep = append(keep, h)
			}
		}
		e.Request.Headers = keep
		keepR := e.Response.Headers[:0]
		for _, h := range e.Response.Headers {
			if strings.ToLower(h.Name) != "set-cookie" {
				keepR = append(keepR, h)
			}
		}
		e.Response.Headers = keepR
	}
	if r.resourceType == "websocket" {
		msgs := []harMessage{}
		for _, f := range r.frames {
			msgs = append(msgs, harMessage{Type: f.typ, Time: f.time, Opcode: f.opcode, Data: f.text})
		}
		e.Messages = &msgs
	}
	return e
}
