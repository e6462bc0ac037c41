package capture

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/wsrelay/wsrelay/relay"
)

// Report writes a short account of the inference for a terminal: the
// sockets found, the one chosen, what was inferred and how sure, and what
// was left out. Nothing in it is a secret unless the options kept them.
func (r *Result) Report(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n", r.sourceName(), plural(len(r.Sockets), "WebSocket feed", "WebSocket feeds"))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for i, s := range r.Sockets {
		mark := " "
		if i == r.Chosen {
			mark = "*"
		}
		state := s.Framing
		if s.Problem != "" {
			state = "cannot relay: " + truncateString(s.Problem, 80)
		}
		fmt.Fprintf(tw, "  %s %d\t%s\t%s, %d sent, %d received\t%s\n", mark, i+1, truncateString(s.URL, 70),
			plural(len(s.Entries), "connection", "connections"), s.Out, s.In, state)
	}
	_ = tw.Flush()
	u := &r.Upstream
	var syms []string
	for _, s := range u.Symbols {
		syms = append(syms, s.Name)
	}
	fmt.Fprintf(w, "config for socket %d: symbols %s\n", r.Chosen+1, strings.Join(limitList(syms, 8), ", "))
	for _, k := range []string{"subscribe", "url", "accept", "extract", "pong", "app_ping", "heartbeat", "decompress", "framing"} {
		n, ok := r.Upstream.Notes[k]
		if !ok || n.Why == "" || (k == "url" && n.Conf == High) || (k == "extract" && n.Conf == High) {
			continue
		}
		fmt.Fprintf(w, "  %-10s %s\n", k, truncateString(n.String(), 160))
	}
	fmt.Fprintf(w, "self-check: %s\n", r.Check)
	for _, k := range []string{"url", "namespace", "headers", "subscribe"} {
		for _, c := range r.Upstream.Comments[k] {
			fmt.Fprintf(w, "note: %s\n", c)
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "note: %s\n", warn)
	}
	if r.Check.Mismatches > 0 {
		fmt.Fprintln(w, "warning: the rules do not reproduce the capture exactly; read the comments in the config")
	}
	if r.lowest() == Low {
		fmt.Fprintln(w, "warning: the config holds a GUESS; check the keys marked GUESS before relying on it")
	}
}

// ReportKinds writes the received frames by kind, with counts, what the
// config makes of them and a sample of each (probe's summary).
func (r *Result) ReportKinds(w io.Writer) { WriteKinds(w, r.Kinds) }

// WriteKinds writes a table of frame kinds.
func WriteKinds(w io.Writer, kinds []Kind) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  count\tkind\trole\tsample")
	for _, k := range kinds {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", k.Count, truncateString(k.Kind, 48), k.Role, k.Sample)
	}
	_ = tw.Flush()
}

// SessionKinds summarises what a session received, by kind, when no
// config could be inferred (the roles are then unknown). Samples are
// redacted.
func SessionKinds(s *Session) []Kind {
	framing, _, _ := detectFraming([]Session{*s})
	if framing == "" {
		framing = relay.FramingJSON
	}
	dec, err := newDecoder(framing, relay.DefaultReadLimit)
	if err != nil {
		return nil
	}
	var recs []record
	for fi, f := range s.Frames {
		recs = dec.decode(recs, 0, fi, f)
	}
	out := kinds([][]record{recs})
	for i := range out {
		out[i].Role = "?"
	}
	return out
}

// RedactedURL is a URL as reports show it: credentials and session ids in
// it hidden unless keep.
func RedactedURL(raw string, keep bool) string { return displayURL(raw, keep) }

// lowest is the lowest confidence of the inferred keys.
func (r *Result) lowest() Confidence {
	c := High
	for _, n := range r.Upstream.Notes {
		if n.Conf != 0 {
			c = lower(c, n.Conf)
		}
	}
	return c
}

func (r *Result) sourceName() string {
	if r.Source == "" {
		return "capture"
	}
	return r.Source
}
