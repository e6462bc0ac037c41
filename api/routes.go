package api

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes is the whole HTTP surface.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, limitQuery, s.cors.handler)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeErrorBody(w, errorf(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no route for %s", trunc(r.URL.Path, 120))))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeErrorBody(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s", r.Method, trunc(r.URL.Path, 120))))
	})

	// Streams (stream.go): counted, never timed, throttled or buffered.
	r.Group(func(r chi.Router) {
		r.Use(s.instrument(false), s.addrs.middleware)
		r.Get("/v1/stream", s.handleStreamAll)
		r.Get("/v1/quotes/{symbol}/stream", s.handleStreamOne)
	})

	r.Group(func(r chi.Router) {
		r.Use(s.instrument(true))
		r.Group(func(r chi.Router) {
			if s.rateLimit.Requests > 0 {
				r.Use(s.addrs.middleware, s.limitREST())
			}
			r.Get("/v1/symbols", s.handleSymbols)                                       // symbols.go
			r.Get("/v1/quotes", s.handleQuotes)                                         // rest.go
			r.Get("/v1/quotes/{symbol}", s.handleQuote)                                 // rest.go
			r.Get("/v1/quotes/{symbol}/history", s.handleHistory)                       // rest.go
			r.With(s.requireAdmin).Put("/v1/symbols/{symbol}", s.handlePutSymbol)       // admin.go
			r.With(s.requireAdmin).Delete("/v1/symbols/{symbol}", s.handleDeleteSymbol) // admin.go
		})
		r.Get("/healthz", s.handleHealthz) // health.go
		r.Get("/readyz", s.handleReadyz)   // health.go
		r.Get("/openapi.yaml", s.handleOpenAPI)
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	})
	if s.web != nil {
		r.Handle("/*", s.web)
	}
	return r
}

// handleOpenAPI serves the API's description.
func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(s.openapi)
}
