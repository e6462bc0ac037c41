package capture

import (
	"bytes"
	"fmt"

	"github.com/wsrelay/wsrelay/relay"
)

// Check is the replay of every received record of the capture through the
// relay's own frame rules, built from the inferred config.
type Check struct {
	Frames     int // records replayed
	Quotes     int // published
	Pings      int // answered with the captured reply
	Heartbeats int
	Ignored    int
	// Mismatches counts records the rules treat otherwise than the
	// inference expects (a quote not published or published differently, a
	// ping answered otherwise than the page did, another frame published);
	// First describes the first one.
	Mismatches int
	First      string
}

func (c Check) String() string {
	s := fmt.Sprintf("%s replayed through the relay's frame rules: %d quotes, %d pings answered, %d heartbeats, %d ignored, %s",
		plural(c.Frames, "received frame", "received frames"), c.Quotes, c.Pings, c.Heartbeats, c.Ignored,
		plural(c.Mismatches, "mismatch", "mismatches"))
	if c.First != "" {
		s += " (first: " + c.First + ")"
	}
	return s
}

// RelayConfig returns the upstream as the relay's config type (what
// `serve -config` builds from the YAML, symbols included).
func (u *Upstream) RelayConfig() relay.UpstreamConfig {
	rc := relay.UpstreamConfig{
		Name: u.Name, URL: u.URL, Framing: u.Framing, Namespace: u.Namespace, NamespaceAuth: u.NamespaceAuth,
		Subscribe: u.Subscribe, Unsubscribe: u.Unsubscribe,
		Symbols: u.Symbols, Extract: u.Extract, Decompress: u.Decompress, AppPing: u.AppPing, PingInterval: u.PingInterval,
	}
	if len(u.Headers) > 0 {
		rc.Headers = map[string]string{}
		for _, h := range u.Headers {
			rc.Headers[h.Name] = h.Value
		}
	}
	if u.Accept.Match != "" || u.Accept.Equals != nil {
		rc.Accept = []relay.Matcher{u.Accept.relay()}
	}
	if u.Pong != nil {
		rc.Pong = []relay.PongRule{{Matcher: u.Pong.Matcher.relay(), Reply: u.Pong.Reply}}
	}
	for _, h := range u.Heartbeat {
		rc.Heartbeat = append(rc.Heartbeat, h.relay())
	}
	return rc
}

// relay converts m to the relay's matcher.
func (m Matcher) relay() relay.Matcher {
	return relay.Equals(m.Match, m.Equals...)
}

// selfCheck replays the received records through the relay's frame rules
// for up: quotes must be published as the inference expects, pings
// answered as the page answered them, and nothing else published.
func selfCheck(up *Upstream, recs [][]record, limit int64) Check {
	var c Check
	rc := up.RelayConfig()
	rc.ReadLimit = limit
	rules, err := rc.FrameRules()
	if err != nil {
		c.Mismatches++
		c.First = "the relay refuses the rules: " + err.Error()
		return c
	}
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if r.sent || r.kind == recControl {
				continue
			}
			c.Frames++
			out, err := rules.Handle(r.binary, r.input)
			if err != nil {
				out.Kind = relay.FrameIgnored
			}
			want := "ignored"
			ok := true
			switch r.role {
			case roleQuote:
				want = "a quote"
				ok = out.Kind == relay.FrameQuote && jsonEqual(out.Data, expectedData(up, r))
				if ok {
					c.Quotes++
				}
			case rolePing:
				want = "a ping answered as the page did"
				ok = out.Kind == relay.FramePing && (r.answer == nil || bytes.Equal(compact(out.Reply), compact(r.answer)))
				if ok {
					c.Pings++
				}
			case roleHeartbeat:
				want = "a heartbeat"
				ok = out.Kind == relay.FrameHeartbeat
				if ok {
					c.Heartbeats++
				}
			default:
				ok = out.Kind != relay.FrameQuote && out.Kind != relay.FrameReject && out.Kind != relay.FrameReconnect
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
