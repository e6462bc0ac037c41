package capture

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// ErrBadHAR means the input is not a readable HAR file: not JSON, not a
// HAR, truncated or too large. Its text says which, in one line.
var ErrBadHAR = errors.New("not a usable HAR file")

// Defaults of ReadOptions.
const (
	DefaultMaxBytes      = 4 << 30   // 4 GiB of input
	DefaultMaxFrames     = 100_000   // messages kept per socket
	DefaultMaxFrameBytes = 256 << 20 // message bytes kept in all
)

// ReadOptions bound what ReadHAR reads and keeps. A zero field means its
// default. The input is decoded one entry at a time, so memory grows with
// what is kept (the WebSocket messages) and with the largest single entry,
// not with the file.
type ReadOptions struct {
	MaxBytes      int64 // input larger than this is refused (DefaultMaxBytes)
	MaxFrames     int   // messages kept per socket; more are counted in Session.Dropped
	MaxFrameBytes int64 // message bytes kept over all sockets; more are counted in Session.Dropped
}

// Capture is what a HAR file holds that matters for a relay.
type Capture struct {
	// Creator is the writer's name and version ("WebInspector 537.36",
	// "Playwright 1.65.1", "mitmproxy 10.1.1").
	Creator string
	// Entries is the number of entries read.
	Entries int
	// Sessions are the WebSocket entries, in file order.
	Sessions []Session
	// AnyCookie is true when some entry of the file (any kind) carries a
	// Cookie or Authorization header or a request cookie: a file with none
	// may be a sanitized export.
	AnyCookie bool
	// Skipped counts entries that could not be decoded (a field of an
	// unexpected type); they are left out.
	Skipped int
	// Polling are Engine.IO long-polling requests (Socket.IO before its
	// upgrade to WebSocket): a page often connects and subscribes there.
	Polling []Polling
}

// Polling is one Engine.IO long-polling request: the payload the page
// POSTed, or the one a GET received (when the HAR has response bodies).
type Polling struct {
	SID     string // the session id in the URL ("" for the handshake)
	Sent    bool
	At      time.Time
	Payload string // packets separated by 0x1E (Engine.IO v4)
}

// harEntry is the part of a HAR entry that is read. Fields whose type
// varies between writers are raw.
type harEntry struct {
	ResourceType string `json:"_resourceType"`
	Request      struct {
		Method   string          `json:"method"`
		URL      string          `json:"url"`
		Headers  json.RawMessage `json:"headers"`
		Cookies  json.RawMessage `json:"cookies"`
		PostData struct {
			Text smallText `json:"text"`
		} `json:"postData"`
	} `json:"request"`
	Response struct {
		Status  json.RawMessage `json:"status"`
		Headers json.RawMessage `json:"headers"`
		Content struct {
			File     string    `json:"_file"`
			Text     smallText `json:"text"`
			Encoding string    `json:"encoding"`
		} `json:"content"`
	} `json:"response"`
	StartedDateTime string        `json:"startedDateTime"`
	Messages        *[]harMessage `json:"_webSocketMessages"`
}

// harMessage is one element of _webSocketMessages: {type, time, opcode,
// data} in Chrome's, Playwright's and mitmproxy's files; every field may be
// missing or of another type in third-party files.
type harMessage struct {
	Type   string          `json:"type"`
	Time   json.RawMessage `json:"time"`
	Opcode json.RawMessage `json:"opcode"`
	Data   json.RawMessage `json:"data"`
}

// ReadHAR reads a HAR file entry by entry and returns its WebSocket
// sessions. Errors wrap ErrBadHAR and say in one line what is wrong.
func ReadHAR(r io.Reader, opts ReadOptions) (*Capture, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxFrames <= 0 {
		opts.MaxFrames = DefaultMaxFrames
	}
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = DefaultMaxFrameBytes
	}
	lr := &limitReader{r: r, left: opts.MaxBytes}
	br := bufio.NewReaderSize(lr, 64<<10)
	if magic, _ := br.Peek(4); bytes.HasPrefix(magic, []byte{0x1f, 0x8b}) {
		// A gzipped HAR (page.har.gz): read through.
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: a broken gzip file: %v", ErrBadHAR, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(&limitReader{r: zr, left: opts.MaxBytes}, 64<<10)
	} else if bytes.HasPrefix(magic, []byte("PK\x03\x04")) {
		return nil, fmt.Errorf("%w: a zip file (Playwright saves one in attach mode): record with content: 'embed', or import the .har inside", ErrBadHAR)
	}
	if err := skipBOM(br); err != nil {
		return nil, err
	}
	hr := &harReader{dec: json.NewDecoder(br), opts: opts, lr: lr, c: &Capture{}}
	if err := hr.read(); err != nil {
		return nil, hr.describe(err)
	}
	return hr.c, nil
}

// skipBOM drops a UTF-8 byte order mark (mitmproxy keeps a WebInspector HAR
// that starts with one; encoding/json refuses it) and refuses UTF-16.
func skipBOM(br *bufio.Reader) error {
	p, _ := br.Peek(3)
	switch {
	case bytes.HasPrefix(p, []byte{0xEF, 0xBB, 0xBF}):
		_, _ = br.Discard(3)
	case bytes.HasPrefix(p, []byte{0xFF, 0xFE}), bytes.HasPrefix(p, []byte{0xFE, 0xFF}):
		return fmt.Errorf("%w: the file is UTF-16; save it as UTF-8", ErrBadHAR)
	}
	return nil
}

// errTooLarge marks input beyond ReadOptions.MaxBytes.
var errTooLarge = errors.New("input too large")

type limitReader struct {
	r    io.Reader
	left int64
	read int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.read += int64(n)
	return n, err
}

type harReader struct {
	dec        *json.Decoder
	opts       ReadOptions
	lr         *limitReader
	c          *Capture
	frameBytes int64
	sawLog     bool
	sawEntries bool
}

// describe turns a decoding error into one line that says what is wrong.
func (h *harReader) describe(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, ErrBadHAR):
		return err
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("%w: larger than %s (the limit of the reader)", ErrBadHAR, sizeString(h.opts.MaxBytes))
	case errors.Is(err, io.ErrUnexpectedEOF) || (errors.Is(err, io.EOF) && h.lr.read > 0):
		if h.sawEntries {
			return fmt.Errorf("%w: truncated: the file ends inside entry %d (after %d bytes)", ErrBadHAR, h.c.Entries+1, h.lr.read)
		}
		return fmt.Errorf("%w: truncated: the file ends after %d bytes", ErrBadHAR, h.lr.read)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: the file is empty", ErrBadHAR)
	case errors.As(err, &syn):
		if !h.sawLog {
			return fmt.Errorf("%w: not JSON (%v at byte %d)", ErrBadHAR, syn, syn.Offset)
		}
		return fmt.Errorf("%w: broken JSON in entry %d (%v at byte %d)", ErrBadHAR, h.c.Entries+1, syn, syn.Offset)
	}
	return fmt.Errorf("%w: %v", ErrBadHAR, err)
}

func (h *harReader) read() error {
	if err := h.expectDelim('{', "not a HAR: the file is not a JSON object"); err != nil {
		return err
	}
	for h.dec.More() {
		key, err := h.key()
		if err != nil {
			return err
		}
		if key != "log" {
			if err := h.skip(); err != nil {
				return err
			}
			continue
		}
		h.sawLog = true
		if err := h.readLog(); err != nil {
			return err
		}
	}
	if _, err := h.dec.Token(); err != nil { // the closing brace
		return err
	}
	if !h.sawLog {
		return fmt.Errorf("%w: not a HAR: no \"log\" object", ErrBadHAR)
	}
	if !h.sawEntries {
		return fmt.Errorf("%w: not a HAR: \"log\" has no \"entries\"", ErrBadHAR)
	}
	return nil
}

func (h *harReader) readLog() error {
	if err := h.expectDelim('{', "not a HAR: \"log\" is not an object"); err != nil {
		return err
	}
	for h.dec.More() {
		key, err := h.key()
		if err != nil {
			return err
		}
		switch key {
		case "creator":
			var cr struct{ Name, Version string }
			if err := h.dec.Decode(&cr); err != nil {
				var te *json.UnmarshalTypeError
				if !errors.As(err, &te) {
					return err
				}
			}
			h.c.Creator = strings.TrimSpace(cr.Name + " " + cr.Version)
		case "entries":
			h.sawEntries = true
			if err := h.expectDelim('[', "not a HAR: \"entries\" is not a list"); err != nil {
				return err
			}
			for h.dec.More() {
				if err := h.readEntry(); err != nil {
					return err
				}
			}
			if _, err := h.dec.Token(); err != nil {
				return err
			}
		default:
			if err := h.skip(); err != nil {
				return err
			}
		}
	}
	_, err := h.dec.Token()
	return err
}

func (h *harReader) readEntry() error {
	var e harEntry
	err := h.dec.Decode(&e)
	h.c.Entries++
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			h.c.Skipped++ // the decoder moved past the value
			return nil
		}
		h.c.Entries--
		return err
	}
	reqHeaders := parseHeaders(e.Request.Headers)
	cookies := parseHeaders(e.Request.Cookies)
	if len(cookies) > 0 {
		h.c.AnyCookie = true
	}
	for _, hd := range reqHeaders {
		if strings.EqualFold(hd.Name, "cookie") || strings.EqualFold(hd.Name, "authorization") {
			h.c.AnyCookie = true
		}
	}
	status := parseStatus(e.Response.Status)
	url, isWS := wsURL(e.Request.URL)
	scheme, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(e.Request.URL)), ":")
	isSocket := e.Messages != nil || strings.EqualFold(e.ResourceType, "websocket") ||
		(status == 101 && isWS) || scheme == "ws" || scheme == "wss"
	if !isSocket {
		h.polling(&e)
		return nil
	}
	s := Session{
		Entry: h.c.Entries - 1, URL: url, Status: status,
		Request: reqHeaders, Response: parseHeaders(e.Response.Headers), Cookies: cookies,
		NoFrames: e.Messages == nil, FramesFile: e.Response.Content.File,
	}
	if t, err := time.Parse(time.RFC3339Nano, e.StartedDateTime); err == nil {
		s.Started = t
	}
	if e.Messages != nil {
		for _, m := range *e.Messages {
			h.addMessage(&s, m)
		}
	}
	h.c.Sessions = append(h.c.Sessions, s)
	return nil
}

// polling keeps an Engine.IO long-polling request's payload.
func (h *harReader) polling(e *harEntry) {
	u, err := url.Parse(e.Request.URL)
	if err != nil || !strings.Contains(u.Path, "/socket.io") || u.Query().Get("transport") != "polling" {
		return
	}
	p := Polling{SID: u.Query().Get("sid")}
	if t, err := time.Parse(time.RFC3339Nano, e.StartedDateTime); err == nil {
		p.At = t
	}
	if strings.EqualFold(e.Request.Method, "POST") {
		p.Sent, p.Payload = true, e.Request.PostData.Text.s
	} else {
		p.Payload = e.Response.Content.Text.s
		if e.Response.Content.Encoding == "base64" {
			p.Payload = string(decodeBase64(p.Payload))
		}
	}
	if p.Payload != "" && len(h.c.Polling) < h.opts.MaxFrames {
		h.c.Polling = append(h.c.Polling, p)
	}
}

// smallText is a string field kept only when short: polling payloads are
// small, response bodies of other entries may be huge and are not needed.
type smallText struct{ s string }

func (t *smallText) UnmarshalJSON(b []byte) error {
	if len(b) > 1<<20 || len(b) == 0 || b[0] != '"' {
		return nil
	}
	return json.Unmarshal(b, &t.s)
}

// addMessage normalises one captured message into s.
func (h *harReader) addMessage(s *Session, m harMessage) {
	opcode, hasOpcode := parseNumber(m.Opcode)
	data := rawString(m.Data)
	typ := strings.ToLower(m.Type)
	f := Frame{At: parseTime(m.Time)}
	switch {
	case typ == "error" || (hasOpcode && opcode == -1):
		f.Error = data
	case hasOpcode && (opcode == 8 || opcode == 9 || opcode == 10):
		s.Control++
		return
	case strings.HasPrefix(typ, "send"), strings.HasPrefix(typ, "sent"), strings.HasPrefix(typ, "out"):
		f.Sent = true
	case strings.HasPrefix(typ, "rec"), strings.HasPrefix(typ, "in"):
	default:
		s.Control++ // an unknown direction cannot be used
		return
	}
	if f.Error == "" {
		switch {
		case hasOpcode && opcode == 2:
			f.Binary = true
			f.Data = decodeBase64(data)
		case !hasOpcode:
			f.Data, f.Binary = guessPayload(data)
		default:
			f.Data = []byte(data)
		}
	}
	if len(s.Frames) >= h.opts.MaxFrames || h.frameBytes+int64(len(f.Data)) > h.opts.MaxFrameBytes {
		s.Dropped++
		return
	}
	h.frameBytes += int64(len(f.Data))
	s.Frames = append(s.Frames, f)
}

// skip consumes one JSON value token by token (nothing is kept).
func (h *harReader) skip() error {
	depth := 0
	for {
		tok, err := h.dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

func (h *harReader) key() (string, error) {
	tok, err := h.dec.Token()
	if err != nil {
		return "", err
	}
	k, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%w: unexpected %v", ErrBadHAR, tok)
	}
	return k, nil
}

func (h *harReader) expectDelim(want json.Delim, msg string) error {
	tok, err := h.dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%w: %s", ErrBadHAR, msg)
	}
	return nil
}
