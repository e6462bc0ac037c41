package capture

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wsrelay/wsrelay/relay"
)

// acceptResult is how quotes are told from other frames, and what of
// them is published.
type acceptResult struct {
	accept         Matcher
	acceptNote     Note
	extract        string
	extractNote    Note
	quotes, others int
}

// cluster is received frames of one kind.
type cluster struct {
	key      string
	recs     []*record
	distinct int
	symbol   bool // some frame names a subscribed symbol
}

// kindKey groups received frames: the top-level keys, plus the event name
// of a Socket.IO event array and the type and target of a SignalR record
// (the same keys carry different events there).
func kindKey(r *record, framing string) string {
	var keys []string
	for _, n := range r.nodes {
		if n.depth == 1 {
			keys = append(keys, foldIndices(n.ptr))
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	k := strings.Join(keys, " ")
	switch framing {
	case relay.FramingSocketIO:
		if n, ok := find(r.nodes, "/0"); ok {
			k += " event=" + n.str
		}
	case relay.FramingSignalR:
		if n, ok := find(r.nodes, "/type"); ok {
			k += " type=" + n.str
		}
		if n, ok := find(r.nodes, "/target"); ok {
			k += " target=" + n.str
		}
	}
	if len(r.nodes) > 0 && r.nodes[0].kind != 'o' && r.nodes[0].kind != 'a' {
		k = "scalar"
	}
	return k
}

// mentions reports whether r names one of the symbols.
func mentions(r *record, refs []string) bool {
	for _, n := range r.nodes {
		for _, ref := range refs {
			if (n.kind == 's' && findToken(n.str, ref, true) >= 0) || (n.kind == 'n' && n.str == ref) {
				return true
			}
		}
	}
	return false
}

// inferAccept picks the received frames that are quotes (the most
// frequent kind that names a symbol and changes) and the simplest rule
// that holds for all of them and for none of the others.
func inferAccept(recs [][]record, framing string, refs []string) (acceptResult, error) {
	var res acceptResult
	clusters := map[string]*cluster{}
	var order []string
	var pool []*record
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if r.sent || r.kind != recJSON || r.role != roleNone {
				continue
			}
			pool = append(pool, r)
			k := kindKey(r, framing)
			c := clusters[k]
			if c == nil {
				c = &cluster{key: k}
				clusters[k] = c
				order = append(order, k)
			}
			c.recs = append(c.recs, r)
		}
	}
	if len(pool) == 0 {
		return res, fmt.Errorf("%w: the server sent no JSON frame besides pings and heartbeats", ErrCannotRelay)
	}
	var best *cluster
	for _, k := range order {
		c := clusters[k]
		seen := map[string]bool{}
		for _, r := range c.recs {
			seen[string(r.doc)] = true
			if !c.symbol && mentions(r, refs) {
				c.symbol = true
			}
		}
		c.distinct = len(seen)
		if best == nil || better(c, best) {
			best = c
		}
	}
	quote := map[*record]bool{}
	for _, r := range best.recs {
		quote[r] = true
	}
	var others []*record
	for _, r := range pool {
		if !quote[r] {
			others = append(others, r)
		}
	}
	res.quotes, res.others = len(best.recs), len(others)
	conf := High
	why := ""
	switch {
	case best.distinct < 2:
		conf = Medium
		why = "; only one distinct quote frame was captured"
	case !best.symbol && len(refs) > 0:
		conf = Medium
		why = "; the quote frames do not name the symbol (one connection per symbol keeps them apart)"
	}

	m, mwhy, ok := separate(best.recs, others, framing)
	if !ok {
		res.accept = Matcher{}
		res.acceptNote = note(Low, "no single key tells the %s quote frames (%s) from the %d others (%s); every JSON frame is published",
			countFrames(len(best.recs)), topKeys(best.recs[0].doc), len(others), describeOthers(others))
	} else {
		res.accept = m
		res.acceptNote = note(conf, "%s%s", mwhy, why)
	}
	res.extract, res.extractNote = inferExtract(best.recs, framing)
	for _, r := range pool {
		if res.accept.matches(r) { // no accept (Match "") matches every JSON frame
			r.role = roleQuote
		}
	}
	return res, nil
}

// better ranks clusters: quote-like first (changing, naming a symbol),
// then the most frames.
func better(a, b *cluster) bool {
	qa, qb := a.distinct >= 2, b.distinct >= 2
	if qa != qb {
		return qa
	}
	if a.symbol != b.symbol {
		return a.symbol
	}
	return len(a.recs) > len(b.recs)
}

// separate finds the rule: for Socket.IO the event name, for SignalR the
// target, otherwise a pointer every quote has and no other frame has
// (containers first: the payload), else a key whose value is the same in
// every quote and different in every other frame.
func separate(quotes, others []*record, framing string) (Matcher, string, bool) {
	n := len(quotes)
	switch framing {
	case relay.FramingSocketIO:
		if m, ok := sameValue(quotes, others, "/0"); ok {
			return m, fmt.Sprintf("the %s quote events are named %s (Socket.IO: pointers apply to the event array)", countFrames(n), m.Equals[0]), true
		}
	case relay.FramingSignalR:
		if m, ok := sameValue(quotes, others, "/target"); ok {
			return m, fmt.Sprintf("the %s quote records invoke %s", countFrames(n), m.Equals[0]), true
		}
	}
	var cands []node
	for _, nd := range quotes[0].nodes {
		if nd.depth >= 1 && nd.depth <= 3 && nd.kind != 'z' {
			cands = append(cands, nd)
		}
	}
	slices.SortStableFunc(cands, func(a, b node) int {
		if a.depth != b.depth {
			return a.depth - b.depth
		}
		ca, cb := !a.isLeaf(), !b.isLeaf()
		if ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return 0
	})
	exist := func(ptr string) bool {
		m := Matcher{Match: ptr}
		for _, q := range quotes {
			if !m.matches(q) {
				return false
			}
		}
		for _, o := range others {
			if m.matches(o) {
				return false
			}
		}
		return true
	}
	// A container at depth 1 (/data, /tick): the form every relay accepts.
	for _, c := range cands {
		if c.depth == 1 && !c.isLeaf() && exist(c.ptr) {
			return Matcher{Match: c.ptr}, fmt.Sprintf("%s is in all %s quote frames and in none of the %d others", c.ptr, countFrames(n), len(others)), true
		}
	}
	// A discriminator at depth 1 or 2 ({"type":"ticker"}).
	for _, c := range cands {
		if c.depth <= 2 && c.isLeaf() {
			if m, ok := sameValue(quotes, others, c.ptr); ok {
				return m, fmt.Sprintf("%s is %s in all %s quote frames and in none of the %d others", c.ptr, equalsText(m), countFrames(n), len(others)), true
			}
		}
	}
	for _, c := range cands {
		if exist(c.ptr) {
			return Matcher{Match: c.ptr}, fmt.Sprintf("%s is in all %s quote frames and in none of the %d others", c.ptr, countFrames(n), len(others)), true
		}
	}
	return Matcher{}, "", false
}

// sameValue: ptr holds one value in every quote and no other frame has it.
func sameValue(quotes, others []*record, ptr string) (Matcher, bool) {
	first, ok := find(quotes[0].nodes, ptr)
	if !ok || !first.isLeaf() || first.kind == 'z' {
		return Matcher{}, false
	}
	m := Matcher{Match: ptr, Equals: []any{equalsValue(first)}}
	for _, q := range quotes {
		if !m.matches(q) {
			return Matcher{}, false
		}
	}
	for _, o := range others {
		if m.matches(o) {
			return Matcher{}, false
		}
	}
	return m, true
}

func equalsText(m Matcher) string {
	if len(m.Equals) == 0 {
		return ""
	}
	return string(equalsRaw(m.Equals[0]))
}

// inferExtract: the whole frame for plain JSON (nothing is lost; a
// payload pointer is suggested), the payload for framed protocols whose
// envelope is fixed by the protocol.
func inferExtract(quotes []*record, framing string) (string, Note) {
	switch framing {
	case relay.FramingSocketIO:
		if all(quotes, func(r *record) bool { return r.nodes[0].kind == 'a' && r.nodes[0].size == 2 }) {
			return "/1", note(High, "a Socket.IO event is [name, payload]: the payload is published")
		}
		return "", note(Medium, "the events carry more than one argument: the whole event array is published")
	case relay.FramingSignalR:
		if all(quotes, func(r *record) bool { n, ok := find(r.nodes, "/arguments"); return ok && n.kind == 'a' && n.size == 1 }) {
			return "/arguments/0", note(High, "a SignalR invocation carries its data in arguments: the one argument is published")
		}
		return "/arguments", note(Medium, "the invocations carry several arguments: the arguments array is published")
	}
	payload := ""
	for _, n := range quotes[0].nodes {
		if n.depth == 1 && !n.isLeaf() {
			m := Matcher{Match: n.ptr}
			if all(quotes, m.matches) {
				payload = n.ptr
				break
			}
		}
	}
	if payload != "" {
		return "", note(Medium, "the whole frame is published; extract: %s would publish only its payload", payload)
	}
	return "", note(High, "the whole frame is published")
}

func all(rs []*record, f func(*record) bool) bool {
	for _, r := range rs {
		if !f(r) {
			return false
		}
	}
	return true
}

func countFrames(n int) string { return fmt.Sprint(n) }

// describeOthers summarises the kinds of the frames that are not quotes.
func describeOthers(rs []*record) string {
	var kinds []string
	for _, r := range rs {
		k := topKeys(r.doc)
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return strings.Join(limitList(kinds, 3), ", ")
}
