package capture

import (
	"encoding/json"
	"io"
)

// The HAR document as DevTools writes it (front_end/models/har/Log.ts in
// devtools-frontend), for the two writers of this module: WriteHAR (probe
// -har) and the Chromium recorder in chromerec. Struct fields are in
// Log.ts's key order, so that a file reads like a Chrome export, and the
// fields Log.ts deletes when they do not apply are omitempty. ReadHAR does
// not use these types: it reads through a lenient view of its own
// (harEntry in har.go), since third-party files vary.
//
// Numbers that come from the DevTools protocol as JSON numbers (opcode,
// transfer and body sizes) are float64; encoding/json writes a whole
// float64 without a fraction, as JSON.stringify does.

// HARLog is a whole HAR file: {"log": {...}}. Encode writes it.
type HARLog struct {
	Log struct {
		Version string     `json:"version"`
		Creator HARCreator `json:"creator"`
		Pages   []HARPage  `json:"pages"`
		Entries []HAREntry `json:"entries"`
	} `json:"log"`
}

// HARCreator is log.creator: the writer's name and version.
type HARCreator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// HARPage is one element of log.pages; times are in milliseconds, -1
// when unknown.
type HARPage struct {
	StartedDateTime string `json:"startedDateTime"`
	ID              string `json:"id"`
	Title           string `json:"title"`
	PageTimings     struct {
		OnContentLoad float64 `json:"onContentLoad"`
		OnLoad        float64 `json:"onLoad"`
	} `json:"pageTimings"`
}

// HAREntry is one element of log.entries: a request, or a WebSocket with
// its frames in Messages.
type HAREntry struct {
	// ConnectionID is Chrome's _connectionId, left out when empty.
	ConnectionID string `json:"_connectionId,omitempty"`
	// Initiator is the _initiator object: any value that encodes as one
	// (a map, or the DevTools protocol's Network.Initiator).
	Initiator    any     `json:"_initiator"`
	Priority     *string `json:"_priority"`
	ResourceType string  `json:"_resourceType"`
	// Messages is _webSocketMessages: nil leaves the key out (entries
	// that are not sockets), a pointer to an empty slice writes [].
	Messages *[]HARMessage `json:"_webSocketMessages,omitempty"`
	Cache    struct{}      `json:"cache"`
	// Connection is the server port, left out when empty.
	Connection string      `json:"connection,omitempty"`
	Pageref    string      `json:"pageref,omitempty"`
	Request    HARRequest  `json:"request"`
	Response   HARResponse `json:"response"`
	ServerIP   string      `json:"serverIPAddress"`
	Started    string      `json:"startedDateTime"`
	Time       float64     `json:"time"`
	Timings    HARTimings  `json:"timings"`
}

// HARMessage is one element of _webSocketMessages: the time in seconds
// since the epoch and the opcode as the DevTools protocol gives it (1
// text, 2 binary with Data in base64, 8 to 10 control; -1 for an error).
type HARMessage struct {
	Type   string  `json:"type"`
	Time   float64 `json:"time"`
	Opcode float64 `json:"opcode"`
	Data   string  `json:"data"`
}

// HARHeader is a header, cookie or query parameter as name and value.
type HARHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HARRequest is entry.request; sizes are -1 when unknown.
type HARRequest struct {
	Method      string       `json:"method"`
	URL         string       `json:"url"`
	HTTPVersion string       `json:"httpVersion"`
	Headers     []HARHeader  `json:"headers"`
	QueryString []HARHeader  `json:"queryString"`
	Cookies     []HARHeader  `json:"cookies"`
	HeadersSize int          `json:"headersSize"`
	BodySize    int          `json:"bodySize"`
	PostData    *HARPostData `json:"postData,omitempty"`
}

// HARPostData is request.postData: the body as text with its type.
type HARPostData struct {
	MimeType string `json:"mimeType"`
	Text     string `json:"text"`
}

// HARResponse is entry.response; sizes are -1 when unknown.
type HARResponse struct {
	Status       int         `json:"status"`
	StatusText   string      `json:"statusText"`
	HTTPVersion  string      `json:"httpVersion"`
	Headers      []HARHeader `json:"headers"`
	Cookies      []HARHeader `json:"cookies"`
	Content      HARContent  `json:"content"`
	RedirectURL  string      `json:"redirectURL"`
	HeadersSize  int         `json:"headersSize"`
	BodySize     float64     `json:"bodySize"`
	TransferSize float64     `json:"_transferSize"`
	Error        *string     `json:"_error"`
	ViaSW        bool        `json:"_fetchedViaServiceWorker"`
}

// HARContent is response.content; Compression, Text and Encoding are left
// out when not set.
type HARContent struct {
	Size        float64  `json:"size"`
	MimeType    string   `json:"mimeType"`
	Compression *float64 `json:"compression,omitempty"`
	Text        *string  `json:"text,omitempty"`
	Encoding    string   `json:"encoding,omitempty"`
}

// HARTimings is entry.timings in milliseconds, -1 for a phase that does
// not apply.
type HARTimings struct {
	Blocked  float64 `json:"blocked"`
	DNS      float64 `json:"dns"`
	SSL      float64 `json:"ssl"`
	Connect  float64 `json:"connect"`
	Send     float64 `json:"send"`
	Wait     float64 `json:"wait"`
	Receive  float64 `json:"receive"`
	Queueing float64 `json:"_blocked_queueing"`
}

// Encode writes l as DevTools saves a HAR, with JSON.stringify(log, null,
// 2): indented by two spaces, no HTML escaping; json.Encoder ends it with
// a newline.
func (l *HARLog) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(l)
}
