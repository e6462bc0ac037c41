package capture

import (
	"bytes"
	"regexp"
	"strings"
)

// Redacted replaces a secret wherever one would be printed.
const Redacted = "REDACTED"

// secretWords mark a header, query parameter or JSON key whose value is a
// credential (HAR pitfalls: tokens ride in URLs, custom headers and frames;
// Chrome's sanitized export removes only Cookie, Set-Cookie and
// Authorization).
var secretWords = []string{
	"token", "secret", "password", "passwd", "passphrase", "apikey", "api_key", "api-key",
	"signature", "session", "jwt", "credential", "authorization", "auth", "cookie", "ticket",
	"bearer", "private", "access_key", "accesskey", "hmac", "otp",
}

// secretExact are names that are secrets only as a whole word ("sign" is a
// signature; "signal" is not).
var secretExact = map[string]bool{"sign": true, "sig": true, "key": false, "pass": true, "pwd": true, "sid": true}

// secretName reports whether a header, query or JSON key name carries a
// credential.
func secretName(name string) bool {
	n := strings.ToLower(name)
	if secretExact[n] {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	for _, part := range strings.FieldsFunc(n, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		if secretExact[part] {
			return true
		}
	}
	return false
}

var tokenRE = regexp.MustCompile(`[A-Za-z0-9+/_\-]{20,}={0,2}(\.[A-Za-z0-9+/_\-]{8,}={0,2}){0,2}`)

// tokenLike reports a value that looks like a credential whatever its
// name: a JWT, or a long run of base64 or hex with letters and digits.
func tokenLike(v string) bool {
	if len(v) < 20 || len(v) > 4096 {
		return false
	}
	if strings.HasPrefix(v, "eyJ") && strings.Count(v, ".") == 2 {
		return true
	}
	if !tokenRE.MatchString(v) || tokenRE.FindString(v) != v {
		return false
	}
	var lower, upper, digit int
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z':
			lower++
		case c >= 'A' && c <= 'Z':
			upper++
		case c >= '0' && c <= '9':
			digit++
		}
	}
	if digit == 0 || lower+upper == 0 {
		return false
	}
	// Hex digests and ids: long and mixed; base64: mixed case and digits.
	return (digit >= 4 && lower+upper >= 4) && (lower > 0 && upper > 0 || len(v) >= 32)
}

// redactText hides token-like runs in free text.
func redactText(s string) string {
	return tokenRE.ReplaceAllStringFunc(s, func(m string) string {
		if tokenLike(m) {
			return Redacted
		}
		return m
	})
}

// redactDoc returns doc with the values of secret-named keys and
// token-like strings replaced, and whether anything was replaced.
func redactDoc(doc []byte) ([]byte, bool) {
	nodes := walkJSON(doc)
	if nodes == nil {
		r := redactText(string(doc))
		return []byte(r), r != string(doc)
	}
	var cuts []node
	for _, n := range nodes {
		if n.depth == 0 {
			continue
		}
		if n.isLeaf() && n.kind != 'z' && n.kind != 'b' && (secretLeaf(n) || (n.kind == 's' && tokenLike(n.str))) {
			cuts = append(cuts, n)
		}
	}
	if len(cuts) == 0 {
		return doc, false
	}
	var out bytes.Buffer
	last := 0
	for _, n := range cuts {
		out.Write(doc[last:n.start])
		out.WriteString(`"` + Redacted + `"`)
		last = n.end
	}
	out.Write(doc[last:])
	return out.Bytes(), true
}

// secretLeaf reports a leaf whose own key (or the key of its enclosing
// list) names a credential.
func secretLeaf(n node) bool {
	toks := strings.Split(n.ptr, "/")
	for i := len(toks) - 1; i >= 1; i-- {
		t := toks[i]
		if t != "" && strings.Trim(t, "0123456789") == "" {
			continue // an index: look at the list's key
		}
		return secretName(strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")) && (n.kind == 's' && n.str != "" || n.kind == 'n')
	}
	return false
}

// sample renders a record for a report: redacted unless keep, shortened.
func sample(doc []byte, keep bool, n int) string {
	if !keep {
		doc, _ = redactDoc(doc)
	}
	s := string(doc)
	s = strings.Map(func(r rune) rune {
		if r < 0x20 {
			return '·'
		}
		return r
	}, s)
	return truncateString(s, n)
}
