package capture

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// Options steer Infer. The zero value infers everything from the capture.
type Options struct {
	// Symbols are -symbol values: symbols to subscribe besides the
	// captured ones; one that occurs in a captured subscribe also marks
	// where the symbol sits in it.
	Symbols []string
	// KeepSecrets keeps cookies, Authorization, token-like query values and
	// credentials inside frames in the config and the report.
	KeepSecrets bool
	// Socket picks a socket by its rank in Result.Sockets (1-based); 0
	// takes the best.
	Socket int
	// Name is the upstream's name; empty derives it from the host.
	Name string
	// Source names the capture in the output's header comment.
	Source string
	// ReadLimit caps a decompressed frame (default relay.DefaultReadLimit).
	ReadLimit int64
	// Live marks a probe's recording: hints name probe's flags instead
	// of the browser's DevTools.
	Live bool
}

// Upstream is an inferred upstream: the keys of one upstreams[] entry of
// a config file. A zero field leaves its key out (the relay's default).
type Upstream struct {
	Name    string
	URL     string
	Framing string // "" for json
	// Namespace and NamespaceAuth: Socket.IO's namespace (other than the
	// main one) and the CONNECT packet's payload.
	Namespace, NamespaceAuth string
	Headers                  []Header
	Subscribe                []string
	Unsubscribe              []string
	Symbols                  []relay.Symbol
	Accept                   Matcher // Match "" without Equals: no accept key
	Extract                  string
	AppPing                  string
	PingInterval             time.Duration
	Pong                     *Pong
	Heartbeat                []Matcher
	Decompress               string
	// Notes say, per config key, how sure the inference is and why.
	Notes map[string]Note
	// Comments are said in the entry and in the report: what was left
	// out and why. Hints are said in the entry only.
	Comments, Hints map[string][]string
}

// SocketSummary describes one socket (or several connections to the same
// feed) of the capture.
type SocketSummary struct {
	URL      string // for display: secrets hidden unless kept
	Entries  []int  // HAR entries
	In, Out  int    // messages received and sent
	JSON     int    // received records that are JSON
	Framing  string
	Problem  string // why it cannot be relayed ("" if it can)
	score    int
	sessions []int
}

// Result is the outcome of Infer.
type Result struct {
	Upstream Upstream
	// Sockets are the capture's sockets, best first; Chosen indexes it.
	Sockets []SocketSummary
	Chosen  int
	// Check is the replay of every captured frame through the frame rules.
	Check Check
	// Kinds summarises the received frames by kind (for probe).
	Kinds []Kind
	// Warnings are things the user should know; LeftOut what was dropped.
	Warnings []string
	Source   string
	live     bool
}

// Kind is one kind of received frame: how many, and a sample.
type Kind struct {
	Kind   string
	Count  int
	Sample string
	Role   string
}

// maxAnalysed bounds the frames of one feed the inference reads (the
// first ones): quotes repeat, and every frame costs its parsed form.
const maxAnalysed = 20_000

// Infer works out the upstream config that relays the capture's feed.
// Errors wrapping ErrCannotRelay say in one line what was found and why
// it cannot be relayed (or which flag would help).
func Infer(c *Capture, opts Options) (*Result, error) {
	if opts.ReadLimit <= 0 {
		opts.ReadLimit = relay.DefaultReadLimit
	}
	res := &Result{Source: opts.Source, live: opts.Live}
	c = withPolling(c)
	if len(c.Sessions) == 0 {
		return nil, fmt.Errorf("%w: no WebSocket among the HAR's %s; record with DevTools open before the page opens its socket "+
			"(Network tab, Preserve log, reload), then save all as HAR", ErrCannotRelay, plural(c.Entries, "entry", "entries"))
	}
	cands, err := candidates(c, opts)
	if err != nil {
		return nil, err
	}
	res.Sockets = cands
	pick := -1
	if opts.Socket > 0 {
		if opts.Socket > len(cands) {
			return nil, fmt.Errorf("%w: -socket %d: the capture has %s", ErrCannotRelay, opts.Socket, plural(len(cands), "socket", "sockets"))
		}
		pick = opts.Socket - 1
		if cands[pick].Problem != "" {
			return nil, fmt.Errorf("%w: socket %d (%s): %s", ErrCannotRelay, opts.Socket, cands[pick].URL, cands[pick].Problem)
		}
	} else if cands[0].Problem == "" {
		pick = 0
		// A socket that cannot be relayed but carried far more than the
		// best usable one (a chat widget beside an opaque binary feed) is
		// the feed the user wants: say why it cannot be relayed rather
		// than relay the widget.
		for _, c := range cands[1:] {
			if c.Problem != "" && cands[0].score < 3 && c.In > 2*cands[0].In {
				return nil, fmt.Errorf("%w: %s: %s (the only relayable socket, %s, carries little: relay it with -socket 1)",
					ErrCannotRelay, c.URL, c.Problem, cands[0].URL)
			}
		}
	}
	if pick < 0 {
		return nil, unusable(c, cands)
	}
	res.Chosen = pick
	if err := inferSocket(c, cands[pick], opts, res); err != nil {
		return nil, err
	}
	return res, nil
}

// unusable says in one line why no socket of the capture can be relayed.
func unusable(c *Capture, cands []SocketSummary) error {
	first := cands[0]
	more := ""
	if len(cands) > 1 {
		more = fmt.Sprintf(" (and %s, none usable)", plural(len(cands)-1, "other socket", "other sockets"))
	}
	return fmt.Errorf("%w: %s%s: %s", ErrCannotRelay, first.URL, more, first.Problem)
}

// candidates groups the capture's sessions into feeds and ranks them.
func candidates(c *Capture, opts Options) ([]SocketSummary, error) {
	var out []SocketSummary
	index := map[string]int{}
	for si, s := range c.Sessions {
		framing, _, unsupported := detectFraming([]Session{s})
		key := groupKey(s.URL, framing) + "\x00" + framing + unsupported
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, SocketSummary{URL: displayURL(s.URL, opts.KeepSecrets), Framing: framing, Problem: unsupported})
		}
		sum := &out[i]
		sum.Entries = append(sum.Entries, s.Entry)
		sum.sessions = append(sum.sessions, si)
	}
	for i := range out {
		sum := &out[i]
		if sum.Problem != "" {
			sum.score = -1
			continue
		}
		rate(c, sum, opts)
	}
	slices.SortStableFunc(out, func(a, b SocketSummary) int {
		if (a.Problem == "") != (b.Problem == "") {
			if a.Problem == "" {
				return -1
			}
			return 1
		}
		if a.score != b.score {
			return b.score - a.score
		}
		return (b.In + b.Out) - (a.In + a.Out)
	})
	return out, nil
}

// rate counts a candidate's frames and scores how much it looks like a
// quote feed (the most frames of one changing kind), or says why it
// cannot be relayed.
func rate(c *Capture, sum *SocketSummary, opts Options) {
	dec, err := newDecoder(sum.Framing, opts.ReadLimit)
	if err != nil {
		sum.Problem = err.Error()
		return
	}
	noFrames, file := true, ""
	var opaque []byte
	opaqueN, b64gzip := 0, 0
	kinds := map[string]map[string]bool{}
	for _, si := range sum.sessions {
		s := c.Sessions[si]
		if !s.NoFrames {
			noFrames = false
		}
		if s.FramesFile != "" {
			file = s.FramesFile
		}
		for fi, f := range s.Frames {
			if f.Error != "" {
				continue
			}
			if sum.In+sum.Out >= maxAnalysed {
				break
			}
			if f.Sent {
				sum.Out++
			} else {
				sum.In++
			}
			for _, r := range dec.decode(nil, si, fi, f) {
				if r.sent {
					continue
				}
				switch r.kind {
				case recJSON:
					sum.JSON++
					k := kindKey(&r, sum.Framing)
					if kinds[k] == nil {
						kinds[k] = map[string]bool{}
					}
					if len(kinds[k]) < 1000 {
						kinds[k][string(r.doc)] = true
					}
				case recOpaque:
					opaqueN++
					// Describe the frame that says most: one with a compressed
					// stream inside, else the first.
					if opaque == nil || (!strings.Contains(describeOpaque(opaque, opts.ReadLimit), "zlib") && opaqueN <= 50 &&
						strings.Contains(describeOpaque(r.input, opts.ReadLimit), "zlib")) {
						opaque = r.input
					}
				case recText:
					if base64Gzip(r.doc) {
						b64gzip++
					}
				}
			}
		}
	}
	for _, docs := range kinds {
		sum.score = max(sum.score, len(docs))
	}
	switch {
	case noFrames && file != "":
		sum.Problem = fmt.Sprintf("the frames are in a separate file (%s): Playwright saved the HAR in attach mode; record with content: 'embed' or unzip and use the .har with embedded frames", file)
	case noFrames:
		sum.Problem = "the HAR has the socket but none of its frames (Firefox and Safari do not export them; use Chrome, Edge, Playwright ≥ 1.61 or mitmproxy)"
	case sum.In == 0 && sum.Out == 0 && opts.Live:
		sum.Problem = "the server sent nothing: most feeds wait for a subscribe (give it with -send)"
	case sum.In == 0 && sum.Out == 0:
		sum.Problem = "no frames were recorded (DevTools must be open before the page opens its socket: Preserve log, reload)"
	case sum.In == 0:
		sum.Problem = fmt.Sprintf("%s sent but the server sent nothing back", plural(sum.Out, "frame was", "frames were"))
	case sum.JSON == 0 && b64gzip > 0:
		sum.Problem = fmt.Sprintf("%s are base64 text of gzip data: the relay inflates binary frames only", plural(b64gzip, "received frame", "received frames"))
	case sum.JSON == 0 && opaqueN > 0:
		sum.Problem = fmt.Sprintf("its %s are binary and not (compressed) JSON (%s): the relay relays JSON frames only",
			plural(opaqueN, "received frame", "received frames"), describeOpaque(opaque, opts.ReadLimit))
	case sum.JSON == 0:
		sum.Problem = fmt.Sprintf("none of its %s is JSON", plural(sum.In, "received frame", "received frames"))
	}
}

// inferSocket runs the inference on one candidate.
func inferSocket(c *Capture, cand SocketSummary, opts Options, res *Result) error {
	dec, err := newDecoder(cand.Framing, opts.ReadLimit)
	if err != nil {
		return err
	}
	recs := make([][]record, len(cand.sessions))
	analysed, total := 0, 0
	for i, si := range cand.sessions {
		for fi, f := range c.Sessions[si].Frames {
			total++
			if analysed >= maxAnalysed {
				continue
			}
			analysed++
			recs[i] = dec.decode(recs[i], i, fi, f)
		}
	}
	if total > analysed {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the inference read the first %d of the socket's %d frames", analysed, total))
	}
	first := c.Sessions[cand.sessions[0]]
	up := Upstream{Notes: map[string]Note{}, Comments: map[string][]string{}, Hints: map[string][]string{}}
	polled := 0
	for _, si := range cand.sessions {
		polled += c.Sessions[si].Polled
	}
	if polled > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s came by Socket.IO long-polling before the upgrade to WebSocket; they are read as frames of the socket", plural(polled, "packet", "packets")))
	}
	if cand.Framing != relay.FramingJSON {
		up.Framing = cand.Framing
		_, why, _ := detectFraming([]Session{first})
		up.Notes["framing"] = note(High, "%s", why)
	}

	if cand.Framing == relay.FramingSocketIO {
		socketIONamespace(recs, opts.KeepSecrets, &up)
	}
	var pings pingResult
	if cand.Framing == relay.FramingJSON {
		pings = inferPings(recs)
	}
	var received []*record
	for si := range recs {
		for ri := range recs[si] {
			if r := &recs[si][ri]; !r.sent && r.kind == recJSON && r.role == roleNone {
				received = append(received, r)
			}
		}
	}
	u := inferURL(first.URL, cand.Framing, opts.KeepSecrets, first.Started)
	sub, err := inferSubscribe(subscribeInput{recs: recs, symbols: opts.Symbols, keep: opts.KeepSecrets, received: received, url: u.url})
	if err != nil {
		return err
	}
	if cand.Framing == relay.FramingJSON {
		serverHeartbeats(recs, &pings)
	}
	acc, err := inferAccept(recs, cand.Framing, sub.refs)
	if err != nil {
		return err
	}

	// URL and name.
	up.URL = u.url
	urlWhy := []string{"the socket's URL as captured"}
	if sub.urlTemplate != "" {
		up.URL = sub.urlTemplate
		urlWhy = append(urlWhy, "with {symbol} where the symbol was")
	}
	if len(u.dropped) > 0 {
		urlWhy = append(urlWhy, fmt.Sprintf("without %s (per-connection id: a replayed one is refused)", strings.Join(u.dropped, ", ")))
	}
	if len(u.added) > 0 {
		urlWhy = append(urlWhy, "with "+strings.Join(u.added, "&"))
	}
	up.Notes["url"] = note(High, "%s", strings.Join(urlWhy, ", "))
	if len(u.secrets) > 0 {
		up.Comments["url"] = append(up.Comments["url"], fmt.Sprintf("left out of the URL: %s (credentials; rerun with -keep-secrets to keep them; a server that needs them refuses the handshake with 401 or 403)", strings.Join(u.secrets, ", ")))
	}
	if len(u.volatile) > 0 {
		up.Comments["url"] = append(up.Comments["url"], fmt.Sprintf("%s in the URL look per-connection (a token or a timestamp): if the handshake fails, the page fetched them before connecting, which the relay cannot do yet", strings.Join(u.volatile, ", ")))
		up.Notes["url"] = note(Medium, "%s", up.Notes["url"].Why)
	}
	up.Name = opts.Name
	if up.Name == "" {
		up.Name = upstreamName(up.URL)
		up.Notes["name"] = note(High, "from the host; any name will do")
	}

	inferHeaders(c, first, opts.KeepSecrets, &up)

	// Subscribe side.
	up.Subscribe, up.Unsubscribe, up.Symbols = sub.templates, sub.unsubscribe, sub.symbols
	if len(sub.templates) > 0 {
		up.Notes["subscribe"] = sub.note
	} else {
		up.Notes["url"] = sub.note
	}
	if sub.unsubscribe != nil {
		up.Notes["unsubscribe"] = sub.unsubNote
	}
	up.Notes["symbols"] = sub.symbolsNote
	if len(sub.redacted) > 0 {
		up.Comments["subscribe"] = append(up.Comments["subscribe"], fmt.Sprintf("REDACTED stands for credentials the page sent in its frames (%s); rerun with -keep-secrets to keep them", strings.Join(dedupe(sub.redacted), ", ")))
	}
	res.Warnings = append(res.Warnings, sub.leftOut...)

	// Frames.
	up.Accept, up.Extract = acc.accept, acc.extract
	up.Notes["accept"] = acc.acceptNote
	up.Notes["extract"] = acc.extractNote
	if pings.pong != nil {
		up.Pong = pings.pong
		up.Notes["pong"] = pings.pongNote
	}
	if pings.appPing != "" {
		up.AppPing = pings.appPing
		up.Notes["app_ping"] = pings.appNote
		if pings.interval > 0 {
			up.PingInterval = pings.interval
			up.Notes["ping_interval"] = note(pings.appNote.Conf, "the interval at which the page pinged")
		}
	}
	if len(pings.heartbeats) > 0 {
		up.Heartbeat = pings.heartbeats
		up.Notes["heartbeat"] = pings.hbNote
	}
	inferDecompress(recs, &up)

	res.Upstream = up
	res.Kinds = kinds(recs)
	res.Check = selfCheck(&up, recs, opts.ReadLimit)
	return nil
}

// inferDecompress sets decompress when the quotes are compressed binary.
func inferDecompress(recs [][]record, up *Upstream) {
	comp, quotes := map[string]int{}, 0
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if r.role != roleQuote {
				continue
			}
			quotes++
			if r.compressed != "" {
				comp[r.compressed]++
			}
		}
	}
	if len(comp) == 0 {
		return
	}
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range comp {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s %s", plural(comp[k], "frame", "frames"), k))
	}
	up.Decompress = relay.DecompressAuto
	up.Notes["decompress"] = note(High, "the quotes are compressed binary frames (%s of %d quotes); auto inflates gzip, zlib and raw deflate", strings.Join(parts, ", "), quotes)
}

// kinds summarises the received records by kind, for probe's report.
func kinds(recs [][]record) []Kind {
	var out []Kind
	idx := map[string]int{}
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if r.sent {
				continue
			}
			var k string
			switch r.kind {
			case recJSON:
				k = "json " + topKeys(r.doc)
			case recText:
				k = "text"
			case recOpaque:
				k = "binary"
			case recControl:
				k = r.control
			}
			if r.compressed != "" {
				k = r.compressed + " " + k
			}
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				s := ""
				switch r.kind {
				case recJSON, recText:
					s = sample(r.doc, false, 100)
				case recOpaque:
					s = describeOpaque(r.input, 1<<20)
				}
				out = append(out, Kind{Kind: k, Sample: s, Role: roleName(r.role)})
			}
			out[i].Count++
		}
	}
	return out
}

func roleName(r role) string {
	switch r {
	case roleQuote:
		return "quote"
	case rolePing:
		return "ping (answered)"
	case roleHeartbeat:
		return "heartbeat"
	}
	return "ignored"
}
