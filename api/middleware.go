package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
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

// clientIP is the address the per-address limits count: the connection's
// peer, or, when the peer is a trusted proxy, the client its
// X-Forwarded-For names. The header is read from the right (the entry the
// nearest proxy appended) and the first address outside the trusted ranges
// is the client, so a client cannot pick its address by sending the header
// itself. A malformed entry stops the walk at the last trusted hop.
func (s *Server) clientIP(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if len(s.trusted) == 0 {
		return peer
	}
	hop, err := netip.ParseAddr(peer)
	if err != nil || !s.isTrusted(hop.Unmap()) {
		return peer
	}
	hop = hop.Unmap()
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(entry))
			if err != nil {
				return hop.String()
			}
			hop = a.Unmap()
			if !s.isTrusted(hop) {
				return hop.String()
			}
		}
	}
	return hop.String() // every hop trusted: the left-most is the client
}

func (s *Server) isTrusted(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads trusted_proxies entries: CIDR prefixes or
// single addresses.
func ParseTrustedProxies(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address or CIDR prefix", trunc(e, 80))
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// cors answers CORS preflights and sets Access-Control-Allow-Origin for the
// configured origins. Credentials are never allowed, so "*" stays safe.
type cors struct {
	any     bool
	origins []string
}

func newCORS(origins []string) (*cors, error) {
	c := &cors{}
	for _, o := range origins {
		switch {
		case o == "*":
			c.any = true
		case strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://"):
			c.origins = append(c.origins, strings.TrimSuffix(o, "/"))
		default:
			return nil, fmt.Errorf("cors_origins: %q is not * or an http(s):// origin", trunc(o, 80))
		}
	}
	return c, nil
}

func (c *cors) allowed(origin string) string {
	if origin == "" {
		return ""
	}
	if c.any {
		return "*"
	}
	if slices.Contains(c.origins, origin) {
		return origin
	}
	return ""
}

func (c *cors) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allow := c.allowed(origin)
		h := w.Header()
		if !c.any {
			h.Add("Vary", "Origin")
		}
		if allow != "" {
			h.Set("Access-Control-Allow-Origin", allow)
			h.Set("Access-Control-Expose-Headers", "ETag, Last-Modified, Age, Retry-After")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if allow != "" {
				h.Set("Access-Control-Allow-Methods", "GET, PUT, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, Cache-Control, If-None-Match")
				h.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CheckCORSOrigins validates a cors_origins list as New would.
func CheckCORSOrigins(origins []string) error {
	_, err := newCORS(origins)
	return err
}

// limitQuery answers 414 for query strings past MaxQueryLength.
func limitQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.RawQuery) > MaxQueryLength {
			writeErrorBody(w, errorf(http.StatusRequestURITooLong, CodeURITooLong,
				fmt.Sprintf("query: %d bytes, at most %d", len(r.URL.RawQuery), MaxQueryLength)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitREST rate-limits REST requests by client address (clientIP) and
// answers 429 with Retry-After.
func (s *Server) limitREST() func(http.Handler) http.Handler {
	rl := s.rateLimit
	retry := max(1, int(rl.Window.Round(time.Second)/time.Second))
	return httprate.LimitBy(rl.Requests, rl.Window,
		func(r *http.Request) (string, error) { return s.clientIP(r), nil },
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			if w.Header().Get("Retry-After") == "" {
				w.Header().Set("Retry-After", strconv.Itoa(retry))
			}
			writeErrorBody(w, errorf(http.StatusTooManyRequests, CodeRateLimited,
				fmt.Sprintf("more than %d requests per %s from this address", rl.Requests, rl.Window)))
		}))
}
