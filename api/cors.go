package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

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
