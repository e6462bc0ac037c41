package capture

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The tolerant readers of HAR fields whose type varies between writers.

// decodeBase64 decodes a binary message; data that is not base64 is kept
// as it is.
func decodeBase64(s string) []byte {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return []byte(s)
}

// guessPayload handles a message without opcode: text, unless it is not
// JSON and decodes as base64 into something that is clearly binary (a
// gzip or zlib stream, or JSON).
func guessPayload(s string) ([]byte, bool) {
	if json.Valid([]byte(s)) || len(s) < 8 || len(s)%4 != 0 {
		return []byte(s), false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return []byte(s), false
	}
	if compression(b) != "" || json.Valid(b) {
		return b, true
	}
	return []byte(s), false
}

// parseTime reads a message time: seconds since the epoch (Chrome,
// mitmproxy), milliseconds (Playwright: any value above 1e11), an RFC 3339
// string, or nothing usable (-1 with Playwright's omitTiming).
func parseTime(raw json.RawMessage) time.Time {
	if v, ok := parseNumber(raw); ok {
		return epoch(v)
	}
	if s := rawString(raw); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			return epoch(v)
		}
	}
	return time.Time{}
}

func epoch(v float64) time.Time {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || v > 1e17:
		return time.Time{}
	case v > 1e11:
		return time.UnixMicro(int64(v * 1e3))
	}
	return time.UnixMicro(int64(v * 1e6))
}

// parseNumber reads a JSON number (or a string holding one).
func parseNumber(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return 0, false
	}
	if raw[0] == '"' {
		v, err := strconv.ParseFloat(rawString(raw), 64)
		return v, err == nil
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	return v, err == nil
}

func parseStatus(raw json.RawMessage) int {
	v, ok := parseNumber(raw)
	if !ok || v < 0 || v > 999 {
		return 0
	}
	return int(v)
}

// rawString returns the string a raw JSON value holds; other values give
// "" (data: null), except numbers and booleans, which give their text.
func rawString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return ""
	}
	if raw[0] != '"' {
		if raw[0] == '{' || raw[0] == '[' {
			return string(raw) // a writer that embedded JSON as JSON
		}
		return string(raw)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// parseHeaders reads headers (or cookies) written as HAR's list of
// {name, value} or as an object; HTTP/2 pseudo-headers are dropped.
func parseHeaders(raw json.RawMessage) []Header {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	var out []Header
	switch raw[0] {
	case '[':
		var list []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal(raw, &list) != nil {
			return nil
		}
		for _, h := range list {
			out = append(out, Header{Name: h.Name, Value: rawString(h.Value)})
		}
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return nil
		}
		for k, v := range m {
			out = append(out, Header{Name: k, Value: rawString(v)})
		}
		sortHeaders(out)
	}
	kept := out[:0]
	for _, h := range out {
		if h.Name == "" || strings.HasPrefix(h.Name, ":") {
			continue
		}
		kept = append(kept, h)
	}
	return kept
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
