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
	// FrameIgnored is counted and logged at debug: acks, heartbeats,
	// anything without the accept pointer.
	FrameIgnored
	// FrameError is an upstream error frame (ignored, but logged clearly).
	FrameError
)

// FrameResult is the outcome of FrameRules.Handle.
type FrameResult struct {
	Kind FrameKind
	// Data is the compact JSON to publish (FrameQuote) or the error frame
	// (FrameError). It aliases an internal buffer: copy it before the next
	// Handle call.
	Data []byte
	// Reply is the text to send back for FramePing.
	Reply []byte
}

// FrameRules turn raw upstream frames into quotes. They hold a scratch
// buffer: use one FrameRules per connection (not safe for concurrent use).
type FrameRules struct {
	accept, extract, pongMatch []string
	hasAccept, hasExtract      bool
	hasPong                    bool
	pongReply                  string
	decompress                 bool
	maxSize                    int64

	buf bytes.Buffer
	inf bytes.Buffer
	src bytes.Reader
	// Inflaters are kept and reset: a fresh one costs ~40 KB per frame.
	gz *gzip.Reader
	zl io.ReadCloser
	fl io.ReadCloser
}

// FrameConfig configures NewFrameRules.
type FrameConfig struct {
	Accept     string // JSON pointer that must exist for a quote; "" = every JSON frame
	Extract    string // JSON pointer of the published part; "" = whole frame
	PongMatch  string // JSON pointer that marks an app-level ping
	PongReply  string // reply template; {value} = the raw JSON at PongMatch
	Decompress string // "auto" (default) or "none"
	MaxSize    int64  // inflated size cap; default 1 MiB
}

// NewFrameRules validates cfg and returns its rules.
func NewFrameRules(cfg FrameConfig) (*FrameRules, error) {
	r := &FrameRules{maxSize: cfg.MaxSize, pongReply: cfg.PongReply}
	if r.maxSize <= 0 {
		r.maxSize = 1 << 20
	}
	var err error
	if r.accept, err = ParsePointer(cfg.Accept); err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	if r.extract, err = ParsePointer(cfg.Extract); err != nil {
		return nil, fmt.Errorf("extract: %w", err)
	}
	if r.pongMatch, err = ParsePointer(cfg.PongMatch); err != nil {
		return nil, fmt.Errorf("pong.match: %w", err)
	}
	r.hasAccept, r.hasExtract, r.hasPong = cfg.Accept != "", cfg.Extract != "", cfg.PongMatch != ""
	if r.hasPong && cfg.PongReply == "" {
		return nil, fmt.Errorf("pong.reply: required with pong.match")
	}
	switch cfg.Decompress {
	case "", DecompressAuto:
		r.decompress = true
	case DecompressNone:
	default:
		return nil, fmt.Errorf("decompress: %q is not auto or none", cfg.Decompress)
	}
	return r, nil
}

// ParsePointer parses an RFC 6901 JSON pointer ("" is the whole document).
func ParsePointer(p string) ([]string, error) {
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

// Handle classifies one frame. binary tells the WebSocket message type.
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
		return FrameResult{Kind: FrameIgnored}, ErrNotJSON
	}
	doc := r.buf.Bytes()
	if r.hasPong {
		if v, ok := lookup(doc, r.pongMatch); ok {
			return FrameResult{Kind: FramePing, Reply: []byte(strings.ReplaceAll(r.pongReply, "{value}", string(v)))}, nil
		}
	}
	if r.hasAccept {
		if _, ok := lookup(doc, r.accept); !ok {
			if isErrorFrame(doc) {
				return FrameResult{Kind: FrameError, Data: doc}, nil
			}
			return FrameResult{Kind: FrameIgnored}, nil
		}
	}
	if r.hasExtract {
		v, ok := lookup(doc, r.extract)
		if !ok {
			return FrameResult{Kind: FrameIgnored}, nil
		}
		doc = v
	}
	return FrameResult{Kind: FrameQuote, Data: doc}, nil
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

// ExpandTemplate replaces {symbol} in tmpl by ref, escaped as the inside of
// a JSON string, so that a ref cannot break out of the frame.
func ExpandTemplate(tmpl, ref string) string {
	q := appendJSONString(nil, ref)
	return strings.ReplaceAll(tmpl, "{symbol}", string(q[1:len(q)-1]))
}
