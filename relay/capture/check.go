package capture

import (
	"bytes"
	"fmt"

	"github.com/wsrelay/wsrelay/relay"
)

// Check is the replay of every received record of the capture through the
// inferred frame rules.
type Check struct {
	Frames     int // records replayed
	Quotes     int // published
	Pings      int // answered with the captured reply
	Heartbeats int
	Ignored    int
	// Mismatches counts records the rules treat otherwise than the
	// inference expects (a quote not published, a ping answered wrongly,
	// another frame published); First describes the first one.
	Mismatches int
	First      string
	// ByRelay is true when the relay's own FrameRules did the replay; false
	// when the rules use keys this build of the relay lacks and the
	// import's reading of DESIGN's rule semantics did it.
	ByRelay bool
}

func (c Check) String() string {
	by := "the relay's frame rules"
	if !c.ByRelay {
		by = "the import's reading of the frame rules"
	}
	s := fmt.Sprintf("%s replayed through %s: %d quotes, %d pings answered, %d heartbeats, %d ignored, %s",
		plural(c.Frames, "received frame", "received frames"), by, c.Quotes, c.Pings, c.Heartbeats, c.Ignored,
		plural(c.Mismatches, "mismatch", "mismatches"))
	if c.First != "" {
		s += " (first: " + c.First + ")"
	}
	return s
}

// selfCheck replays the received records through the rules of up.
func selfCheck(up *Upstream, recs [][]record, limit int64) Check {
	var c Check
	var rules *relay.FrameRules
	if up.Framing == "" && up.Accept.IsPointer() && (up.Pong == nil || up.Pong.Equals == nil) {
		fc := relay.FrameConfig{Accept: up.Accept.Match, Extract: up.Extract, Decompress: up.Decompress, MaxSize: limit}
		if up.Pong != nil {
			fc.PongMatch, fc.PongReply = up.Pong.Match, up.Pong.Reply
		}
		var err error
		if rules, err = relay.NewFrameRules(fc); err != nil {
			c.Mismatches++
			c.First = "the relay refuses the rules: " + err.Error()
			return c
		}
		c.ByRelay = true
	}
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if r.sent || r.kind == recControl {
				continue
			}
			c.Frames++
			var kind relay.FrameKind
			var data, reply []byte
			heartbeat := false
			if rules != nil {
				out, err := rules.Handle(r.binary, r.input)
				kind, data, reply = out.Kind, out.Data, out.Reply
				if err != nil {
					kind = relay.FrameIgnored
				}
				heartbeat = r.role == roleHeartbeat && kind != relay.FrameQuote
			} else {
				kind, data, reply, heartbeat = simulate(up, r)
			}
			want := "ignored"
			switch r.role {
			case roleQuote:
				want = "a quote"
			case rolePing:
				want = "a ping"
			case roleHeartbeat:
				want = "a heartbeat"
			}
			ok := true
			switch {
			case r.role == roleQuote:
				ok = kind == relay.FrameQuote && jsonEqual(data, expectedData(up, r))
				if ok {
					c.Quotes++
				}
			case r.role == rolePing:
				ok = kind == relay.FramePing && (r.answer == nil || bytes.Equal(compact(reply), compact(r.answer)))
				if ok {
					c.Pings++
				}
			case heartbeat:
				c.Heartbeats++
			default:
				ok = kind != relay.FrameQuote
				if ok {
					c.Ignored++
				}
			}
			if !ok {
				c.Mismatches++
				if c.First == "" {
					c.First = fmt.Sprintf("%s expected to be %s", sample(r.doc, false, 60), want)
				}
			}
		}
	}
	return c
}

// expectedData is what the relay should publish for a quote record.
func expectedData(up *Upstream, r *record) []byte {
	if up.Extract == "" {
		return r.doc
	}
	v, _ := lookupNodes(r.nodes, r.doc, up.Extract)
	return v
}

// simulate applies DESIGN §1's rule order (pong, heartbeat, accept,
// extract) for rules the relay of this build cannot express.
func simulate(up *Upstream, r *record) (relay.FrameKind, []byte, []byte, bool) {
	if up.Pong != nil && up.Pong.matches(r) {
		v, _ := lookupNodes(r.nodes, r.doc, up.Pong.Match)
		if r.kind == recText {
			v = r.doc
		}
		return relay.FramePing, nil, bytes.ReplaceAll([]byte(up.Pong.Reply), []byte("{value}"), v), false
	}
	for _, h := range up.Heartbeat {
		if h.matches(r) {
			return relay.FrameIgnored, nil, nil, true
		}
	}
	if r.kind != recJSON {
		return relay.FrameIgnored, nil, nil, false
	}
	if !up.Accept.matches(r) {
		return relay.FrameIgnored, nil, nil, false
	}
	data := expectedData(up, r)
	if data == nil {
		return relay.FrameIgnored, nil, nil, false
	}
	return relay.FrameQuote, data, nil, false
}
