package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

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
