package capture

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// node is one value inside a JSON document, with its place in the
// original bytes so that a template can be cut out of the frame as it was
// sent (key order and spacing kept).
type node struct {
	ptr        string // RFC 6901 pointer ("" = the document)
	depth      int
	kind       byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	start, end int  // raw = doc[start:end]
	str        string
	size       int // members of an object or array
}

// walkJSON lists every value of doc (which must be valid JSON) in document
// order: containers before their members. It returns nil for invalid JSON.
func walkJSON(doc []byte) []node {
	if !json.Valid(doc) {
		return nil
	}
	w := &walker{doc: doc}
	w.value(w.skipSpace(0), "", 0)
	return w.nodes
}

type walker struct {
	doc   []byte
	nodes []node
}

func (w *walker) skipSpace(i int) int {
	for i < len(w.doc) && (w.doc[i] == ' ' || w.doc[i] == '\t' || w.doc[i] == '\n' || w.doc[i] == '\r') {
		i++
	}
	return i
}

// value records the value at i and returns the index after it.
func (w *walker) value(i int, ptr string, depth int) int {
	idx := len(w.nodes)
	w.nodes = append(w.nodes, node{ptr: ptr, depth: depth, start: i})
	n := &w.nodes[idx]
	var end int
	switch c := w.doc[i]; {
	case c == '{':
		n.kind = 'o'
		j := w.skipSpace(i + 1)
		size := 0
		for w.doc[j] != '}' {
			kEnd := stringEnd(w.doc, j)
			var key string
			_ = json.Unmarshal(w.doc[j:kEnd], &key)
			j = w.skipSpace(kEnd)
			j = w.skipSpace(j + 1) // ':'
			j = w.skipSpace(w.value(j, ptr+"/"+escapePointer(key), depth+1))
			size++
			if w.doc[j] == ',' {
				j = w.skipSpace(j + 1)
			}
		}
		end = j + 1
		w.nodes[idx].size = size
	case c == '[':
		n.kind = 'a'
		j := w.skipSpace(i + 1)
		k := 0
		for w.doc[j] != ']' {
			j = w.skipSpace(w.value(j, ptr+"/"+strconv.Itoa(k), depth+1))
			k++
			if w.doc[j] == ',' {
				j = w.skipSpace(j + 1)
			}
		}
		end = j + 1
		w.nodes[idx].size = k
	case c == '"':
		n.kind = 's'
		end = stringEnd(w.doc, i)
		_ = json.Unmarshal(w.doc[i:end], &n.str)
	default:
		end = i
		for end < len(w.doc) && !strings.ContainsRune(" \t\r\n,]}", rune(w.doc[end])) {
			end++
		}
		switch c {
		case 't', 'f':
			n.kind = 'b'
		case 'n':
			n.kind = 'z'
		default:
			n.kind = 'n'
		}
		n.str = string(w.doc[i:end])
	}
	w.nodes[idx].end = end
	return end
}

// stringEnd returns the index after the JSON string starting at i.
func stringEnd(doc []byte, i int) int {
	for j := i + 1; j < len(doc); j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(doc)
}

// escapePointer escapes one pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// isLeaf reports whether n is a scalar.
func (n node) isLeaf() bool { return n.kind != 'o' && n.kind != 'a' }

// raw returns n's bytes in doc.
func (n node) raw(doc []byte) []byte { return doc[n.start:n.end] }

// find returns the node at ptr.
func find(nodes []node, ptr string) (node, bool) {
	for _, n := range nodes {
		if n.ptr == ptr {
			return n, true
		}
	}
	return node{}, false
}

// leafKey is a leaf's pointer and kind: two documents have the same shape
// when their leaf keys are equal.
func shape(nodes []node) string {
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(n.ptr)
		b.WriteByte(n.kind)
		b.WriteByte(0)
	}
	return b.String()
}

// skeleton is a coarse shape for clustering received frames: the set of
// object keys down to depth 3, with array indices folded into "*".
func skeleton(nodes []node) string {
	var keys []string
	for _, n := range nodes {
		if n.depth == 0 || n.depth > 3 {
			continue
		}
		keys = append(keys, foldIndices(n.ptr))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	return strings.Join(keys, " ")
}

// foldIndices replaces numeric pointer tokens by "*".
func foldIndices(ptr string) string {
	toks := strings.Split(ptr, "/")
	for i, t := range toks {
		if i > 0 && t != "" && strings.Trim(t, "0123456789") == "" {
			toks[i] = "*"
		}
	}
	return strings.Join(toks, "/")
}

// topKeys returns the keys of an object document (or "[n]" for an array
// of n), for reports.
func topKeys(doc []byte) string {
	nodes := walkJSON(doc)
	if len(nodes) == 0 {
		return ""
	}
	if nodes[0].kind == 'a' {
		if nodes[0].size > 0 {
			if first, ok := find(nodes, "/0"); ok && first.kind == 's' {
				return "[" + strconv.Quote(truncateString(first.str, 24)) + ",…]"
			}
		}
		return "[" + strconv.Itoa(nodes[0].size) + "]"
	}
	if nodes[0].kind != 'o' {
		return string(nodes[0].kind)
	}
	var keys []string
	for _, n := range nodes {
		if n.depth == 1 {
			keys = append(keys, strings.TrimPrefix(n.ptr, "/"))
		}
	}
	return "{" + strings.Join(keys, ",") + "}"
}

// compact returns doc without insignificant space.
func compact(doc []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, doc) != nil {
		return doc
	}
	return b.Bytes()
}

// jsonEqual compares two JSON values; a number and a string holding the
// same number are equal (the relay's matcher semantics).
func jsonEqual(a, b []byte) bool {
	a, b = compact(a), compact(b)
	if bytes.Equal(a, b) {
		return true
	}
	return scalarText(a) != "" && scalarText(a) == scalarText(b)
}

// scalarText is the text of a string or number value ("" otherwise).
func scalarText(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
		return ""
	}
	if v[0] == '-' || (v[0] >= '0' && v[0] <= '9') {
		return string(v)
	}
	return ""
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// sortHeaders orders headers by name (for writers that give an object).
func sortHeaders(hs []Header) {
	slices.SortStableFunc(hs, func(a, b Header) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
}
