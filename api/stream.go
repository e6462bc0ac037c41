package api

import (
	"net/http"

	"github.com/wsrelay/wsrelay/relay"
)

// handleStreamAll serves GET /v1/stream?symbols=A,B (every symbol when
// omitted).
func (s *Server) handleStreamAll(w http.ResponseWriter, r *http.Request) {
	syms, err := ParseSymbols(r.URL.Query().Get("symbols"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveStream(w, r, syms) // none: every symbol, as the broker knows them when the stream opens
}

// handleStreamOne serves GET /v1/quotes/{symbol}/stream.
func (s *Server) handleStreamOne(w http.ResponseWriter, r *http.Request) {
	sym, err := symbolParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveStream(w, r, []string{sym})
}

// serveStream checks a stream request, admits it, subscribes to the broker
// and hands the stream to the writer pool, which delivers it until the
// client leaves, falls behind, the subscription ends or the server shuts
// down.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, syms []string) {
	q := r.URL.Query()
	snapshot, err := parseBool("snapshot", q.Get("snapshot"), true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rate, err := parseMaxRate(q.Get("max_rate"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after := q.Get("last_event_id")
	if err := parseEventIDParam("last_event_id", after); err != nil {
		s.writeError(w, r, err)
		return
	}
	if h := r.Header.Get("Last-Event-ID"); h != "" {
		after = h // a malformed header gets a reset, not an error: browsers resend what we gave
	}
	if s.shuttingDown.Load() {
		s.writeError(w, r, relay.ErrClosed)
		return
	}
	addr := clientAddr(r)
	release, refused := s.admission.admit(addr)
	if refused != nil {
		s.metrics.sseRejected.WithLabelValues(refused.code).Inc()
		writeErrorBody(w, refused)
		return
	}
	sub, err := s.broker.Subscribe(syms, relay.SubscribeOptions{After: after, Snapshot: snapshot, Queue: s.sse.Queue, MaxRate: rate, All: len(syms) == 0})
	if err != nil {
		release()
		s.writeError(w, r, err)
		return
	}
	if after != "" {
		s.metrics.sseResumes.Inc()
	}
	setStreamHeaders(w.Header())
	first := retryField(s.sse.Retry)

	// HTTP/1: take the connection over from net/http, so that its buffers
	// and goroutines for this connection are released; the pool's writers
	// write to the socket directly. The body ends when the connection
	// closes.
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
		head := appendResponseHead(make([]byte, 0, 512), w.Header())
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			s.pool.add(newHijackedConn(conn), sub, addr, release, append(head, first...))
			return
		}
		w.Header().Del("Connection")
	}

	// HTTP/2 (or a writer that cannot be hijacked): the pool writes
	// through the ResponseWriter, which is usable only while this handler
	// runs, so it waits until the stream has ended.
	w.WriteHeader(http.StatusOK)
	rc := newResponseConn(w, r)
	s.pool.add(rc, sub, addr, release, first)
	<-rc.done
}
