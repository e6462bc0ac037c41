package api

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wsrelay/wsrelay/relay"
)

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
	s.quotes.drop(sym)
	s.log.Info("symbol removed", "symbol", sym)
	w.WriteHeader(http.StatusNoContent)
}
