package relay

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A template is a frame (or URL) with placeholders, parsed once:
//
//	{symbol}        the symbol's ref
//	{symbol_lower}  the ref in lower case
//	{symbol_upper}  the ref in upper case
//	{id}            an integer, new for every frame sent on a connection
//	{unix}          the time in Unix seconds
//	{unix_ms}       the time in Unix milliseconds
//	{random}        16 random hex digits
//	{value}         (pong replies) the raw JSON of the ping's value
//
// Anything else in braces, such as the JSON of the frame itself, is text.
type template struct {
	src   string
	parts []tmplPart
}

type tmplPart struct {
	lit string
	v   tmplVar
}

type tmplVar uint8

const (
	varNone tmplVar = iota
	varSymbol
	varSymbolLower
	varSymbolUpper
	varID
	varUnix
	varUnixMS
	varRandom
	varValue
)

var tmplVars = map[string]tmplVar{
	"symbol": varSymbol, "symbol_lower": varSymbolLower, "symbol_upper": varSymbolUpper,
	"id": varID, "unix": varUnix, "unix_ms": varUnixMS, "random": varRandom, "value": varValue,
}

// escaping says how a ref is written into a template.
type escaping uint8

const (
	escJSON escaping = iota // inside a JSON string (frames)
	escURL                  // percent-encoded (URLs)
	escRaw                  // as it is (route values compared with decoded JSON strings)
)

func parseTemplate(s string) template {
	t := template{src: s}
	lit := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			break
		}
		v, ok := tmplVars[s[i+1:i+end]]
		if !ok {
			continue
		}
		if lit < i {
			t.parts = append(t.parts, tmplPart{lit: s[lit:i]})
		}
		t.parts = append(t.parts, tmplPart{v: v})
		i += end
		lit = i + 1
	}
	if lit < len(s) {
		t.parts = append(t.parts, tmplPart{lit: s[lit:]})
	}
	return t
}

// has reports whether the template uses v.
func (t template) has(v tmplVar) bool {
	for _, p := range t.parts {
		if p.v == v {
			return true
		}
	}
	return false
}

// perSymbol reports whether the template names the symbol.
func (t template) perSymbol() bool {
	return t.has(varSymbol) || t.has(varSymbolLower) || t.has(varSymbolUpper)
}

// tmplArgs are the values a template is rendered with.
type tmplArgs struct {
	ref    string
	nextID func() uint64 // nil: {id} is 0
	value  []byte        // {value}, raw JSON
	now    time.Time     // zero: time.Now()
	id     uint64        // set by render when {id} was used
}

// render appends the template with args to dst; refs are written with esc.
func (t template) render(dst []byte, a *tmplArgs, esc escaping) []byte {
	for _, p := range t.parts {
		switch p.v {
		case varNone:
			dst = append(dst, p.lit...)
		case varSymbol:
			dst = appendRef(dst, a.ref, esc)
		case varSymbolLower:
			dst = appendRef(dst, strings.ToLower(a.ref), esc)
		case varSymbolUpper:
			dst = appendRef(dst, strings.ToUpper(a.ref), esc)
		case varID:
			if a.id == 0 && a.nextID != nil {
				a.id = a.nextID()
			}
			dst = strconv.AppendUint(dst, a.id, 10)
		case varUnix, varUnixMS:
			now := a.now
			if now.IsZero() {
				now = time.Now()
			}
			if p.v == varUnix {
				dst = strconv.AppendInt(dst, now.Unix(), 10)
			} else {
				dst = strconv.AppendInt(dst, now.UnixMilli(), 10)
			}
		case varRandom:
			var b [8]byte
			_, _ = rand.Read(b[:])
			dst = hex.AppendEncode(dst, b[:])
		case varValue:
			dst = append(dst, a.value...)
		}
	}
	return dst
}

func appendRef(dst []byte, ref string, esc escaping) []byte {
	switch esc {
	case escJSON:
		q := appendJSONString(nil, ref)
		return append(dst, q[1:len(q)-1]...)
	case escURL:
		const hexd = "0123456789ABCDEF"
		for i := 0; i < len(ref); i++ {
			c := ref[i]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
				dst = append(dst, c)
			} else {
				dst = append(dst, '%', hexd[c>>4], hexd[c&15])
			}
		}
		return dst
	}
	return append(dst, ref...)
}

// renderString renders t for ref as a string (URLs, route values).
func (t template) renderString(ref string, esc escaping) string {
	return string(t.render(nil, &tmplArgs{ref: ref}, esc))
}

// pointerTemplate is resolve's ws_url: {/json/pointer} parts are replaced by
// the values in an HTTP response (strings unquoted, numbers as written), and
// the usual variables ({random}, {unix}…) work too.
type pointerTemplate struct {
	parts []ptrPart
}

type ptrPart struct {
	lit  template
	ptr  []string
	isPt bool
	src  string
}

func parsePointerTemplate(s string) (pointerTemplate, error) {
	var t pointerTemplate
	for s != "" {
		i := strings.Index(s, "{/")
		if i < 0 {
			t.parts = append(t.parts, ptrPart{lit: parseTemplate(s)})
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return t, fmt.Errorf("unclosed {/pointer} in %q", truncate(s, 80))
		}
		if i > 0 {
			t.parts = append(t.parts, ptrPart{lit: parseTemplate(s[:i])})
		}
		p, err := parsePointer(s[i+1 : i+end])
		if err != nil {
			return t, err
		}
		t.parts = append(t.parts, ptrPart{ptr: p, isPt: true, src: s[i+1 : i+end]})
		s = s[i+end+1:]
	}
	return t, nil
}

// render fills the template from doc (compact JSON).
func (t pointerTemplate) render(doc []byte) (string, error) {
	var b []byte
	for _, p := range t.parts {
		if !p.isPt {
			b = p.lit.render(b, &tmplArgs{}, escRaw)
			continue
		}
		v, ok := lookup(doc, p.ptr)
		if !ok {
			return "", fmt.Errorf("the response has no %s", p.src)
		}
		if len(v) > 0 && v[0] == '"' {
			s, err := unquote(v)
			if err != nil {
				return "", fmt.Errorf("%s: %w", p.src, err)
			}
			b = append(b, s...)
		} else {
			b = append(b, v...)
		}
	}
	return string(b), nil
}
