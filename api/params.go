package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/wsrelay/wsrelay/relay"
)

// maxSymbolsPerRequest bounds symbols= lists.
const maxSymbolsPerRequest = 100

// symbolParam returns the route's {symbol}, checked.
func symbolParam(r *http.Request) (string, error) {
	sym := chi.URLParam(r, "symbol")
	if !relay.ValidSymbol(sym) {
		return "", errorf(http.StatusBadRequest, CodeInvalidSymbol, fmt.Sprintf("symbol: %q must match %s", trunc(sym, 80), relay.SymbolPattern))
	}
	return sym, nil
}

// ParseSymbols parses a comma-separated symbols= value as the API does
// (wsrelay tail checks its arguments with it): more than
// maxSymbolsPerRequest is too_many_symbols (checked first), any invalid
// name is invalid_symbol. Empty items are skipped and duplicates dropped;
// an empty list means "every symbol" to the caller.
func ParseSymbols(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	if strings.Count(v, ",") >= maxSymbolsPerRequest*4 {
		return nil, errorf(http.StatusBadRequest, CodeTooManySymbols, fmt.Sprintf("symbols: more than %d symbols", maxSymbolsPerRequest))
	}
	parts := strings.Split(v, ",")
	out := make([]string, 0, len(parts))
	seen := make(map[string]bool, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	if len(out) > maxSymbolsPerRequest {
		return nil, errorf(http.StatusBadRequest, CodeTooManySymbols, fmt.Sprintf("symbols: %d symbols, at most %d per request", len(out), maxSymbolsPerRequest))
	}
	for _, p := range out {
		if !relay.ValidSymbol(p) {
			return nil, errorf(http.StatusBadRequest, CodeInvalidSymbol, fmt.Sprintf("symbols: %q must match %s", trunc(p, 80), relay.SymbolPattern))
		}
	}
	return out, nil
}

// parseLimit parses limit= (1–1000, default 100).
func parseLimit(v string) (int, error) {
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, errorf(http.StatusBadRequest, CodeInvalidParameter, fmt.Sprintf("limit: %q is not an integer from 1 to 1000", trunc(v, 32)))
	}
	return n, nil
}

// parseEventIDParam checks an event ID parameter (after=, last_event_id=).
func parseEventIDParam(name, v string) error {
	if v == "" {
		return nil
	}
	if _, err := relay.ParseEventID(v); err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidParameter, fmt.Sprintf("%s: %q is not an event id (<epoch>-<n>)", name, trunc(v, 48)))
	}
	return nil
}

// parseBool parses snapshot= and similar flags.
func parseBool(name, v string, def bool) (bool, error) {
	switch v {
	case "":
		return def, nil
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, errorf(http.StatusBadRequest, CodeInvalidParameter, fmt.Sprintf("%s: %q is not true or false", name, trunc(v, 16)))
}

// parseMaxRate parses max_rate= (quotes per second per symbol, 0 < N ≤ 1000).
func parseMaxRate(v string) (float64, error) {
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0 && f <= 1000) {
		return 0, errorf(http.StatusBadRequest, CodeInvalidParameter, fmt.Sprintf("max_rate: %q is not a number above 0 and at most 1000", trunc(v, 32)))
	}
	return f, nil
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
