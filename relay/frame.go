package relay

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Frame handling errors.
var (
	// ErrInflatedTooLarge means a compressed frame inflates past the limit.
	ErrInflatedTooLarge = errors.New("inflated frame exceeds the limit")
	// ErrNotJSON means a frame is not a JSON document.
	ErrNotJSON = errors.New("frame is not JSON")
)

// Decompress modes.
const (
	DecompressAuto = "auto"
	DecompressNone = "none"
)

// FrameKind is what a frame turned out to be.
type FrameKind uint8

// The kinds of upstream frames.
const (
	// FrameQuote is published.
	FrameQuote FrameKind = iota + 1
	// FramePing is an app-level ping; Reply must be sent back.
	FramePing
	// FrameHeartbeat proves the connection alive; it is not a quote and
	// not counted as ignored.
	FrameHeartbeat
	// FrameReject says the venue refused a subscription (Message says why).
	FrameReject
	// FrameReconnect announces a disconnect: open a new connection now.
	FrameReconnect
	// FrameIgnored is counted and logged at debug: acks, anything that is
	// not a quote and matches no rule.
	FrameIgnored
	// FrameError is an error reply recognised by its usual shape, on an
	// upstream without reject rules (logged clearly).
	FrameError
)

// FrameResult is the outcome of FrameRules.Handle.
type FrameResult struct {
	Kind FrameKind
	// Data is the compact JSON to publish (FrameQuote) or the error frame
	// (FrameError). It aliases an internal buffer: copy it before the next
	// Handle call.
	Data []byte
	// Reply is the frame to send back for FramePing.
	Reply []byte
	// Message is the venue's reason for FrameReject.
	Message string
	// ID is the value at the reject rule's id pointer (raw JSON), if any.
	ID []byte
	// Route is the value at the route pointer (a string's contents), for
	// quotes and rejects on an upstream with route.
	Route []byte
	// Ready is true when the frame matches the ready rule.
	Ready bool
}

// FrameRules turn raw upstream frames into quotes and protocol actions.
// They hold scratch buffers: use one FrameRules per connection (not safe
// for concurrent use).
type FrameRules struct {
	accept     []matcher
	extract    []string
	hasExtract bool
	pong       []pongRule
	heartbeat  []matcher
	reject     []rejectRule
	reconnect  []matcher
	ready      *matcher
	route      []string
	hasRoute   bool
	decompress bool
	maxSize    int64
	nextID     func() uint64

	buf   bytes.Buffer
	inf   bytes.Buffer
	reply []byte
	src   bytes.Reader
	// Inflaters are kept and reset: a fresh one costs ~40 KB per frame.
	gz *gzip.Reader
	zl io.ReadCloser
	fl io.ReadCloser
}

type pongRule struct {
	m     matcher
	reply template
}

type rejectRule struct {
	m   matcher
	msg []string
	id  []string
	// hasMsg, hasID: the pointers were given ("" would be the whole frame).
	hasMsg, hasID bool
}

// FrameRules returns the frame rules of u (validated as Validate does).
func (u *UpstreamConfig) FrameRules() (*FrameRules, error) {
	r := &FrameRules{maxSize: u.ReadLimit}
	if r.maxSize <= 0 {
		r.maxSize = DefaultReadLimit
	}
	var err error
	for i, m := range u.Accept {
		c, err := compileMatcher(m)
		if err != nil {
			return nil, fieldErr(idx("accept", i, len(u.Accept)), err)
		}
		r.accept = append(r.accept, c)
	}
	if r.extract, err = parsePointer(u.Extract); err != nil {
		return nil, fieldErr("extract", err)
	}
	r.hasExtract = u.Extract != ""
	for i, p := range u.Pong {
		c, err := compileMatcher(p.Matcher)
		if err != nil {
			return nil, fieldErr(idx("pong", i, len(u.Pong)), err)
		}
		if p.Reply == "" {
			return nil, fieldErr(idx("pong", i, len(u.Pong))+".reply", errors.New("required"))
		}
		r.pong = append(r.pong, pongRule{m: c, reply: parseTemplate(p.Reply)})
	}
	for i, m := range u.Heartbeat {
		c, err := compileMatcher(m)
		if err != nil {
			return nil, fieldErr(idx("heartbeat", i, len(u.Heartbeat)), err)
		}
		r.heartbeat = append(r.heartbeat, c)
	}
	for i, rj := range u.Reject {
		key := idx("reject", i, len(u.Reject))
		c, err := compileMatcher(rj.Matcher)
		if err != nil {
			return nil, fieldErr(key, err)
		}
		rr := rejectRule{m: c, hasMsg: rj.Message != "", hasID: rj.ID != ""}
		if rr.msg, err = parsePointer(rj.Message); err != nil {
			return nil, fieldErr(key+".message", err)
		}
		if rr.id, err = parsePointer(rj.ID); err != nil {
			return nil, fieldErr(key+".id", err)
		}
		r.reject = append(r.reject, rr)
	}
	for i, m := range u.ReconnectOn {
		c, err := compileMatcher(m)
		if err != nil {
			return nil, fieldErr(idx("reconnect_on", i, len(u.ReconnectOn)), err)
		}
		r.reconnect = append(r.reconnect, c)
	}
	if u.Ready != nil {
		c, err := compileMatcher(u.Ready.Matcher)
		if err != nil {
			return nil, fieldErr("ready", err)
		}
		r.ready = &c
	}
	if u.Route != nil {
		if r.route, err = parsePointer(u.Route.Match); err != nil {
			return nil, fieldErr("route.match", err)
		}
		r.hasRoute = true
	}
	switch u.Decompress {
	case "", DecompressAuto:
		r.decompress = true
	case DecompressNone:
	default:
		return nil, fieldErr("decompress", fmt.Errorf("%q is not auto or none", u.Decompress))
	}
	return r, nil
}

// idx names the i-th of n rules: "pong" when there is one, "pong[1]" else.
func idx(key string, i, n int) string {
	if n == 1 {
		return key
	}
	return fmt.Sprintf("%s[%d]", key, i)
}

// parsePointer parses an RFC 6901 JSON pointer ("" is the whole document).
func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("JSON pointer %q must start with /", truncate(p, 64))
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		for j := 0; j < len(s); j++ {
			if s[j] == '~' && (j+1 >= len(s) || (s[j+1] != '0' && s[j+1] != '1')) {
				return nil, fmt.Errorf("JSON pointer %q: bad escape", truncate(p, 64))
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// Handle classifies one frame (one record of the upstream's framing).
// binary tells the WebSocket message type. A text frame that is not JSON
// is matched by the rules' equals values or ignored, never an error.
func (r *FrameRules) Handle(binary bool, payload []byte) (FrameResult, error) {
	if binary && r.decompress && !looksJSON(payload) {
		inflated, err := r.inflate(payload)
		if err != nil {
			return FrameResult{Kind: FrameIgnored}, err
		}
		payload = inflated
	}
	r.buf.Reset()
	if err := json.Compact(&r.buf, payload); err != nil {
		if binary {
			return FrameResult{Kind: FrameIgnored}, ErrNotJSON
		}
		return r.handleText(payload), nil
	}
	doc := r.buf.Bytes()
	res := FrameResult{Kind: FrameIgnored}
	if r.ready != nil {
		res.Ready = r.ready.matchDoc(doc)
	}
	for i := range r.pong {
		if r.pong[i].m.matchDoc(doc) {
			v, _ := lookup(doc, r.pong[i].m.ptr)
			res.Kind, res.Reply = FramePing, r.renderReply(&r.pong[i], v)
			return res, nil
		}
	}
	for i := range r.reject {
		rj := &r.reject[i]
		if !rj.m.matchDoc(doc) {
			continue
		}
		res.Kind = FrameReject
		res.Message = rejectMessage(doc, rj)
		if rj.hasID {
			res.ID, _ = lookup(doc, rj.id)
		}
		res.Route = r.routeKey(doc)
		return res, nil
	}
	for i := range r.reconnect {
		if r.reconnect[i].matchDoc(doc) {
			res.Kind = FrameReconnect
			return res, nil
		}
	}
	for i := range r.heartbeat {
		if r.heartbeat[i].matchDoc(doc) {
			res.Kind = FrameHeartbeat
			return res, nil
		}
	}
	if len(r.accept) > 0 && !r.accepts(doc) {
		if len(r.reject) == 0 && isErrorFrame(doc) {
			res.Kind, res.Data = FrameError, doc
		}
		return res, nil
	}
	res.Route = r.routeKey(doc)
	if r.hasExtract {
		v, ok := lookup(doc, r.extract)
		if !ok {
			return res, nil
		}
		doc = v
	}
	res.Kind, res.Data = FrameQuote, doc
	return res, nil
}

func (r *FrameRules) accepts(doc []byte) bool {
	for i := range r.accept {
		if r.accept[i].matchDoc(doc) {
			return true
		}
	}
	return false
}

// handleText matches a text frame that is not JSON (OKX's "pong").
func (r *FrameRules) handleText(text []byte) FrameResult {
	res := FrameResult{Kind: FrameIgnored}
	if r.ready != nil {
		res.Ready = r.ready.matchText(text)
	}
	for i := range r.pong {
		if r.pong[i].m.matchText(text) {
			res.Kind, res.Reply = FramePing, r.renderReply(&r.pong[i], appendJSONString(nil, string(bytes.TrimSpace(text))))
			return res
		}
	}
	for i := range r.reject {
		if r.reject[i].m.matchText(text) {
			res.Kind, res.Message = FrameReject, truncate(string(text), 256)
			return res
		}
	}
	for i := range r.reconnect {
		if r.reconnect[i].matchText(text) {
			res.Kind = FrameReconnect
			return res
		}
	}
	for i := range r.heartbeat {
		if r.heartbeat[i].matchText(text) {
			res.Kind = FrameHeartbeat
			return res
		}
	}
	return res
}

func (r *FrameRules) renderReply(p *pongRule, value []byte) []byte {
	r.reply = p.reply.render(r.reply[:0], &tmplArgs{value: value, nextID: r.nextID}, escJSON)
	return r.reply
}

// routeKey returns the value at the route pointer: a string's contents, or
// other JSON as written.
func (r *FrameRules) routeKey(doc []byte) []byte {
	if !r.hasRoute {
		return nil
	}
	v, ok := lookup(doc, r.route)
	if !ok {
		return nil
	}
	if len(v) >= 2 && v[0] == '"' {
		if bytes.IndexByte(v, '\\') < 0 {
			return v[1 : len(v)-1]
		}
		s, err := unquote(v)
		if err != nil {
			return nil
		}
		return []byte(s)
	}
	return v
}

// rejectMessage is the venue's reason: the string (or JSON) at the rule's
// message pointer, else the frame itself, bounded.
func rejectMessage(doc []byte, rj *rejectRule) string {
	if rj.hasMsg {
		if v, ok := lookup(doc, rj.msg); ok {
			if len(v) > 0 && v[0] == '"' {
				if s, err := unquote(v); err == nil {
					return truncate(s, 256)
				}
			}
			return truncate(string(v), 256)
		}
	}
	return "the venue refused the subscription: " + truncate(string(doc), 200)
}

func looksJSON(p []byte) bool {
	for _, c := range p {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// inflate detects gzip, zlib or raw deflate and inflates with a size cap.
func (r *FrameRules) inflate(p []byte) ([]byte, error) {
	var rd io.Reader
	var err error
	r.src.Reset(p)
	src := &r.src
	switch {
	case len(p) >= 2 && p[0] == 0x1f && p[1] == 0x8b:
		if r.gz == nil {
			r.gz, err = gzip.NewReader(src)
		} else {
			err = r.gz.Reset(src)
		}
		if err != nil {
			r.gz = nil
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r.gz.Multistream(false)
		rd = r.gz
	case len(p) >= 2 && p[0]&0x0f == 8 && (uint16(p[0])<<8|uint16(p[1]))%31 == 0:
		if r.zl == nil {
			r.zl, err = zlib.NewReader(src)
		} else {
			err = r.zl.(zlib.Resetter).Reset(src, nil)
		}
		if err != nil {
			r.zl = nil
			return nil, fmt.Errorf("zlib: %w", err)
		}
		rd = r.zl
	default:
		if r.fl == nil {
			r.fl = flate.NewReader(src)
		} else if err := r.fl.(flate.Resetter).Reset(src, nil); err != nil {
			return nil, fmt.Errorf("deflate: %w", err)
		}
		rd = r.fl
	}
	r.inf.Reset()
	n, err := r.inf.ReadFrom(io.LimitReader(rd, r.maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if n > r.maxSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrInflatedTooLarge, r.maxSize)
	}
	return r.inf.Bytes(), nil
}

// isErrorFrame recognises the usual shapes of exchange error replies:
// {"error":…}, {"event":"error"}, {"status":"error"}, {"type":"error"}.
func isErrorFrame(doc []byte) bool {
	if v, ok := lookup(doc, []string{"error"}); ok && string(v) != "null" && string(v) != "false" {
		return true
	}
	for _, k := range []string{"event", "status", "type"} {
		if v, ok := lookup(doc, []string{k}); ok && string(v) == `"error"` {
			return true
		}
	}
	return false
}

// lookup finds the value at pointer in compact, valid JSON.
func lookup(doc []byte, pointer []string) ([]byte, bool) {
	v := doc
	for _, tok := range pointer {
		if len(v) == 0 {
			return nil, false
		}
		switch v[0] {
		case '{':
			i := 1
			found := false
			for i < len(v) && v[i] != '}' {
				kEnd := skipValue(v, i)
				key := v[i:kEnd]
				i = kEnd + 1 // ':'
				vEnd := skipValue(v, i)
				if keyEquals(key, tok) {
					v = v[i:vEnd]
					found = true
					break
				}
				i = vEnd
				if i < len(v) && v[i] == ',' {
					i++
				}
			}
			if !found {
				return nil, false
			}
		case '[':
			idx, err := strconv.Atoi(tok)
			if err != nil || idx < 0 || (len(tok) > 1 && tok[0] == '0') {
				return nil, false
			}
			i := 1
			found := false
			for k := 0; i < len(v) && v[i] != ']'; k++ {
				end := skipValue(v, i)
				if k == idx {
					v = v[i:end]
					found = true
					break
				}
				i = end
				if i < len(v) && v[i] == ',' {
					i++
				}
			}
			if !found {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return v, true
}

// keyEquals compares a JSON string literal with s.
func keyEquals(lit []byte, s string) bool {
	if len(lit) < 2 {
		return false
	}
	raw := lit[1 : len(lit)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == s
	}
	var u string
	if err := json.Unmarshal(lit, &u); err != nil {
		return false
	}
	return u == s
}

// skipValue returns the end of the JSON value starting at i in compact,
// valid JSON.
func skipValue(v []byte, i int) int {
	if i >= len(v) {
		return len(v)
	}
	switch v[i] {
	case '"':
		for j := i + 1; j < len(v); j++ {
			switch v[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(v)
	case '{', '[':
		depth := 0
		for j := i; j < len(v); j++ {
			switch v[j] {
			case '"':
				j = skipValue(v, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(v)
	default:
		j := i
		for j < len(v) && v[j] != ',' && v[j] != '}' && v[j] != ']' {
			j++
		}
		return j
	}
}
