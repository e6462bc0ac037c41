package capture

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Matcher is the relay's frame matcher as a config writes it: a JSON
// pointer that must exist (and not be null), or whose value must equal
// one of Equals. A text frame that is not JSON matches when its text
// equals one of Equals (DESIGN §1, "Matcher semantics").
type Matcher struct {
	Match  string
	Equals []any // string, json.Number or bool; nil: the value must exist
}

// IsPointer reports a matcher that is only a pointer (the form every
// relay version accepts for accept).
func (m Matcher) IsPointer() bool { return m.Equals == nil }

// Pong answers app-level pings: frames that match get Reply, with
// {value} replaced by the raw JSON at Match.
type Pong struct {
	Matcher
	Reply string
}

// matches evaluates m on a record as the relay does.
func (m Matcher) matches(r *record) bool {
	switch r.kind {
	case recText:
		for _, e := range m.Equals {
			if s, ok := e.(string); ok && s == string(r.doc) {
				return true
			}
		}
		return false
	case recJSON:
	default:
		return false
	}
	v, ok := lookupNodes(r.nodes, r.doc, m.Match)
	if !ok || string(v) == "null" {
		return false
	}
	if m.Equals == nil {
		return true
	}
	for _, e := range m.Equals {
		if jsonEqual(v, equalsRaw(e)) {
			return true
		}
	}
	return false
}

// lookupNodes returns the raw value at ptr.
func lookupNodes(nodes []node, doc []byte, ptr string) ([]byte, bool) {
	n, ok := find(nodes, ptr)
	if !ok {
		return nil, false
	}
	return n.raw(doc), true
}

// equalsRaw is an Equals value as JSON.
func equalsRaw(e any) []byte {
	switch v := e.(type) {
	case json.Number:
		return []byte(v)
	case bool:
		return []byte(strconv.FormatBool(v))
	case string:
		b, _ := json.Marshal(v)
		return b
	}
	return nil
}

// equalsValue turns a captured scalar into an Equals value.
func equalsValue(n node) any {
	switch n.kind {
	case 's':
		return n.str
	case 'n':
		return json.Number(n.str)
	case 'b':
		return n.str == "true"
	}
	return nil
}

func (m Matcher) String() string {
	if m.Equals == nil {
		return m.Match
	}
	var vals []string
	for _, e := range m.Equals {
		vals = append(vals, string(equalsRaw(e)))
	}
	ptr := m.Match
	if ptr == "" {
		ptr = `""`
	}
	return ptr + " = " + strings.Join(vals, " | ")
}
