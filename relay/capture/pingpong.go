package capture

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// pingResult is the inferred keepalive of an upstream.
type pingResult struct {
	pong       *Pong
	pongNote   Note
	appPing    string
	interval   time.Duration
	appNote    Note
	heartbeats []Matcher
	hbNote     Note
}

// pongWindow bounds how long after a server ping an answer counts as its
// pong; replyWindow the same for the server's answer to a client ping.
const (
	pongWindow  = 5 * time.Second
	replyWindow = 3 * time.Second
)

// pingWord reports a value that names a ping ("ping", "PING").
func pingWord(s string) bool { return strings.EqualFold(s, "ping") }

func pongWord(s string) bool { return strings.EqualFold(s, "pong") }

// inferPings finds app-level keepalive in both directions: server pings
// the client echoed (a received value sent straight back), client pings
// repeated at a steady interval, and the server's answers to them.
func inferPings(recs [][]record) pingResult {
	var res pingResult
	serverPings(recs, &res)
	clientPings(recs, &res)
	return res
}

// pongCand is one way a client answered a server ping.
type pongCand struct {
	pong  Pong
	pairs [][2]*record
	echo  bool // the reply carries the ping's value
}

func serverPings(recs [][]record, res *pingResult) {
	cands := map[string]*pongCand{}
	var order []string
	for si := range recs {
		for ri := range recs[si] {
			s := &recs[si][ri]
			if !s.sent || s.role != roleNone || (s.kind != recJSON && s.kind != recText) {
				continue
			}
			// The received records since the previous sent one, nearest first.
			for pj := ri - 1; pj >= 0; pj-- {
				r := &recs[si][pj]
				if r.sent {
					break
				}
				if !r.at.IsZero() && !s.at.IsZero() && s.at.Sub(r.at) > pongWindow {
					break
				}
				p, echo, ok := pongFor(r, s)
				if !ok {
					continue
				}
				key := p.Match + "\x00" + fmt.Sprint(p.Equals) + "\x00" + p.Reply
				c := cands[key]
				if c == nil {
					c = &pongCand{pong: p, echo: echo}
					cands[key] = c
					order = append(order, key)
				}
				c.pairs = append(c.pairs, [2]*record{r, s})
				break
			}
		}
	}
	var best *pongCand
	for _, k := range order {
		c := cands[k]
		if !pongRuleSafe(c, recs) {
			continue
		}
		if best == nil || len(c.pairs) > len(best.pairs) {
			best = c
		}
	}
	if best == nil {
		return
	}
	for _, pr := range best.pairs {
		pr[0].role, pr[1].role = rolePing, rolePong
		pr[0].answer = pr[1].doc
	}
	// Every received frame the rule matches is a ping, answered or not.
	for si := range recs {
		for ri := range recs[si] {
			if r := &recs[si][ri]; !r.sent && r.role == roleNone && best.pong.matches(r) {
				r.role = rolePing
			}
		}
	}
	p := best.pong
	res.pong = &p
	conf := High
	if len(best.pairs) < 2 {
		conf = Medium
	}
	what := "echoed its value back"
	if !best.echo {
		what = "answered " + sample([]byte(p.Reply), false, 24)
	}
	res.pongNote = note(conf, "the server sent %s (%s) and the page %s each time",
		plural(len(best.pairs), "ping", "pings"), sample(best.pairs[0][0].doc, false, 40), what)
}

// pongFor reports whether sent record s answers received record r, and
// the rule that produces s from r.
func pongFor(r, s *record) (Pong, bool, bool) {
	if r.kind == recText && s.kind == recText {
		if pingWord(string(r.doc)) && pongWord(string(s.doc)) {
			return Pong{Matcher: Matcher{Match: "", Equals: []any{string(r.doc)}}, Reply: string(s.doc)}, false, true
		}
		return Pong{}, false, false
	}
	if r.kind != recJSON || s.kind != recJSON || len(s.doc) > 256 || len(r.doc) > 512 {
		return Pong{}, false, false
	}
	// A value of the ping sent back: {"ping":N} → {"pong":N}. Both frames
	// are small, and the value is one that does not repeat by chance.
	if leaves(r.nodes) > 4 || leaves(s.nodes) > 4 {
		return Pong{}, false, false
	}
	for _, m := range s.nodes {
		if !m.isLeaf() || !distinctive(m) {
			continue
		}
		for _, l := range r.nodes {
			if l.isLeaf() && l.depth > 0 && l.str == m.str && l.kind == m.kind {
				reply := render(s.doc, []cut{{n: m, placeholder: "{value}", whole: true}})
				return Pong{Matcher: Matcher{Match: l.ptr}, Reply: reply}, true, true
			}
		}
	}
	// A constant answer: {"op":"ping"} → {"op":"pong"}.
	for _, l := range r.nodes {
		if l.kind == 's' && pingWord(l.str) {
			if m, ok := find(s.nodes, l.ptr); ok && m.kind == 's' && pongWord(m.str) {
				return Pong{Matcher: Matcher{Match: l.ptr, Equals: []any{l.str}}, Reply: string(s.doc)}, false, true
			}
		}
	}
	return Pong{}, false, false
}

// distinctive: a value unlikely to be shared by chance (a number of six
// digits or more, a string of six characters or more with a digit in it:
// a timestamp or a random id, not a word such as "subscribe").
func distinctive(n node) bool {
	switch n.kind {
	case 'n':
		return len(strings.TrimLeft(n.str, "-")) >= 6
	case 's':
		return len(n.str) >= 6 && strings.ContainsAny(n.str, "0123456789")
	}
	return false
}

// leaves counts the scalars of a document.
func leaves(nodes []node) int {
	n := 0
	for _, nd := range nodes {
		if nd.isLeaf() {
			n++
		}
	}
	return n
}

// pongRuleSafe checks that the rule matches no received frame the client
// did not treat as a ping: a pointer that quotes also carry (a timestamp)
// would turn quotes into pings.
func pongRuleSafe(c *pongCand, recs [][]record) bool {
	answered := map[*record]bool{}
	for _, pr := range c.pairs {
		answered[pr[0]] = true
	}
	unanswered, matched := 0, 0
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if r.sent || !c.pong.matches(r) {
				continue
			}
			matched++
			if !answered[r] {
				unanswered++
			}
		}
	}
	// A capture may end between a ping and its pong: allow one per session.
	return matched > 0 && unanswered <= len(recs)
}

// clientPings finds a frame the page sent again and again at a steady
// interval (an app-level ping), and what the server answered.
func clientPings(recs [][]record, res *pingResult) {
	type occ struct {
		recs []*record
	}
	best := struct {
		text      string
		recs      []*record
		intervals []time.Duration
		perSess   int
	}{}
	for si := range recs {
		groups := map[string]*occ{}
		var order []string
		for ri := range recs[si] {
			r := &recs[si][ri]
			if !r.sent || r.role != roleNone || (r.kind != recJSON && r.kind != recText) || len(r.doc) > 128 {
				continue
			}
			k := string(r.doc)
			if groups[k] == nil {
				groups[k] = &occ{}
				order = append(order, k)
			}
			groups[k].recs = append(groups[k].recs, r)
		}
		for _, k := range order {
			g := groups[k]
			if len(g.recs) < 2 || len(g.recs) <= best.perSess {
				continue
			}
			var iv []time.Duration
			for i := 1; i < len(g.recs); i++ {
				if !g.recs[i].at.IsZero() && !g.recs[i-1].at.IsZero() {
					iv = append(iv, g.recs[i].at.Sub(g.recs[i-1].at))
				}
			}
			best.text, best.recs, best.intervals, best.perSess = k, g.recs, iv, len(g.recs)
		}
	}
	if best.recs == nil {
		return
	}
	conf := High
	why := ""
	var median time.Duration
	if len(best.intervals) > 0 {
		sorted := slices.Clone(best.intervals)
		slices.Sort(sorted)
		median = sorted[len(sorted)/2]
		if len(sorted)%2 == 0 {
			median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		}
		steady := median > 0
		for _, d := range best.intervals {
			if d < median*65/100 || d > median*135/100 {
				steady = false
			}
		}
		if !steady {
			return // repeated, but not a keepalive rhythm (a re-subscribe, a user action)
		}
		why = fmt.Sprintf("the page sent %s %s, every %s", sample([]byte(best.text), false, 32), plural(best.perSess, "time", "times"), roundInterval(median))
	} else {
		conf = Medium
		why = fmt.Sprintf("the page sent %s %s (the capture has no times: the interval is the relay's default)", sample([]byte(best.text), false, 32), plural(best.perSess, "time", "times"))
	}
	if best.perSess < 3 {
		conf = lower(conf, Medium)
	}
	for si := range recs {
		for ri := range recs[si] {
			if r := &recs[si][ri]; r.sent && r.role == roleNone && string(r.doc) == best.text {
				r.role = roleAppPing
			}
		}
	}
	res.appPing = best.text
	if median > 0 {
		res.interval = roundInterval(median)
	}
	res.appNote = note(conf, "%s", why)
	serverAnswers(recs, best.recs, res)
}

// serverAnswers finds what the server sent after each client ping (the
// same frame every time: OKX's "pong") and makes it a heartbeat, so that
// the relay counts it as proof of life rather than an ignored frame.
func serverAnswers(recs [][]record, pings []*record, res *pingResult) {
	counts := map[string]int{}
	for _, p := range pings {
		rs := recs[p.sess]
		for ri := range rs {
			if &rs[ri] != p {
				continue
			}
			for rj := ri + 1; rj < len(rs); rj++ {
				r := &rs[rj]
				if r.sent {
					continue
				}
				if !r.at.IsZero() && !p.at.IsZero() && r.at.Sub(p.at) > replyWindow {
					break
				}
				if r.role == roleNone && (r.kind == recText || r.kind == recJSON) && len(r.doc) <= 128 && pongish(r) {
					counts[string(r.doc)]++
					break
				}
			}
		}
	}
	for text, n := range counts {
		if n < 2 && len(pings) >= 2 {
			continue
		}
		m := answerMatcher(text)
		if m == nil {
			continue
		}
		res.heartbeats = append(res.heartbeats, *m)
		res.hbNote = note(High, "the server answered the page's pings with %s", sample([]byte(text), false, 32))
		for si := range recs {
			for ri := range recs[si] {
				if r := &recs[si][ri]; !r.sent && r.role == roleNone && m.matches(r) {
					r.role = roleHeartbeat
				}
			}
		}
		return
	}
}

// pongish: the server's answer names a pong (or heartbeat) somewhere.
func pongish(r *record) bool {
	if r.kind == recText {
		s := strings.ToLower(string(r.doc))
		return strings.Contains(s, "pong") || strings.Contains(s, "ping") || strings.Contains(s, "heartbeat")
	}
	for _, n := range r.nodes {
		k := strings.ToLower(n.ptr + " " + n.str)
		if strings.Contains(k, "pong") || strings.Contains(k, "heartbeat") {
			return true
		}
	}
	return false
}

// answerMatcher is a matcher for a server's answer frame.
func answerMatcher(text string) *Matcher {
	nodes := walkJSON([]byte(text))
	if nodes == nil {
		return &Matcher{Match: "", Equals: []any{text}}
	}
	for _, n := range nodes {
		if n.kind == 's' && (pongWord(n.str) || strings.EqualFold(n.str, "heartbeat")) {
			return &Matcher{Match: n.ptr, Equals: []any{n.str}}
		}
	}
	for _, n := range nodes {
		if strings.Contains(strings.ToLower(n.ptr), "pong") {
			return &Matcher{Match: n.ptr}
		}
	}
	return nil
}

// roundInterval rounds a measured interval: to 100 ms under 10 s, to
// whole seconds above.
func roundInterval(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return max(d.Round(100*time.Millisecond), 100*time.Millisecond)
	}
	return d.Round(time.Second)
}

// serverHeartbeats finds received frames that only say "still here"
// (a heartbeat word in them, repeated, never answered), so that the relay
// does not count them as ignored. It runs after the ping inference.
func serverHeartbeats(recs [][]record, res *pingResult) {
	counts := map[string]int{}
	matchers := map[string]*Matcher{}
	var order []string
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if r.sent || r.role != roleNone || len(r.doc) > 160 {
				continue
			}
			var m *Matcher
			switch r.kind {
			case recText:
				s := strings.ToLower(string(r.doc))
				if s == "h" || s == "hb" || strings.Contains(s, "heartbeat") || strings.Contains(s, "keepalive") || s == "pong" || s == "ping" {
					m = &Matcher{Match: "", Equals: []any{string(r.doc)}}
				}
			case recJSON:
				for _, n := range r.nodes {
					if n.kind == 's' && isHeartbeatWord(n.str) {
						m = &Matcher{Match: n.ptr, Equals: []any{n.str}}
						break
					}
				}
			}
			if m == nil {
				continue
			}
			k := m.String()
			if matchers[k] == nil {
				matchers[k] = m
				order = append(order, k)
			}
			counts[k]++
		}
	}
	for _, k := range order {
		if counts[k] < 2 {
			continue
		}
		m := *matchers[k]
		if slices.ContainsFunc(res.heartbeats, func(h Matcher) bool { return h.String() == k }) {
			continue
		}
		res.heartbeats = append(res.heartbeats, m)
		if res.hbNote.Why == "" {
			res.hbNote = note(High, "the server sent %s %s, unanswered", sample(equalsRaw(m.Equals[0]), false, 24), plural(counts[k], "time", "times"))
		} else {
			res.hbNote.Why += fmt.Sprintf("; and %s %s, unanswered", sample(equalsRaw(m.Equals[0]), false, 24), plural(counts[k], "time", "times"))
		}
		for si := range recs {
			for ri := range recs[si] {
				if r := &recs[si][ri]; !r.sent && r.role == roleNone && m.matches(r) {
					r.role = roleHeartbeat
				}
			}
		}
	}
}

func isHeartbeatWord(s string) bool {
	switch strings.ToLower(s) {
	case "heartbeat", "hb", "keepalive", "keep_alive", "keep-alive", "ping", "pong":
		return true
	}
	return false
}
