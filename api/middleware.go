package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"
)

// instrument counts requests by route pattern, method and status; timed
// also records their duration (never for streams, which last for hours).
func (s *Server) instrument(timed bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			route := chi.RouteContext(r.Context()).RoutePattern()
			if route == "" {
				route = "unmatched"
			}
			code := ww.Status()
			if code == 0 {
				code = http.StatusOK
			}
			s.metrics.httpReqs.WithLabelValues(route, r.Method, strconv.Itoa(code)).Inc()
			if timed {
				s.metrics.httpDur.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
			}
		})
	}
}

// maxQueryLength bounds a request's query string; longer is 414.
const maxQueryLength = 4096

// limitQuery answers 414 for query strings past maxQueryLength.
func limitQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.RawQuery) > maxQueryLength {
			writeErrorBody(w, errorf(http.StatusRequestURITooLong, CodeURITooLong,
				fmt.Sprintf("query: %d bytes, at most %d", len(r.URL.RawQuery), maxQueryLength)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitREST rate-limits REST requests by client address (clientAddr) and
// answers 429 with Retry-After.
func (s *Server) limitREST() func(http.Handler) http.Handler {
	rl := s.rateLimit
	retry := max(1, int(rl.Window.Round(time.Second)/time.Second))
	return httprate.LimitBy(rl.Requests, rl.Window,
		func(r *http.Request) (string, error) { return clientAddr(r), nil },
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			if w.Header().Get("Retry-After") == "" {
				w.Header().Set("Retry-After", strconv.Itoa(retry))
			}
			writeErrorBody(w, errorf(http.StatusTooManyRequests, CodeRateLimited,
				fmt.Sprintf("more than %d requests per %s from this address", rl.Requests, rl.Window)))
		}))
}
