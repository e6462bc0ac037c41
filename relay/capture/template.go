package capture

import (
	"encoding/json"
	"slices"
	"strings"
)

// A template is cut out of a frame as it was sent: the parts that vary
// are replaced by the relay's template variables ({symbol} and its case
// variants inside strings, {id} for request ids), everything else is kept
// byte for byte.

// cut replaces one leaf of a document: a string leaf keeps prefix and
// suffix around the placeholder; any other leaf becomes the placeholder.
type cut struct {
	n              node
	prefix, suffix string
	placeholder    string // {symbol}, {symbol_lower}, {symbol_upper}, {id}, {value}, REDACTED
	whole          bool   // replace the raw value (numbers: {id}, {value})
}

// render applies cuts (in any order) to doc.
func render(doc []byte, cuts []cut) string {
	slices.SortFunc(cuts, func(a, b cut) int { return a.n.start - b.n.start })
	var b strings.Builder
	last := 0
	for _, c := range cuts {
		if c.n.start < last {
			continue // overlapping: keep the first
		}
		b.Write(doc[last:c.n.start])
		if c.whole {
			b.WriteString(c.placeholder)
		} else {
			b.WriteByte('"')
			b.WriteString(jsonInner(c.prefix))
			b.WriteString(c.placeholder)
			b.WriteString(jsonInner(c.suffix))
			b.WriteByte('"')
		}
		last = c.n.end
	}
	b.Write(doc[last:])
	return b.String()
}

// jsonInner is s escaped as the inside of a JSON string.
func jsonInner(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// isSymChar reports characters that belong to a symbol when the varying
// part of a captured value is widened to whole tokens: letters, digits,
// '-' and '_' (BTC-USDT, BTC_USDT) and, when slash is set, '/' (XBT/USD).
// Dots, colons, '@' and spaces separate channel parts (market.btcusdt.ticker,
// QuoteBin5m:14, btcusdt@trade).
func isSymChar(c byte, slash bool) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || (slash && c == '/')
}

// slashSymbols reports values that each hold one '/' inside (XBT/USD), so
// that '/' is part of the symbol rather than a path separator.
func slashSymbols(vals []string) bool {
	for _, v := range vals {
		i := strings.IndexByte(v, '/')
		if i <= 0 || i == len(v)-1 || strings.Count(v, "/") != 1 {
			return false
		}
	}
	return true
}

// varyingPart returns, for string values that differ, the common prefix
// and suffix around the part that varies, widened to whole tokens so that
// 14 and 15 in QuoteBin5m:14 and QuoteBin5m:15 give the symbols 14 and
// 15, not 4 and 5. ok is false when the values do not differ.
func varyingPart(vals []string) (prefix, suffix string, ok bool) {
	if len(vals) < 2 {
		return "", "", false
	}
	slash := slashSymbols(vals)
	p := vals[0]
	s := vals[0]
	differ := false
	for _, v := range vals[1:] {
		if v != vals[0] {
			differ = true
		}
		p = commonPrefix(p, v)
		s = commonSuffix(s, v)
	}
	if !differ {
		return "", "", false
	}
	shortest := len(vals[0])
	for _, v := range vals {
		shortest = min(shortest, len(v))
	}
	if len(p)+len(s) > shortest {
		s = s[len(p)+len(s)-shortest:]
	}
	for len(p) > 0 && isSymChar(p[len(p)-1], slash) {
		p = p[:len(p)-1]
	}
	for len(s) > 0 && isSymChar(s[0], slash) {
		s = s[1:]
	}
	for _, v := range vals {
		if len(v)-len(p)-len(s) <= 0 {
			return "", "", false // one value is only the fixed part
		}
	}
	return p, s, true
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

func commonSuffix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return a[len(a)-n:]
}

// findToken finds sym in v as a whole token (bounded by non-symbol
// characters); fold allows another case. It returns the index or -1.
func findToken(v, sym string, fold bool) int {
	if sym == "" {
		return -1
	}
	hay, needle := v, sym
	if fold {
		hay, needle = strings.ToLower(v), strings.ToLower(sym)
	}
	slash := strings.Contains(sym, "/")
	for from := 0; from <= len(hay)-len(needle); {
		i := strings.Index(hay[from:], needle)
		if i < 0 {
			return -1
		}
		i += from
		end := i + len(needle)
		if (i == 0 || !isSymChar(v[i-1], slash)) && (end == len(v) || !isSymChar(v[end], slash)) {
			return i
		}
		from = i + 1
	}
	return -1
}

// casePlaceholder names the template variable that renders ref as got.
func casePlaceholder(ref, got string) (string, bool) {
	switch got {
	case ref:
		return "{symbol}", true
	case strings.ToLower(ref):
		return "{symbol_lower}", true
	case strings.ToUpper(ref):
		return "{symbol_upper}", true
	}
	return "", false
}

// splitTokens splits v into symbol-like tokens.
func splitTokens(v string) []string {
	slash := strings.Count(v, "/") == 1 && !strings.HasPrefix(v, "/")
	return strings.FieldsFunc(v, func(r rune) bool { return r > 127 || !isSymChar(byte(r), slash) })
}
