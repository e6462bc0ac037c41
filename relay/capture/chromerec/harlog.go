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

	"github.com/wsrelay/wsrelay/relay/capture"
)

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
func entry(r *request, sanitize bool, pageref string) capture.HAREntry {
	initiator := r.initiator
	if initiator == nil {
		initiator = &network.Initiator{Type: network.InitiatorTypeOther}
	}
	e := capture.HAREntry{Initiator: initiator, Priority: r.priority, ResourceType: r.resourceType, Pageref: pageref}
	u := strings.SplitN(r.url, "#", 2)[0]
	e.Request = capture.HARRequest{Method: r.method, URL: u, HTTPVersion: httpVersion(r.reqHeadersTxt, r.protocol, true),
		Headers: headerArray(r.reqHeaders), QueryString: []capture.HARHeader{}, Cookies: []capture.HARHeader{}, HeadersSize: -1}
	if r.reqHeadersTxt != "" {
		e.Request.HeadersSize = len(r.reqHeadersTxt)
	}
	if pu, err := url.Parse(u); err == nil {
		for _, kv := range strings.Split(pu.RawQuery, "&") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			e.Request.QueryString = append(e.Request.QueryString, capture.HARHeader{Name: k, Value: v})
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
		e.Request.PostData = &capture.HARPostData{MimeType: ct, Text: string(r.postData)}
		e.Request.BodySize = len(r.postData)
	}
	mime := r.mimeType
	if mime == "" {
		mime = "x-unknown"
	}
	e.Response = capture.HARResponse{Status: int(r.status), StatusText: r.statusText, HTTPVersion: httpVersion(r.respHeadersTx, r.protocol, false),
		Headers: headerArray(r.respHeaders), Cookies: []capture.HARHeader{}, Content: capture.HARContent{MimeType: mime},
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
	e.Timings = capture.HARTimings{Blocked: -1, DNS: -1, SSL: -1, Connect: -1, Queueing: -1}
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
		msgs := []capture.HARMessage{}
		for _, f := range r.frames {
			msgs = append(msgs, capture.HARMessage{Type: f.typ, Time: f.time, Opcode: f.opcode, Data: f.text})
		}
		e.Messages = &msgs
	}
	return e
}
