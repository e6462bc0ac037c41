package capture

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/wsrelay/wsrelay/relay"
)

// subscribeInput is what inferSubscribe works from.
type subscribeInput struct {
	recs     [][]record // per session
	symbols  []string   // -symbol
	keep     bool       // -keep-secrets
	received []*record  // received JSON records (for guesses)
	url      string
}

// inferSubscribe works out the subscribe frames, the unsubscribe frame and
// the symbols from what the page sent on the socket.
func inferSubscribe(in subscribeInput) (*subscribeResult, error) {
	res := &subscribeResult{}
	var subs, unsubs []*sendDoc
	byText := map[string]*sendDoc{}
	authSeen := false
	for si := range in.recs {
		for ri := range in.recs[si] {
			r := &in.recs[si][ri]
			if !r.sent || r.role != roleNone {
				continue
			}
			switch r.kind {
			case recText:
				res.leftOut = append(res.leftOut, fmt.Sprintf("a text frame the page sent (%s) is not JSON and is left out", sample(r.doc, in.keep, 40)))
				continue
			case recJSON:
			default:
				continue
			}
			if authFrame(r.nodes) {
				r.role = roleAuth
				if !authSeen {
					res.leftOut = append(res.leftOut, fmt.Sprintf("a login frame with a signature (%s) is left out: the relay cannot sign frames; public channels usually need none", topKeys(r.doc)))
					authSeen = true
				}
				continue
			}
			key := string(r.doc)
			d, ok := byText[key]
			if !ok {
				d = &sendDoc{doc: r.doc, nodes: r.nodes}
				byText[key] = d
				if unsubFrame(r.nodes) {
					unsubs = append(unsubs, d)
				} else {
					subs = append(subs, d)
				}
			}
			d.recs = append(d.recs, r)
		}
	}
	if len(subs) == 0 {
		return urlSymbol(in, res)
	}

	// Frames of the same shape that differ: the largest such family whose
	// difference is a symbol is the subscribe.
	var main *family
	var mainDocs []*sendDoc
	shapes := map[string][]*sendDoc{}
	var order []string
	for _, d := range subs {
		sh := shape(d.nodes)
		if _, ok := shapes[sh]; !ok {
			order = append(order, sh)
		}
		shapes[sh] = append(shapes[sh], d)
	}
	for _, sh := range order {
		docs := shapes[sh]
		if len(docs) < 2 {
			continue
		}
		vals := make([]sendDoc, len(docs))
		for i, d := range docs {
			vals[i] = *d
		}
		f, ok := templateFamily(vals)
		if !ok {
			continue
		}
		if main == nil || distinct(f.refs) > distinct(main.refs) {
			main, mainDocs = &f, docs
		}
	}
	var tmpl string // the main template
	switch {
	case main != nil:
		cuts := main.cuts[0]
		if !in.keep {
			sc, keys := secretCuts(mainDocs[0].nodes, cuts)
			cuts = append(cuts, sc...)
			res.redacted = append(res.redacted, keys...)
		}
		tmpl = render(mainDocs[0].doc, cuts)
		res.refs = dedupe(main.refs)
		res.note = note(main.conf, "%s captured subscribes differ only in the symbol (%s): %s",
			countWord(len(mainDocs)), strings.Join(limitList(res.refs, 4), ", "), strings.Join(main.why, "; "))
		for _, d := range mainDocs {
			markRole(d, roleSubscribe)
		}
	default:
		var err error
		tmpl, mainDocs, err = singleSubscribe(in, subs, res)
		if err != nil {
			return nil, err
		}
	}
	// The frames of one connection, in order: per-symbol frames become
	// templates, frames without a symbol sent before the subscribe are sent
	// once per connection, later ones are left out.
	rep := mainDocs[0].recs[0].sess
	sessRefs := map[string]bool{}
	for _, d := range mainDocs {
		for _, r := range d.recs {
			if r.sess == rep {
				for _, ref := range res.refs {
					if len(symbolCuts(d.nodes, ref)) > 0 {
						sessRefs[ref] = true
					}
				}
			}
		}
	}
	seenTmpl := map[string]bool{}
	mainAdded := false
	for ri := range in.recs[rep] {
		r := &in.recs[rep][ri]
		if !r.sent || r.kind != recJSON || (r.role != roleNone && r.role != roleSubscribe) {
			continue
		}
		d := byText[string(r.doc)]
		if d == nil || slices.Contains(unsubs, d) {
			continue
		}
		if slices.Contains(mainDocs, d) {
			if !mainAdded {
				res.templates = append(res.templates, tmpl)
				seenTmpl[tmpl] = true
				mainAdded = true
			}
			continue
		}
		var cuts []cut
		for ref := range sessRefs {
			cuts = append(cuts, symbolCuts(d.nodes, ref)...)
		}
		if len(cuts) == 0 && mainAdded {
			res.leftOut = append(res.leftOut, fmt.Sprintf("a frame sent after subscribing (%s) is left out", sample(d.doc, in.keep, 60)))
			continue
		}
		if !in.keep {
			sc, keys := secretCuts(d.nodes, cuts)
			cuts = append(cuts, sc...)
			res.redacted = append(res.redacted, keys...)
		}
		t := render(d.doc, cuts)
		if !seenTmpl[t] {
			res.templates = append(res.templates, t)
			seenTmpl[t] = true
		}
		markRole(d, roleSubscribe)
	}
	if len(res.templates) > 1 {
		res.note.Why += fmt.Sprintf("; the page sent %d frames per connection, kept in order", len(res.templates))
	}

	// Unsubscribe: a frame that ends a subscription and names a symbol.
	for _, d := range unsubs {
		for _, ref := range res.refs {
			cuts := symbolCuts(d.nodes, ref)
			if len(cuts) == 0 {
				continue
			}
			if !in.keep {
				sc, _ := secretCuts(d.nodes, cuts)
				cuts = append(cuts, sc...)
			}
			res.unsubscribe = []string{render(d.doc, cuts)}
			res.unsubNote = note(High, "the page unsubscribed %s with this frame", ref)
			markRole(d, roleUnsubscribe)
			break
		}
		if res.unsubscribe != nil {
			break
		}
	}
	res.symbols, res.symbolsNote = symbolList(res.refs, in.symbols)
	return res, nil
}

// singleSubscribe handles a capture without two subscribes of the same
// shape: the symbol comes from -symbol, from a frame that subscribes
// several at once, or from a guess clearly marked as one.
func singleSubscribe(in subscribeInput, subs []*sendDoc, res *subscribeResult) (string, []*sendDoc, error) {
	// -symbol names the symbol: find it in what the page sent.
	for _, sym := range in.symbols {
		for _, d := range subs {
			cuts := symbolCuts(d.nodes, sym)
			if len(cuts) == 0 {
				continue
			}
			got := cuts[0].n.str
			if cuts[0].n.kind == 's' {
				got = got[len(cuts[0].prefix) : len(got)-len(cuts[0].suffix)]
			}
			res.refs = []string{got}
			if !in.keep {
				sc, keys := secretCuts(d.nodes, cuts)
				cuts = append(cuts, sc...)
				res.redacted = append(res.redacted, keys...)
			}
			res.note = note(High, "-symbol %s is in the subscribe the page sent (%s)", sym, cuts[0].n.ptr)
			markRole(d, roleSubscribe)
			return render(d.doc, cuts), []*sendDoc{d}, nil
		}
	}
	// One frame with a list of similar items subscribes several symbols.
	for _, d := range subs {
		f, tmpl, ok := batchFamily(*d)
		if !ok {
			continue
		}
		res.refs = dedupe(f.refs)
		res.note = note(Medium, "one frame subscribed %d symbols at once (%s); the relay sends it per symbol with one item",
			len(res.refs), strings.Join(limitList(res.refs, 4), ", "))
		if !in.keep {
			if _, keys := secretCuts(d.nodes, nil); len(keys) > 0 {
				return "", nil, fmt.Errorf("%w: the subscribe frame carries a credential (%s); rerun with -keep-secrets", ErrCannotRelay, strings.Join(keys, ", "))
			}
		}
		markRole(d, roleSubscribe)
		return tmpl, []*sendDoc{d}, nil
	}
	// A guess from one frame.
	best, bestScore, second := "", -100, -100
	var bestDoc *sendDoc
	for _, d := range subs {
		for _, n := range d.nodes {
			if n.kind != 's' || secretLeaf(n) || tokenLike(n.str) {
				continue
			}
			for _, tok := range splitTokens(n.str) {
				s := symbolScore(tok, leafKey(n.ptr), in.received)
				switch {
				case tok == best:
				case s > bestScore:
					second, best, bestScore, bestDoc = bestScore, tok, s, d
				case s > second:
					second = s
				}
			}
		}
	}
	if bestDoc == nil || bestScore < 3 || bestScore-second < 2 {
		return "", nil, fmt.Errorf("%w: the page sent one subscribe (%s) and nothing shows which part is the symbol; "+
			"name it with -symbol (e.g. -symbol %s), or capture a page that subscribes two symbols",
			ErrCannotRelay, sample(subs[0].doc, in.keep, 80), exampleSymbol(best))
	}
	cuts := symbolCuts(bestDoc.nodes, best)
	if !in.keep {
		sc, keys := secretCuts(bestDoc.nodes, cuts)
		cuts = append(cuts, sc...)
		res.redacted = append(res.redacted, keys...)
	}
	res.refs = []string{best}
	res.note = note(Low, "only one subscribe was captured; %q looks like the symbol (it looks like a ticker and the server's frames repeat it). "+
		"Check it, then rerun with -symbol %s, or capture a page that subscribes two symbols", best, best)
	markRole(bestDoc, roleSubscribe)
	return render(bestDoc.doc, cuts), []*sendDoc{bestDoc}, nil
}

// urlSymbol handles a socket the page sent nothing on: one stream per
// symbol, named in the URL (Binance /ws/btcusdt@trade). -symbol must
// name the symbol found in the URL.
func urlSymbol(in subscribeInput, res *subscribeResult) (*subscribeResult, error) {
	u, err := url.Parse(in.url)
	if err == nil {
		for _, sym := range in.symbols {
			if i := findToken(u.Path, sym, true); i >= 0 {
				got := u.Path[i : i+len(sym)]
				ph, _ := casePlaceholder(sym, got)
				res.refs = []string{got}
				res.templates = nil
				res.urlTemplate = u.Scheme + "://" + u.Host + u.Path[:i] + ph + u.Path[i+len(sym):]
				if u.RawQuery != "" {
					res.urlTemplate += "?" + u.RawQuery
				}
				res.note = note(High, "the page sent nothing and -symbol %s is in the URL: one stream per symbol", sym)
				res.symbols, res.symbolsNote = symbolList(res.refs, in.symbols)
				return res, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: the page sent no frame on this socket, so it pushes without a subscribe; "+
		"if the URL names the symbol, say which with -symbol", ErrCannotRelay)
}

// symbolList builds the symbols key: the captured ones, then -symbol ones
// not captured (spelled in the captured case when all captured agree).
func symbolList(refs, extra []string) ([]relay.Symbol, Note) {
	var out []relay.Symbol
	seen := map[string]bool{}
	add := func(name, ref string) {
		n := name
		if !relay.ValidSymbol(n) {
			n = sanitizeName(n)
		}
		if n == "" || seen[strings.ToLower(n)] {
			return
		}
		seen[strings.ToLower(n)] = true
		s := relay.Symbol{Name: n}
		if ref != n {
			s.Ref = ref
		}
		out = append(out, s)
	}
	allLower, allUpper := len(refs) > 0, len(refs) > 0
	for _, r := range refs {
		allLower = allLower && r == strings.ToLower(r) && r != strings.ToUpper(r)
		allUpper = allUpper && r == strings.ToUpper(r) && r != strings.ToLower(r)
		add(r, r)
	}
	added := 0
	for _, s := range extra {
		if seen[strings.ToLower(s)] {
			continue
		}
		ref := s
		switch {
		case allLower:
			ref = strings.ToLower(s)
		case allUpper:
			ref = strings.ToUpper(s)
		}
		add(s, ref)
		added++
	}
	n := note(High, "the symbols subscribed in the capture")
	if added > 0 {
		n.Why += fmt.Sprintf(", and %s from -symbol", plural(added, "symbol", "symbols"))
	}
	return out, n
}

var intervalRE = regexp.MustCompile(`^\d+(ms|s|m|min|h|d|w|M)$`)

var channelWords = map[string]bool{"ticker": true, "tickers": true, "trade": true, "trades": true, "depth": true,
	"kline": true, "klines": true, "candle": true, "candles": true, "book": true, "books": true, "orderbook": true,
	"quote": true, "quotes": true, "bbo": true, "market": true, "markets": true, "sub": true, "subscribe": true,
	"spot": true, "futures": true, "swap": true, "public": true, "private": true, "channel": true, "stream": true,
	"level2": true, "l2": true, "snapshot": true, "update": true, "updates": true, "data": true, "price": true,
	"prices": true, "all": true, "json": true, "ws": true, "api": true, "event": true, "op": true, "action": true,
	"method": true, "args": true, "params": true, "type": true, "detail": true, "mini": true, "agg": true}

var currencies = []string{"usdt", "usdc", "busd", "btc", "xbt", "eth", "usd", "eur", "gbp", "jpy", "bnb", "sol", "xrp",
	"ltc", "doge", "ada", "dot", "dai", "krw", "cny", "aud", "cad", "chf", "try", "brl", "trx", "link", "avax", "matic"}

var symbolKeys = map[string]bool{"symbol": true, "symbols": true, "instid": true, "inst_id": true, "pair": true,
	"pairs": true, "product_id": true, "product_ids": true, "coin": true, "code": true, "s": true, "sym": true,
	"instrument": true, "instrument_name": true, "contract": true, "contract_code": true, "currency_pair": true,
	"market": true, "ticker": true, "instrumentid": true, "instrument_id": true}

// symbolScore rates how much a token of a sent frame looks like the
// symbol: ticker-like spelling, a currency code, a symbol-like key, and
// the server's frames repeating it count for; channel words and
// intervals count against.
func symbolScore(tok, key string, received []*record) int {
	lower := strings.ToLower(tok)
	if channelWords[lower] || intervalRE.MatchString(tok) || len(tok) < 2 {
		return -5
	}
	s := 0
	if strings.Trim(tok, "0123456789") == "" {
		s++
	}
	for _, c := range currencies {
		if strings.HasPrefix(lower, c) || strings.HasSuffix(lower, c) {
			s += 3
			break
		}
	}
	hasUpper, hasLower := tok != lower, tok != strings.ToUpper(tok)
	switch {
	case hasUpper && !hasLower:
		s += 2
	case hasUpper && hasLower:
		s -= 2 // CamelCase words are channel names (QuoteBin5m)
	}
	if symbolKeys[key] {
		s += 3
	}
	for _, r := range received {
		if slices.ContainsFunc(r.nodes, func(n node) bool { return n.kind == 's' && findToken(n.str, tok, false) >= 0 }) {
			s += 3
			break
		}
	}
	return s
}

func exampleSymbol(best string) string {
	if best != "" && len(best) <= 24 {
		return best
	}
	return "BTCUSDT"
}

func markRole(d *sendDoc, r role) {
	for _, rec := range d.recs {
		rec.role = r
	}
}

func distinct(vals []string) int { return len(dedupe(vals)) }

func dedupe(vals []string) []string {
	var out []string
	for _, v := range vals {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func limitList(vals []string, n int) []string {
	if len(vals) <= n {
		return vals
	}
	return append(slices.Clone(vals[:n]), "…")
}

func countWord(n int) string {
	words := []string{"no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
	if n < len(words) {
		return words[n]
	}
	return fmt.Sprint(n)
}
