package chromerec

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"

	"github.com/wsrelay/wsrelay/relay/capture"
)

// request is what DevTools' NetworkRequest keeps of one request, filled
// from the Network domain's events the way front_end/core/sdk/
// NetworkManager.ts does (webSocketCreated, webSocketWillSendHandshakeRequest,
// webSocketHandshakeResponseReceived, webSocketFrameSent/Received/Error,
// webSocketClosed; requestWillBeSent, responseReceived, loadingFinished).
type request struct {
	id            string
	url           string
	method        string
	resourceType  string // "websocket", "document", …
	priority      *string
	initiator     *network.Initiator
	issueTime     float64 // monotonic seconds
	wallIssueTime float64 // seconds since the epoch
	reqHeaders    network.Headers
	reqHeadersTxt string
	status        int64
	statusText    string
	respHeaders   network.Headers
	respHeadersTx string
	mimeType      string
	protocol      string
	remoteIP      string
	remotePort    int64
	responseTime  float64 // responseReceivedTime, -1 until known
	endTime       float64 // -1 while open
	transferSize  float64
	frames        []frame
	hasPost       bool
	postData      []byte
	body          []byte // response body (fetched after the page is done)
	bodyBase64    bool
}

// frame is one entry of NetworkRequest.frames(): {type, time, opCode, text}.
type frame struct {
	typ    string // send, receive, error
	time   float64
	opcode float64
	text   string
}

// pseudoWallTime is NetworkRequest.pseudoWallTime: the wall time of a
// monotonic timestamp, anchored at the request's issue.
func (r *request) pseudoWallTime(t float64) float64 {
	if r.wallIssueTime != 0 {
		return r.wallIssueTime - r.issueTime + t
	}
	return t
}

// recorder collects the events of one tab, in arrival order.
type recorder struct {
	mu       sync.Mutex
	byID     map[string]*request
	order    []*request
	pageLoad struct{ start, dom, load float64 }
	pageURL  string
}

func newRecorder() *recorder { return &recorder{byID: map[string]*request{}} }

// onEvent runs on the tab's reader goroutine: it must return fast.
func (r *recorder) onEvent(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventWebSocketCreated:
		req := &request{id: string(e.RequestID), url: e.URL, resourceType: "websocket", initiator: e.Initiator, responseTime: -1, endTime: -1}
		r.byID[req.id] = req
		r.order = append(r.order, req)
	case *network.EventWebSocketWillSendHandshakeRequest:
		if req := r.byID[string(e.RequestID)]; req != nil {
			req.method = "GET"
			req.reqHeaders = e.Request.Headers
			req.issueTime, req.wallIssueTime = float64(e.Timestamp), float64(e.WallTime)
		}
	case *network.EventWebSocketHandshakeResponseReceived:
		if req := r.byID[string(e.RequestID)]; req != nil {
			req.status, req.statusText = e.Response.Status, e.Response.StatusText
			req.respHeaders, req.respHeadersTx = e.Response.Headers, e.Response.HeadersText
			if len(e.Response.RequestHeaders) > 0 {
				req.reqHeaders = e.Response.RequestHeaders
			}
			if e.Response.RequestHeadersText != "" {
				req.reqHeadersTxt = e.Response.RequestHeadersText
			}
			req.responseTime = float64(e.Timestamp)
			req.protocol = "websocket"
		}
	case *network.EventWebSocketFrameSent:
		r.addFrame(string(e.RequestID), "send", float64(e.Timestamp), e.Response)
	case *network.EventWebSocketFrameReceived:
		r.addFrame(string(e.RequestID), "receive", float64(e.Timestamp), e.Response)
	case *network.EventWebSocketFrameError:
		if req := r.byID[string(e.RequestID)]; req != nil {
			req.frames = append(req.frames, frame{typ: "error", time: req.pseudoWallTime(float64(e.Timestamp)), opcode: -1, text: e.ErrorMessage})
			req.responseTime = float64(e.Timestamp)
		}
	case *network.EventWebSocketClosed:
		if req := r.byID[string(e.RequestID)]; req != nil {
			req.endTime = float64(e.Timestamp)
		}
	case *network.EventRequestWillBeSent:
		if e.Request == nil || r.byID[string(e.RequestID)] != nil {
			return
		}
		prio := string(e.Request.InitialPriority)
		req := &request{id: string(e.RequestID), url: e.Request.URL, method: e.Request.Method, resourceType: strings.ToLower(string(e.Type)),
			priority: &prio, initiator: e.Initiator, issueTime: float64(e.Timestamp), wallIssueTime: float64(e.WallTime),
			reqHeaders: e.Request.Headers, responseTime: -1, endTime: -1}
		req.hasPost = e.Request.HasPostData
		for _, pe := range e.Request.PostDataEntries {
			req.postData = append(req.postData, pe.Bytes...)
		}
		r.byID[req.id] = req
		r.order = append(r.order, req)
		if e.Type == network.ResourceTypeDocument && r.pageURL == "" {
			r.pageURL, r.pageLoad.start = e.Request.URL, float64(e.Timestamp)
		}
	case *network.EventResponseReceived:
		if req := r.byID[string(e.RequestID)]; req != nil && e.Response != nil {
			req.status, req.statusText = e.Response.Status, e.Response.StatusText
			req.respHeaders, req.mimeType, req.protocol = e.Response.Headers, e.Response.MimeType, e.Response.Protocol
			req.remoteIP, req.remotePort = e.Response.RemoteIPAddress, e.Response.RemotePort
			req.responseTime = float64(e.Timestamp)
		}
	case *network.EventLoadingFinished:
		if req := r.byID[string(e.RequestID)]; req != nil {
			req.endTime, req.transferSize = float64(e.Timestamp), e.EncodedDataLength
		}
	case *page.EventDomContentEventFired:
		r.pageLoad.dom = float64(e.Timestamp)
	case *page.EventLoadEventFired:
		r.pageLoad.load = float64(e.Timestamp)
	}
}

// addFrame is NetworkRequest.addProtocolFrame: payloadData is text for
// opcode 1 and base64 otherwise (CDP Network.WebSocketFrame); cdproto has
// decoded it, so binary is encoded back.
func (r *recorder) addFrame(id, typ string, ts float64, f *network.WebSocketFrame) {
	req := r.byID[id]
	if req == nil || f == nil {
		return
	}
	text := string(f.PayloadData)
	if f.Opcode != 1 {
		text = base64.StdEncoding.EncodeToString(f.PayloadData)
	}
	req.frames = append(req.frames, frame{typ: typ, time: req.pseudoWallTime(ts), opcode: f.Opcode, text: text})
	req.responseTime = ts
}

// received counts the frames received on sockets.
func (r *recorder) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, req := range r.order {
		for _, f := range req.frames {
			if f.typ == "receive" {
				n++
			}
		}
	}
	return n
}

// headerArray is headersMapToHeadersArray: one entry per value, values
// joined by "\n" split. CDP gives an object, which loses the wire order:
// names are sorted.
func headerArray(h network.Headers) []capture.HARHeader {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	out := []capture.HARHeader{}
	for _, k := range names {
		for _, v := range strings.Split(fmt.Sprint(h[k]), "\n") {
			out = append(out, capture.HARHeader{Name: k, Value: v})
		}
	}
	return out
}
