package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// quoteFields says where a symbol's quotes hold their prices: parsed JSON
// pointers into the quote's data (GET /v1/symbols "fields"); nil pointers
// are absent. A nil *quoteFields means the heuristic decides.
type quoteFields struct {
	last, bid, ask []string
}

// parseFields turns /v1/symbols' fields into pointers; nil when none is
// set or valid.
func parseFields(last, bid, ask string) *quoteFields {
	f := &quoteFields{}
	ok := false
	for _, p := range []struct {
		src string
		dst *[]string
	}{{last, &f.last}, {bid, &f.bid}, {ask, &f.ask}} {
		if p.src == "" {
			continue
		}
		toks, valid := parsePointer(p.src)
		if !valid {
			continue
		}
		*p.dst = append(make([]string, 0, len(toks)), toks...) // non-nil: [""] is the key "", [] the whole data
		ok = true
	}
	if !ok {
		return nil
	}
	return f
}

// parsePointer splits an RFC 6901 JSON pointer into its reference tokens
// ("" is the whole document); valid is false for a malformed one.
func parsePointer(p string) (toks []string, valid bool) {
	if p == "" {
		return nil, true
	}
	if p[0] != '/' {
		return nil, false
	}
	toks = strings.Split(p[1:], "/")
	for i, t := range toks {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, false
			}
		}
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, true
}

// prices is what a quote line shows; an empty string is absent. Each is
// the venue's own text: a JSON string unquoted, a JSON number as written
// (never through float64, so 2^53 and beyond survive).
type prices struct {
	last, bid, ask string
	sentNS         string // the simulated feed's send time, for e2e latency
}

func (p prices) empty() bool { return p.last == "" && p.bid == "" && p.ask == "" }

// The heuristic's keys, by venue (data as the presets extract it):
//
//	last: last_price (seed, Deribit), lastPrice (Bybit, HTX), last (OKX,
//	      Kraken, Gate), close (HTX, seed), price_str and price (Bitstamp,
//	      Coinbase, KuCoin, Kraken and Deribit trades, HTX trade.detail,
//	      Gate trades), c (Binance ticker), px (OKX trades), p (Binance and
//	      Bybit trades; after c, since Binance's ticker has p = price change)
//	bid:  best_bid (Coinbase), bestBid (KuCoin), bidPx (OKX), bid1Price
//	      (Bybit), best_bid_price (Deribit), highest_bid (Gate), bid (Kraken,
//	      HTX), b (Binance, Gate book_ticker, Bybit orderbook), bids (OKX
//	      bbo-tbt, Bitstamp order book)
//	ask:  the same names with ask.
//
// Bitfinex's positional arrays need fields: no key names a price there.
var (
	lastKeys = []string{"last_price", "lastPrice", "last", "close", "price_str", "price", "c", "px", "p"}
	bidKeys  = []string{"best_bid", "bestBid", "bidPx", "bid1Price", "best_bid_price", "highest_bid", "bid", "b", "bids"}
	askKeys  = []string{"best_ask", "bestAsk", "askPx", "ask1Price", "best_ask_price", "lowest_ask", "ask", "a", "asks"}
	// descend are the envelopes a quote object may sit in.
	descend = []string{"data", "tick", "result", "params"}
)

// decodeData decodes a quote's data keeping numbers as json.Number.
func decodeData(data []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	return v, true
}

// pickPrices finds last, bid and ask in a quote's data: through f when
// given and any of its pointers resolves, else by the heuristic.
func pickPrices(data []byte, f *quoteFields) prices {
	v, ok := decodeData(data)
	if !ok {
		return prices{}
	}
	if f != nil {
		var p prices
		if f.last != nil {
			p.last = priceText(lookupPointer(v, f.last), true)
		}
		if f.bid != nil {
			p.bid = priceText(lookupPointer(v, f.bid), true)
		}
		if f.ask != nil {
			p.ask = priceText(lookupPointer(v, f.ask), true)
		}
		if !p.empty() {
			return p
		}
	}
	return guessPrices(v)
}

// lookupPointer follows a parsed JSON pointer through decoded JSON.
func lookupPointer(v any, toks []string) any {
	for _, t := range toks {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[t]; !ok {
				return nil
			}
		case []any:
			i, ok := arrayIndex(t)
			if !ok || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// arrayIndex parses an RFC 6901 array index (no sign, no leading zero).
func arrayIndex(t string) (int, bool) {
	if t == "" || len(t) > 9 || (len(t) > 1 && t[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return 0, false
		}
		n = n*10 + int(t[i]-'0')
	}
	return n, true
}

// priceText is the text of a price value: a string (trimmed, non-empty),
// a number as written, or the first element of an array (order book
// levels [[price, size], …], Kraken's [price, volume]), at most two levels
// deep. numbers says whether a bare JSON number counts: not for the
// one-letter keys b and a, which on Binance's old trade stream were order
// ids.
func priceText(v any, numbers bool) string {
	for range 3 {
		switch x := v.(type) {
		case string:
			return printable(strings.TrimSpace(x), 40)
		case json.Number:
			if numbers {
				return string(x)
			}
			return ""
		case []any:
			if len(x) == 0 {
				return ""
			}
			v, numbers = x[0], true
		default:
			return ""
		}
	}
	return ""
}

// guessPrices looks for the quote object breadth first: the data itself,
// then its envelopes (data, tick, result, params) and the first element
// of arrays, four levels deep; the first object that holds a price key is
// read.
func guessPrices(v any) prices {
	if t := priceText(v, true); t != "" {
		if _, isArray := v.([]any); !isArray {
			return prices{last: t} // the data is the price itself (extract: /c)
		}
	}
	level := []any{v}
	for depth := 0; depth < 5 && len(level) > 0; depth++ {
		var next []any
		for _, x := range level {
			switch o := x.(type) {
			case map[string]any:
				if p := pricesIn(o); !p.empty() {
					return p
				}
				for _, k := range descend {
					if c, ok := o[k]; ok {
						next = append(next, c)
					}
				}
			case []any:
				if len(o) > 0 {
					next = append(next, o[0])
				}
			}
		}
		level = next
	}
	return prices{}
}

func pricesIn(o map[string]any) prices {
	first := func(keys []string) string {
		for _, k := range keys {
			if v, ok := o[k]; ok {
				if s := priceText(v, len(k) > 1); s != "" {
					return s
				}
			}
		}
		return ""
	}
	p := prices{last: first(lastKeys), bid: first(bidKeys), ask: first(askKeys)}
	if n, ok := o["sent_ns"].(json.Number); ok && !p.empty() {
		p.sentNS = string(n)
	}
	return p
}

// tailQuote is the part of a quote a line shows.
type tailQuote struct {
	Symbol     string          `json:"symbol"`
	Seq        uint64          `json:"seq"`
	ReceivedAt time.Time       `json:"received_at"`
	Stale      bool            `json:"stale"`
	Data       json.RawMessage `json:"data"`
}

// formatQuote renders one line: symbol, seq, last/bid/ask (through the
// symbol's fields, or guessed), and the latency from the relay's receipt
// (and from the upstream's send time when the frame carries one). A quote
// with no price found shows the start of its data instead. fieldsOf may be
// nil.
func formatQuote(raw []byte, fieldsOf func(symbol string) *quoteFields, now time.Time) string {
	var q tailQuote
	if err := json.Unmarshal(raw, &q); err != nil {
		return printable(string(raw), 200)
	}
	var f *quoteFields
	if fieldsOf != nil {
		f = fieldsOf(q.Symbol)
	}
	var line strings.Builder
	fmt.Fprintf(&line, "%-10s seq=%-7d", printable(q.Symbol, 64), q.Seq)
	p := pickPrices(q.Data, f)
	for _, kv := range [...][2]string{{"last", p.last}, {"bid", p.bid}, {"ask", p.ask}} {
		if kv[1] != "" {
			fmt.Fprintf(&line, "  %s=%s", kv[0], kv[1])
		}
	}
	if p.empty() {
		fmt.Fprintf(&line, "  data=%s", printable(string(q.Data), 96))
	}
	fmt.Fprintf(&line, "  relay+%s", now.Sub(q.ReceivedAt).Round(100*time.Microsecond))
	if p.sentNS != "" {
		if ns, err := strconv.ParseInt(p.sentNS, 10, 64); err == nil && ns > 0 {
			fmt.Fprintf(&line, "  e2e=%s", now.Sub(time.Unix(0, ns)).Round(100*time.Microsecond))
		}
	}
	if q.Stale {
		line.WriteString("  STALE")
	}
	return line.String()
}

// printable keeps a venue's text off the terminal's control sequences:
// text with a control character is shown quoted; any text is cut to n
// runes.
func printable(s string, n int) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return strconv.QuoteToASCII(truncateRunes(s, n))
		}
	}
	return truncateRunes(s, n)
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
