// Package web is wsrelay's live quote board: a static page (HTML, CSS and
// JavaScript modules, no build step, no external resources) embedded into
// the binary. It talks to the relay only through its public HTTP API: one
// EventSource for every symbol (GET /v1/stream without symbols=), REST for
// the symbol list (upstream, state, fields) and the selected symbol's
// history. The list is virtualised and redrawn once per animation frame,
// so a whole exchange (hundreds of symbols, each updating several times a
// second) costs the browser little; see the README's Performance section.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the page and its assets. Unknown paths are 404.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		files.ServeHTTP(w, r)
	})
}
