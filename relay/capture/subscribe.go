package capture

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/wsrelay/wsrelay/relay"
)

// ErrCannotRelay means the capture holds nothing the relay could relay as
// it stands, or not enough to say how; the text says what was found and
// why, in one line.
var ErrCannotRelay = errors.New("cannot relay this capture")

// subscribeResult is the inferred subscribe side of an upstream.
type subscribeResult struct {
	templates   []string
	unsubscribe []string
	symbols     []relay.Symbol
	refs        []string // the symbols as the captured frames spell them
	note        Note
	unsubNote   Note
	symbolsNote Note
	leftOut     []string // frames the page sent that the config leaves out, and why
	redacted    []string // keys whose values were replaced by REDACTED
	urlTemplate string   // the URL with {symbol}, for one stream per symbol
}

// sendDoc is one distinct frame the page sent.
type sendDoc struct {
	doc   []byte
	nodes []node
	recs  []*record // every record that sent it
}

// idKeys are JSON keys that carry a request id rather than a symbol.
var idKeys = map[string]bool{"id": true, "reqid": true, "req_id": true, "requestid": true, "request_id": true,
	"cid": true, "nonce": true, "seq": true, "sequence": true, "invocationid": true, "messageid": true,
	"msgid": true, "rid": true, "i": true}

// timeKeys are JSON keys that carry the client's clock.
var timeKeys = map[string]bool{"ts": true, "timestamp": true, "time": true, "t": true}

// leafKey returns the last non-index token of a pointer, lowercased.
func leafKey(ptr string) string {
	toks := strings.Split(ptr, "/")
	for i := len(toks) - 1; i >= 1; i-- {
		if t := toks[i]; t != "" && strings.Trim(t, "0123456789") != "" {
			return strings.ToLower(t)
		}
	}
	return ""
}

// authFrame reports a login frame: one that carries a signature (the
// relay cannot compute one; HAR research §4.3).
func authFrame(nodes []node) bool {
	for _, n := range nodes {
		switch leafKey(n.ptr) {
		case "sign", "signature", "hmac", "sig":
			if n.isLeaf() && n.str != "" {
				return true
			}
		}
	}
	return false
}

// unsubFrame reports a frame that ends a subscription.
func unsubFrame(nodes []node) bool {
	for _, n := range nodes {
		if strings.Contains(strings.ToLower(n.ptr), "unsub") ||
			(n.kind == 's' && strings.Contains(strings.ToLower(n.str), "unsub")) {
			return true
		}
	}
	return false
}

// family is a set of distinct frames of the same shape: the varying leaves
// become template variables.
type family struct {
	docs []sendDoc
	refs []string // the symbol of each doc
	cuts [][]cut  // the cuts of each doc
	conf Confidence
	why  []string
	ids  bool
}

// templateFamily finds how the docs (same shape, distinct) differ: leaves
// that hold a symbol, request ids and clock values. ok is false when no
// leaf holds a symbol.
func templateFamily(docs []sendDoc) (family, bool) {
	f := family{docs: docs, conf: High, cuts: make([][]cut, len(docs)), refs: make([]string, len(docs))}
	if len(docs) < 2 {
		return f, false
	}
	type carrier struct {
		idx            int // node index
		vals           []string
		prefix, suffix string
		numeric        bool
	}
	var carriers []carrier
	for i, n := range docs[0].nodes {
		if !n.isLeaf() {
			continue
		}
		vals := make([]string, len(docs))
		same := true
		for j, d := range docs {
			if i >= len(d.nodes) {
				return f, false
			}
			vals[j] = d.nodes[i].str
			if vals[j] != vals[0] {
				same = false
			}
		}
		if same {
			continue
		}
		key := leafKey(n.ptr)
		// A request id: digits that change, under an id-like key (HTX "id1",
		// Binance 1, 2, 3, SignalR invocationId "0", "1").
		if idKeys[key] {
			p, s := vals[0], vals[0]
			for _, v := range vals[1:] {
				p, s = commonPrefix(p, v), commonSuffix(s, v)
			}
			p = strings.TrimRight(p, "0123456789")
			s = strings.TrimLeft(s, "0123456789")
			digits := true
			for _, v := range vals {
				mid := strings.TrimSuffix(strings.TrimPrefix(v, p), s)
				if len(v) < len(p)+len(s) || mid == "" || strings.Trim(mid, "0123456789") != "" {
					digits = false
				}
			}
			if digits {
				for j, d := range docs {
					c := cut{n: d.nodes[i], prefix: p, suffix: s, placeholder: "{id}"}
					c.whole = n.kind == 'n'
					f.cuts[j] = append(f.cuts[j], c)
				}
				f.ids = true
				f.why = append(f.why, fmt.Sprintf("%s is a request id ({id})", n.ptr))
				continue
			}
		}
		if timeKeys[key] || (n.kind == 'n' && epochLike(vals[0], docs[0].recs[0].at)) {
			ph := "{unix}"
			if len(vals[0]) == 13 {
				ph = "{unix_ms}"
			}
			for j, d := range docs {
				f.cuts[j] = append(f.cuts[j], cut{n: d.nodes[i], placeholder: ph, whole: n.kind == 'n'})
			}
			f.ids = true
			f.why = append(f.why, fmt.Sprintf("%s is the client's clock (%s)", n.ptr, ph))
			continue
		}
		if n.kind == 'n' {
			carriers = append(carriers, carrier{idx: i, vals: vals, numeric: true})
			continue
		}
		if n.kind != 's' {
			continue
		}
		p, s, ok := varyingPart(vals)
		if !ok {
			continue
		}
		carriers = append(carriers, carrier{idx: i, vals: vals, prefix: p, suffix: s})
	}
	if len(carriers) == 0 {
		return f, false // f.cuts still holds ids and clock values
	}
	primary := carriers[0]
	for j, v := range primary.vals {
		f.refs[j] = v[len(primary.prefix) : len(v)-len(primary.suffix)]
	}
	for ci, c := range carriers {
		explained := true
		phs := make([]string, len(docs))
		for j, v := range c.vals {
			part := v
			if !c.numeric {
				part = v[len(c.prefix) : len(v)-len(c.suffix)]
			}
			ph, ok := casePlaceholder(f.refs[j], part)
			if !ok {
				explained = false
				break
			}
			phs[j] = ph
		}
		if explained && !slices.ContainsFunc(phs, func(p string) bool { return p != phs[0] }) {
			for j, d := range docs {
				f.cuts[j] = append(f.cuts[j], cut{n: d.nodes[c.idx], prefix: c.prefix, suffix: c.suffix, placeholder: phs[0], whole: c.numeric})
			}
			if ci == 0 {
				f.why = append(f.why, fmt.Sprintf("%s holds the symbol", docs[0].nodes[c.idx].ptr))
			} else {
				f.why = append(f.why, fmt.Sprintf("%s holds it too (%s)", docs[0].nodes[c.idx].ptr, phs[0]))
			}
			continue
		}
		// A second leaf varies in a way the symbol does not explain: the
		// first frame's value is kept.
		f.conf = lower(f.conf, Medium)
		f.why = append(f.why, fmt.Sprintf("%s also varies (%s, %s) and is kept as first sent", docs[0].nodes[c.idx].ptr,
			strconv.Quote(truncateString(c.vals[0], 24)), strconv.Quote(truncateString(c.vals[1], 24))))
	}
	return f, true
}

// symbolCuts finds where ref occurs in a frame (string leaves holding it
// as a token, in any case, and number leaves equal to it).
func symbolCuts(nodes []node, ref string) []cut {
	var cuts []cut
	for _, n := range nodes {
		switch n.kind {
		case 's':
			i := findToken(n.str, ref, true)
			if i < 0 {
				continue
			}
			got := n.str[i : i+len(ref)]
			ph, ok := casePlaceholder(ref, got)
			if !ok {
				ph = "{symbol}"
			}
			cuts = append(cuts, cut{n: n, prefix: n.str[:i], suffix: n.str[i+len(ref):], placeholder: ph})
		case 'n':
			if n.str == ref {
				cuts = append(cuts, cut{n: n, placeholder: "{symbol}", whole: true})
			}
		}
	}
	return cuts
}

// secretCuts replaces credential values in a frame that is kept.
func secretCuts(nodes []node, skip []cut) ([]cut, []string) {
	var cuts []cut
	var keys []string
	for _, n := range nodes {
		if n.depth == 0 || !n.isLeaf() || n.kind == 'z' || n.kind == 'b' {
			continue
		}
		if slices.ContainsFunc(skip, func(c cut) bool { return c.n.start == n.start }) {
			continue
		}
		if secretLeaf(n) || (n.kind == 's' && tokenLike(n.str)) {
			cuts = append(cuts, cut{n: n, placeholder: `"` + Redacted + `"`, whole: true})
			keys = append(keys, n.ptr)
		}
	}
	return cuts, keys
}

// batchFamily handles one frame that subscribes several symbols at once
// (an array of two or more similar items): the template keeps one item.
func batchFamily(d sendDoc) (family, string, bool) {
	for _, arr := range d.nodes {
		if arr.kind != 'a' || arr.size < 2 || arr.depth == 0 {
			continue
		}
		var items []sendDoc
		for _, n := range d.nodes {
			if n.depth == arr.depth+1 && n.start >= arr.start && n.end <= arr.end {
				raw := n.raw(d.doc)
				items = append(items, sendDoc{doc: raw, nodes: walkJSON(raw), recs: d.recs})
			}
		}
		if len(items) < 2 {
			continue
		}
		sh := shape(items[0].nodes)
		if slices.ContainsFunc(items, func(it sendDoc) bool { return shape(it.nodes) != sh }) {
			continue
		}
		f, ok := templateFamily(items)
		if !ok {
			continue
		}
		item := render(items[0].doc, f.cuts[0])
		tmpl := string(d.doc[:arr.start]) + "[" + item + "]" + string(d.doc[arr.end:])
		return f, tmpl, true
	}
	return family{}, "", false
}
