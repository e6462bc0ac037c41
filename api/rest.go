package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// writeJSON writes a JSON body with its status.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// quoteJSON returns the quote as served now: flagged stale while the
// symbol's upstream is stale.
func quoteJSON(ev *relay.Event, stale bool) []byte {
	if stale {
		return ev.StaleCopy()
	}
	return ev.JSON
}

var (
	hdrNoCache = []string{"no-cache"}
	hdrJSON    = []string{"application/json"}
	ageValues  = func() (v [120][]string) {
		for i := range v {
			v[i] = []string{strconv.Itoa(i)}
		}
		return
	}()
)

// handleQuote serves GET /v1/quotes/{symbol}.
func (s *Server) handleQuote(w http.ResponseWriter, r *http.Request) {
	sym, err := symbolParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ev, stale, err := s.broker.LatestStale(sym)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cq := s.quotes.get(ev, stale)
	h := w.Header()
	// Canonical keys set directly, values built once per quote: no
	// per-request formatting. The slices are shared and never modified.
	h["Etag"] = cq.etagH
	h["Cache-Control"] = hdrNoCache
	h["Last-Modified"] = cq.lastModified
	if age := int(time.Since(ev.ReceivedAt).Seconds()); age >= 0 && age < len(ageValues) {
		h["Age"] = ageValues[age]
	} else {
		h.Set("Age", strconv.Itoa(max(0, age)))
	}
	if etagMatch(r.Header.Get("If-None-Match"), cq.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = cq.length
	w.WriteHeader(http.StatusOK)
	w.Write(cq.body)
}

// etagMatch implements If-None-Match's weak comparison.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// handleQuotes serves GET /v1/quotes?symbols=A,B: the latest quote of each
// symbol that has one.
func (s *Server) handleQuotes(w http.ResponseWriter, r *http.Request) {
	syms, err := ParseSymbols(r.URL.Query().Get("symbols"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(syms) == 0 {
		syms = s.broker.Symbols()
	}
	b := make([]byte, 0, 64+len(syms)*320)
	b = append(b, `{"quotes":{`...)
	n := 0
	for _, sym := range syms {
		ev, stale, err := s.broker.LatestStale(sym)
		if errors.Is(err, relay.ErrNoData) {
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = strconv.AppendQuote(b, sym) // symbols are plain ASCII: Go and JSON quoting agree
		b = append(b, ':')
		b = append(b, quoteJSON(ev, stale)...)
	}
	b = append(b, "}}\n"...)
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, b)
}

// handleHistory serves GET /v1/quotes/{symbol}/history?after=&limit=.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	sym, err := symbolParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after := q.Get("after")
	if err := parseEventIDParam("after", after); err != nil {
		s.writeError(w, r, err)
		return
	}
	quotes, reset, err := s.broker.History(sym, after, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	size := 32
	for _, ev := range quotes {
		size += len(ev.JSON) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"quotes":[`...)
	for i, ev := range quotes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev.JSON...)
	}
	b = append(b, `],"reset":`...)
	b = strconv.AppendBool(b, reset)
	b = append(b, "}\n"...)
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, b)
}
