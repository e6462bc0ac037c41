package api

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/relay"
)

// FuzzQueryParams: no query value can crash a parser, pass an invalid
// value through, or produce an error that is not a 400 naming its
// parameter in a well-formed JSON body.
func FuzzQueryParams(f *testing.F) {
	f.Add("A,B", "100", "1732521600123-42", "5", "false")
	f.Add(strings.Repeat("x,", 120), "0", "-1-2", "NaN", "maybe")
	f.Add(" A , ,B,A", "1001", "1-", "1e400", "1")
	f.Add("a/b", "+5", "01-02", "-0", "")
	symbolPattern := regexp.MustCompile(relay.SymbolPattern)
	f.Fuzz(func(t *testing.T, symbols, limit, id, rate, snap string) {
		check := func(param string, err error) {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 || !strings.Contains(ae.msg, param) {
				t.Fatalf("%s: %v is not a 400 naming it", param, err)
			}
			w := httptest.NewRecorder()
			writeErrorBody(w, ae)
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("error body is not JSON: %q", w.Body.String())
			}
		}
		if syms, err := ParseSymbols(symbols); err != nil {
			check("symbols", err)
		} else {
			if len(syms) > maxSymbolsPerRequest {
				t.Fatalf("%d symbols accepted", len(syms))
			}
			seen := map[string]bool{}
			for _, s := range syms {
				if !symbolPattern.MatchString(s) || seen[s] {
					t.Fatalf("accepted %q", s)
				}
				seen[s] = true
			}
		}
		if n, err := parseLimit(limit); err != nil {
			check("limit", err)
		} else if n < 1 || n > 1000 {
			t.Fatalf("limit %d accepted", n)
		}
		if err := parseEventIDParam("after", id); err != nil {
			check("after", err)
		} else if id != "" {
			if parsed, err := relay.ParseEventID(id); err != nil || parsed.String() != id {
				t.Fatalf("id %q accepted", id)
			}
		}
		if r, err := parseMaxRate(rate); err != nil {
			check("max_rate", err)
		} else if rate != "" && !(r > 0 && r <= 1000) {
			t.Fatalf("max_rate %v accepted", r)
		}
		if _, err := parseBool("snapshot", snap, true); err != nil {
			check("snapshot", err)
		}
	})
}
