package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/wsrelay/wsrelay/relay"
)

func symbolParam(r *http.Request) (string, error) {
	sym := chi.URLParam(r, "symbol")
	if !relay.ValidSymbol(sym) {
		return "", errorf(http.StatusBadRequest, CodeInvalidSymbol, fmt.Sprintf("symbol: %q must match %s", trunc(sym, 80), relay.SymbolPattern))
	}
	return sym, nil
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// snapshot is a quote as served by GET /v1/quotes/{symbol}, with its
// header values built once per quote rather than per request.
type snapshot struct {
	ev           *relay.Event
	stale        bool
	etag         string
	etagH        []string
	lastModified []string
	length       []string
	body         []byte // quote JSON and a newline
}

// snapshotOf returns the cached snapshot of ev, building it on first use.
func (s *Server) snapshotOf(ev *relay.Event, stale bool) *snapshot {
	s.snapMu.RLock()
	sn := s.snaps[ev.Symbol]
	s.snapMu.RUnlock()
	if sn != nil && sn.ev == ev && sn.stale == stale {
		return sn
	}
	body := quoteJSON(ev, stale)
	b := make([]byte, 0, len(body)+1)
	b = append(append(b, body...), '\n')
	etag := `"` + ev.ID.String() + `"`
	sn = &snapshot{
		ev: ev, stale: stale, etag: etag, etagH: []string{etag},
		lastModified: []string{ev.ReceivedAt.UTC().Format(http.TimeFormat)},
		length:       []string{strconv.Itoa(len(b))},
		body:         b,
	}
	s.snapMu.Lock()
	s.snaps[ev.Symbol] = sn
	s.snapMu.Unlock()
	return sn
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
	sn := s.snapshotOf(ev, stale)
	h := w.Header()
	// Canonical keys set directly, values built once per quote: no
	// per-request formatting. The slices are shared and never modified.
	h["Etag"] = sn.etagH
	h["Cache-Control"] = hdrNoCache
	h["Last-Modified"] = sn.lastModified
	if age := int(time.Since(ev.ReceivedAt).Seconds()); age >= 0 && age < len(ageValues) {
		h["Age"] = ageValues[age]
	} else {
		h.Set("Age", strconv.Itoa(max(0, age)))
	}
	if etagMatch(r.Header.Get("If-None-Match"), sn.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = sn.length
	w.WriteHeader(http.StatusOK)
	w.Write(sn.body)
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
	limit, err := ParseLimit(q.Get("limit"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after := q.Get("after")
	if err := ParseEventIDParam("after", after); err != nil {
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

// symbolInfo is one entry of GET /v1/symbols.
type symbolInfo struct {
	Symbol      string      `json:"symbol"`
	Upstream    string      `json:"upstream"`
	State       string      `json:"state"`
	Connected   bool        `json:"connected"`
	LastQuoteAt *time.Time  `json:"last_quote_at"`
	Frames      uint64      `json:"frames"`
	Quotes      uint64      `json:"quotes"`
	Ignored     uint64      `json:"ignored"`
	Reconnects  uint64      `json:"reconnects"`
	Drops       uint64      `json:"drops"`
	LastError   string      `json:"last_error,omitempty"`
	LastErrorAt *time.Time  `json:"last_error_at,omitempty"`
	Preset      string      `json:"preset,omitempty"`
	Channel     string      `json:"channel,omitempty"`
	Fields      *fieldsInfo `json:"fields,omitempty"`
}

// fieldsInfo says where a quote's data holds its prices.
type fieldsInfo struct {
	Last string `json:"last,omitempty"`
	Bid  string `json:"bid,omitempty"`
	Ask  string `json:"ask,omitempty"`
}

func toInfo(st relay.SymbolStatus) symbolInfo {
	in := symbolInfo{
		Symbol: st.Symbol, Upstream: st.Upstream, State: string(st.State), Connected: st.Connected,
		Frames: st.Frames, Quotes: st.Quotes, Ignored: st.Ignored, Reconnects: st.Reconnects, Drops: st.Drops,
		LastError: st.LastError, Preset: st.Preset, Channel: st.Channel,
	}
	if f := st.Fields; f != (relay.Fields{}) {
		in.Fields = &fieldsInfo{Last: f.Last, Bid: f.Bid, Ask: f.Ask}
	}
	if !st.LastQuoteAt.IsZero() {
		t := st.LastQuoteAt.UTC()
		in.LastQuoteAt = &t
	}
	if !st.LastErrorAt.IsZero() {
		t := st.LastErrorAt.UTC()
		in.LastErrorAt = &t
	}
	return in
}

// handleSymbols serves GET /v1/symbols.
func (s *Server) handleSymbols(w http.ResponseWriter, r *http.Request) {
	sts := s.ups.Statuses()
	out := struct {
		Symbols []symbolInfo `json:"symbols"`
	}{Symbols: make([]symbolInfo, 0, len(sts))}
	for _, st := range sts {
		out.Symbols = append(out.Symbols, toInfo(st))
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, append(b, '\n'))
}

// requireAdmin checks the bearer token in constant time.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.adminToken == "" {
			writeErrorBody(w, errorf(http.StatusForbidden, CodeAdminDisabled, "admin endpoints are disabled: no admin token is configured"))
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.adminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wsrelay"`)
			writeErrorBody(w, errorf(http.StatusUnauthorized, CodeUnauthorized, "a valid Authorization: Bearer token is required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handlePutSymbol serves PUT /v1/symbols/{symbol}.
func (s *Server) handlePutSymbol(w http.ResponseWriter, r *http.Request) {
	sym, err := symbolParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body struct {
		Upstream string `json:"upstream"`
		Ref      string `json:"ref"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, CodeInvalidBody, "body: could not be read"))
		return
	}
	if len(raw) > 4096 {
		s.writeError(w, r, errorf(http.StatusBadRequest, CodeInvalidBody, "body: larger than 4 KiB"))
		return
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			s.writeError(w, r, errorf(http.StatusBadRequest, CodeInvalidBody, "body: "+trunc(err.Error(), 200)))
			return
		}
	}
	if len(body.Ref) > 256 {
		s.writeError(w, r, errorf(http.StatusBadRequest, CodeInvalidBody, "ref: longer than 256 bytes"))
		return
	}
	if body.Upstream == "" {
		names := s.ups.Upstreams()
		if len(names) != 1 {
			s.writeError(w, r, errorf(http.StatusBadRequest, CodeInvalidBody, fmt.Sprintf("upstream: required when %d upstreams are configured", len(names))))
			return
		}
		body.Upstream = names[0]
	}
	created, err := s.ups.Add(body.Upstream, relay.Symbol{Name: sym, Ref: body.Ref})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, _ := s.ups.Status(sym)
	b, _ := json.Marshal(toInfo(st))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.log.Info("symbol added", "symbol", sym, "upstream", body.Upstream)
	}
	writeJSON(w, status, append(b, '\n'))
}

// handleDeleteSymbol serves DELETE /v1/symbols/{symbol}.
func (s *Server) handleDeleteSymbol(w http.ResponseWriter, r *http.Request) {
	sym, err := symbolParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.ups.Remove(sym); err != nil {
		s.writeError(w, r, err)
		return
	}
	// Drop its cached REST response. (A GET already past the broker when
	// the symbol went may put one back: one entry, replaced if the symbol
	// is added again.)
	s.snapMu.Lock()
	delete(s.snaps, sym)
	s.snapMu.Unlock()
	s.log.Info("symbol removed", "symbol", sym)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
}

// handleReadyz: 200 once every configured symbol has been live at least
// once; 503 (with the ones still waiting) before that and from the moment
// shutdown starts.
func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.shuttingDown.Load() {
		writeErrorBody(w, &apiError{status: http.StatusServiceUnavailable, code: CodeShuttingDown, msg: "the relay is shutting down"})
		return
	}
	var waiting []string
	for _, st := range s.ups.Statuses() {
		if !st.EverLive {
			waiting = append(waiting, st.Symbol)
		}
	}
	if len(waiting) > 0 {
		var body struct {
			errorBody
			Waiting []string `json:"waiting"`
		}
		body.Error.Code = CodeNotReady
		body.Error.Message = fmt.Sprintf("%d symbols have not been live yet", len(waiting))
		body.Waiting = waiting
		b, _ := json.Marshal(body)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, append(b, '\n'))
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`+"\n"))
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(s.openapi)
}
