package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
)

// Matcher recognises a frame by the value at a JSON pointer.
//
// Without Equals the value at Match must exist and not be null. With
// Equals it must equal one of them by JSON equality, where a number and a
// string holding the same number are equal (64008 matches "64008"). A text
// frame that is not JSON matches when its text equals one of Equals.
type Matcher struct {
	Match  string            // JSON pointer; "" is the whole document
	Equals []json.RawMessage // any of these JSON values; none: exists, not null
}

// Exists returns a Matcher for "the value at pointer exists and is not null".
func Exists(pointer string) Matcher { return Matcher{Match: pointer} }

// Equals returns a Matcher for "the value at pointer equals one of values"
// (each marshalled to JSON).
func Equals(pointer string, values ...any) Matcher {
	m := Matcher{Match: pointer}
	for _, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("relay.Equals: %v", err))
		}
		m.Equals = append(m.Equals, b)
	}
	return m
}

// matcher is a compiled Matcher.
type matcher struct {
	ptr    []string
	values []jsonValue
	texts  []string // what a non-JSON text frame must be
}

// jsonValue is one compiled equals value.
type jsonValue struct {
	raw []byte   // compact JSON
	str *string  // the string, for JSON strings
	num *big.Rat // the number, for numbers and strings that hold one
}

func compileMatcher(m Matcher) (matcher, error) {
	var c matcher
	var err error
	if c.ptr, err = parsePointer(m.Match); err != nil {
		return c, &FieldError{Key: "match", Err: err}
	}
	for _, raw := range m.Equals {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return c, &FieldError{Key: "equals", Err: fmt.Errorf("%s is not a JSON value", truncate(string(raw), 64))}
		}
		v := compileValue(buf.Bytes())
		c.values = append(c.values, v)
		switch {
		case v.str != nil:
			c.texts = append(c.texts, *v.str)
		case v.num != nil:
			c.texts = append(c.texts, string(v.raw))
		}
	}
	return c, nil
}

func compileValue(raw []byte) jsonValue {
	v := jsonValue{raw: raw}
	if len(raw) > 0 && raw[0] == '"' {
		if s, err := unquote(raw); err == nil {
			v.str = &s
			v.num = parseNumber(s)
		}
	} else if len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		v.num = parseNumber(string(raw))
	}
	return v
}

func parseNumber(s string) *big.Rat {
	if s == "" || len(s) > 64 {
		return nil
	}
	c := s[0]
	if c != '-' && (c < '0' || c > '9') {
		return nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil
	}
	return r
}

// matchDoc tests compact JSON.
func (c *matcher) matchDoc(doc []byte) bool {
	v, ok := lookup(doc, c.ptr)
	if !ok {
		return false
	}
	if len(c.values) == 0 {
		return string(v) != "null"
	}
	for i := range c.values {
		if c.values[i].equal(v) {
			return true
		}
	}
	return false
}

// matchText tests a text frame that is not JSON.
func (c *matcher) matchText(text []byte) bool {
	for _, t := range c.texts {
		if string(bytes.TrimSpace(text)) == t {
			return true
		}
	}
	return false
}

// equal compares the compiled value with v (compact JSON).
func (e *jsonValue) equal(v []byte) bool {
	if bytes.Equal(e.raw, v) {
		return true
	}
	if len(v) == 0 {
		return false
	}
	switch c := v[0]; {
	case c == '"':
		if e.str == nil && e.num == nil {
			return false
		}
		s, err := unquote(v)
		if err != nil {
			return false
		}
		if e.str != nil && *e.str == s {
			return true
		}
		if e.num != nil {
			if n := parseNumber(s); n != nil && n.Cmp(e.num) == 0 {
				return true
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		if e.num != nil {
			if n := parseNumber(string(v)); n != nil && n.Cmp(e.num) == 0 {
				return true
			}
		}
	case c == '{' || c == '[':
		return canonicalJSON(v) == canonicalJSON(e.raw)
	}
	return false
}

// canonicalJSON re-encodes an object or array with sorted keys, so that
// {"a":1,"b":2} equals {"b":2,"a":1}. Numbers keep their text.
func canonicalJSON(v []byte) string {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if dec.Decode(&x) != nil {
		return string(v)
	}
	b, err := json.Marshal(x)
	if err != nil {
		return string(v)
	}
	return string(b)
}

// unquote decodes a JSON string literal.
func unquote(lit []byte) (string, error) {
	if len(lit) >= 2 && bytes.IndexByte(lit, '\\') < 0 {
		return string(lit[1 : len(lit)-1]), nil
	}
	var s string
	err := json.Unmarshal(lit, &s)
	return s, err
}
