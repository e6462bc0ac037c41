package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/wsrelay/wsrelay/relay"
)

// Stable error codes of the JSON error body.
const (
	CodeInvalidSymbol    = "invalid_symbol"
	CodeUnknownSymbol    = "unknown_symbol"
	CodeNoData           = "no_data_yet"
	CodeTooManySymbols   = "too_many_symbols"
	CodeInvalidParameter = "invalid_parameter"
	CodeInvalidBody      = "invalid_body"
	CodeUnauthorized     = "unauthorized"
	CodeAdminDisabled    = "admin_disabled"
	CodeUnknownUpstream  = "unknown_upstream"
	CodeSymbolConflict   = "symbol_conflict"
	CodeUpstreamFull     = "upstream_full"
	CodeUnavailable      = "unavailable"
	CodeTooManyClients   = "too_many_clients"
	CodeRateLimited      = "rate_limited"
	CodeURITooLong       = "uri_too_long"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeNotReady         = "not_ready"
	CodeShuttingDown     = "shutting_down"
	CodeInternal         = "internal"
)

// apiError is an error with its HTTP status and stable code.
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter int // seconds; 0 = no Retry-After
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, msg string) *apiError {
	return &apiError{status: status, code: code, msg: msg}
}

// toAPIError maps sentinel errors to status codes; this is the one place
// where that happens. Unknown errors become a 500 without their text.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, relay.ErrInvalidSymbol):
		return errorf(http.StatusBadRequest, CodeInvalidSymbol, err.Error())
	case errors.Is(err, relay.ErrUnknownSymbol):
		return errorf(http.StatusNotFound, CodeUnknownSymbol, err.Error())
	case errors.Is(err, relay.ErrNoData):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeNoData, msg: err.Error(), retryAfter: 1}
	case errors.Is(err, relay.ErrInvalidID):
		return errorf(http.StatusBadRequest, CodeInvalidParameter, err.Error())
	case errors.Is(err, relay.ErrUnknownUpstream):
		return errorf(http.StatusBadRequest, CodeUnknownUpstream, err.Error())
	case errors.Is(err, relay.ErrUpstreamFull):
		return errorf(http.StatusConflict, CodeUpstreamFull, err.Error())
	case errors.Is(err, relay.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable, msg: err.Error(), retryAfter: 2}
	case errors.Is(err, relay.ErrSymbolExists):
		return errorf(http.StatusConflict, CodeSymbolConflict, err.Error())
	case errors.Is(err, relay.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeShuttingDown, msg: "the relay is shutting down", retryAfter: 1}
	}
	return errorf(http.StatusInternalServerError, CodeInternal, "internal error")
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError writes err as the JSON error body with its status. 5xx bodies
// never carry internal text: unknown errors are logged and replaced.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae.code == CodeInternal {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeErrorBody(w, ae)
}

func writeErrorBody(w http.ResponseWriter, ae *apiError) {
	var body errorBody
	body.Error.Code, body.Error.Message = ae.code, ae.msg
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	h.Del("Last-Modified")
	if ae.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	w.WriteHeader(ae.status)
	w.Write(append(b, '\n'))
}
