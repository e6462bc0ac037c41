package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// EncodeSSE builds the SSE frame of an event. It is the broker's Encode
// hook, so every event is framed once and the bytes shared by every client:
//
//	id: <id>          (quotes only)
//	event: quote|status|reset
//	data: <json>
//
// Event data never holds a line break (the broker compacts upstream JSON);
// should one appear anyway, each line becomes its own data: field, so no
// input can break the framing.
func EncodeSSE(e *relay.Event) []byte {
	b := make([]byte, 0, len(e.JSON)+64)
	return AppendSSE(b, e)
}

// AppendSSE appends the SSE frame of e to b.
func AppendSSE(b []byte, e *relay.Event) []byte {
	switch e.Kind {
	case relay.KindQuote:
		b = append(b, "id: "...)
		b = e.ID.Append(b)
		b = append(b, "\nevent: quote\n"...)
	case relay.KindStatus:
		b = append(b, "event: status\n"...)
	case relay.KindReset:
		b = append(b, "event: reset\n"...)
	}
	return appendData(b, e.JSON)
}

// appendData writes data as one data: line per line of data.
func appendData(b, data []byte) []byte {
	for {
		i := bytes.IndexAny(data, "\r\n")
		b = append(b, "data: "...)
		if i < 0 {
			b = append(b, data...)
			return append(b, "\n\n"...)
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// SSEConfig configures the SSE writer. A zero field means its default.
type SSEConfig struct {
	Heartbeat    time.Duration // comment on idle streams; default 15s
	Retry        time.Duration // retry: sent first; default 2s
	Queue        int           // events a client may fall behind; default 1024
	MaxClients   int           // open streams; default 10000
	MaxPerIP     int           // open streams per client IP; default 0 = MaxClients
	WriteTimeout time.Duration // per write; default 10s
}

func (c SSEConfig) withDefaults() SSEConfig {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Retry <= 0 {
		c.Retry = 2 * time.Second
	}
	if c.Queue <= 0 {
		c.Queue = relay.DefaultQueue
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 10000
	}
	if c.MaxPerIP <= 0 {
		c.MaxPerIP = c.MaxClients
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	return c
}

// handleStreamAll serves GET /v1/stream?symbols=A,B.
func (s *Server) handleStreamAll(w http.ResponseWriter, r *http.Request) {
	syms, err := ParseSymbols(r.URL.Query().Get("symbols"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(syms) == 0 {
		syms = s.broker.Symbols()
	}
	s.stream(w, r, syms)
}

// handleStreamOne serves GET /v1/quotes/{symbol}/stream.
func (s *Server) handleStreamOne(w http.ResponseWriter, r *http.Request) {
	sym, err := symbolParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.stream(w, r, []string{sym})
}

// stream runs one SSE response until the client leaves, falls behind, the
// subscription ends or the server shuts down.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, syms []string) {
	q := r.URL.Query()
	snapshot, err := ParseBool("snapshot", q.Get("snapshot"), true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rate, err := ParseMaxRate(q.Get("max_rate"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after := q.Get("last_event_id")
	if err := ParseEventIDParam("last_event_id", after); err != nil {
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
	ip := s.clientIP(r)
	release, ae := s.admit(ip)
	if ae != nil {
		s.metrics.sseRejected.WithLabelValues(ae.code).Inc()
		writeErrorBody(w, ae)
		return
	}
	handedOff := false // once true, the stream goroutine owns release and sub
	defer func() {
		if !handedOff {
			release()
		}
	}()

	sub, err := s.broker.Subscribe(syms, relay.SubscribeOptions{After: after, Snapshot: snapshot, Queue: s.sse.Queue, MaxRate: rate})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer func() {
		if !handedOff {
			sub.Close()
		}
	}()
	if after != "" {
		s.metrics.sseResumes.Inc()
	}

	s.metrics.sseClients.Inc()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	first := s.retryField()

	// HTTP/1: hand the connection to the hub, whose writers write to it
	// directly, and return, so that net/http's buffers and goroutines for
	// this connection are released. The body ends when the connection
	// closes.
	if r.ProtoMajor == 1 {
		h.Set("Connection", "close")
		head := appendResponseHead(make([]byte, 0, 512), h)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			s.streamMu.Lock()
			defer s.streamMu.Unlock() // Shutdown sees the stream in the hub, or we see it shutting down
			handedOff = true
			if s.shuttingDown.Load() {
				conn.Close()
				sub.Close()
				release()
				s.metrics.sseClients.Dec()
				s.metrics.cut("shutdown")
				return
			}
			s.streams.Add(1)
			s.hub.add(conn, sub, ip, release, append(head, first...))
			return
		}
		h.Del("Connection")
	}

	// HTTP/2 (or a writer that cannot be hijacked): stream through the
	// ResponseWriter, flushing every batch.
	defer s.metrics.sseClients.Dec()
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // server shutdown ends the stream
	defer stop()
	s.pump(ctx, &responseSink{w: w, rc: http.NewResponseController(w), timeout: s.sse.WriteTimeout}, sub, ip, first)
}

func (s *Server) retryField() []byte {
	b := append(make([]byte, 0, 32), "retry: "...)
	b = strconv.AppendInt(b, s.sse.Retry.Milliseconds(), 10)
	return append(b, "\n\n"...)
}

// appendResponseHead writes the status line and headers of a hijacked
// stream.
func appendResponseHead(b []byte, h http.Header) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// pump writes the subscription's events to the client until it leaves,
// falls behind, the subscription ends or ctx ends. first is written before
// anything else.
func (s *Server) pump(ctx context.Context, out *responseSink, sub *relay.Subscription, ip string, first []byte) {
	if err := out.write(first); err != nil {
		s.metrics.cut("write_error")
		return
	}
	heartbeat := time.NewTicker(s.sse.Heartbeat)
	defer heartbeat.Stop()
	lastWrite := time.Now()
	buf := make([]byte, 0, 512)
	var batch []*relay.Event
	var err error
	for {
		batch, err = sub.Poll(ctx, batch, heartbeat.C)
		if err != nil {
			switch {
			case errors.Is(err, relay.ErrSlowConsumer):
				s.metrics.cut("queue_full")
				s.log.Debug("sse client cut off", "reason", "queue_full", "remote", ip)
			case errors.Is(err, relay.ErrSymbolRemoved):
				s.metrics.cut("symbols_removed")
			case s.ctx.Err() != nil || errors.Is(err, relay.ErrClosed):
				s.metrics.cut("shutdown")
			default:
				s.metrics.cut("client_gone")
			}
			return
		}
		now := time.Now()
		if len(batch) == 0 { // heartbeat tick
			if now.Sub(lastWrite) < s.sse.Heartbeat/2 {
				continue
			}
			buf = append(buf[:0], ": keepalive\n\n"...)
		} else {
			buf = s.appendBatch(buf[:0], batch, now)
		}
		if err := out.write(buf); err != nil {
			// A failed write also cancels a request context, so the
			// timeout is checked first.
			switch {
			case s.ctx.Err() != nil:
				s.metrics.cut("shutdown")
			case errors.Is(err, errWriteTimeout):
				s.metrics.cut("write_timeout")
				s.log.Debug("sse client cut off", "reason", "write_timeout", "remote", ip)
			default:
				s.metrics.cut("client_gone")
			}
			return
		}
		lastWrite = now
		if cap(buf) > maxBuf {
			buf = make([]byte, 0, 512)
		}
	}
}

// appendBatch appends the SSE frames of batch to buf and counts them.
func (s *Server) appendBatch(buf []byte, batch []*relay.Event, now time.Time) []byte {
	for _, ev := range batch {
		if ev.Wire != nil {
			buf = append(buf, ev.Wire...)
		} else {
			buf = AppendSSE(buf, ev)
		}
		switch ev.Kind {
		case relay.KindQuote:
			s.metrics.latency.Observe(now.Sub(ev.ReceivedAt).Seconds())
		case relay.KindReset:
			s.metrics.sseResets.Inc()
		}
	}
	s.metrics.sseEvents.Add(float64(len(batch)))
	return buf
}

// admit enforces sse.max_clients and the per-IP limit.
func (s *Server) admit(ip string) (func(), *apiError) {
	if n := s.clients.Add(1); n > int64(s.sse.MaxClients) {
		s.clients.Add(-1)
		return nil, &apiError{status: http.StatusServiceUnavailable, code: CodeTooManyClients,
			msg: fmt.Sprintf("the relay serves its maximum of %d streams", s.sse.MaxClients), retryAfter: 2}
	}
	s.perIPMu.Lock()
	if s.perIP[ip] >= s.sse.MaxPerIP {
		s.perIPMu.Unlock()
		s.clients.Add(-1)
		return nil, &apiError{status: http.StatusTooManyRequests, code: CodeTooManyClients,
			msg: fmt.Sprintf("at most %d streams per client address", s.sse.MaxPerIP), retryAfter: 2}
	}
	s.perIP[ip]++
	s.perIPMu.Unlock()
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		s.clients.Add(-1)
		s.perIPMu.Lock()
		if s.perIP[ip]--; s.perIP[ip] <= 0 {
			delete(s.perIP, ip)
		}
		s.perIPMu.Unlock()
	}, nil
}
