package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
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

// maxBuf is the largest write buffer a client keeps between batches.
const maxBuf = 32 << 10

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
	ip := clientIP(r)
	release, ae := s.admit(ip)
	if ae != nil {
		s.metrics.sseRejected.WithLabelValues(ae.code).Inc()
		writeErrorBody(w, ae)
		return
	}
	defer release()

	sub, err := s.broker.Subscribe(syms, relay.SubscribeOptions{After: after, Snapshot: snapshot, Queue: s.sse.Queue, MaxRate: rate})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer sub.Close()
	if after != "" {
		s.metrics.sseResumes.Inc()
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)

	s.metrics.sseClients.Inc()
	defer s.metrics.sseClients.Dec()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // server shutdown ends the stream
	defer stop()

	rc := http.NewResponseController(w)
	buf := make([]byte, 0, 512)
	buf = append(buf, "retry: "...)
	buf = strconv.AppendInt(buf, s.sse.Retry.Milliseconds(), 10)
	buf = append(buf, "\n\n"...)
	if err := s.write(w, rc, buf); err != nil {
		s.metrics.cut("write_error")
		return
	}
	heartbeat := time.NewTicker(s.sse.Heartbeat)
	defer heartbeat.Stop()
	lastWrite := time.Now()
	var batch []*relay.Event
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
			buf = buf[:0]
			quotes := 0
			for _, ev := range batch {
				if ev.Wire != nil {
					buf = append(buf, ev.Wire...)
				} else {
					buf = AppendSSE(buf, ev)
				}
				switch ev.Kind {
				case relay.KindQuote:
					quotes++
					s.metrics.latency.Observe(now.Sub(ev.ReceivedAt).Seconds())
				case relay.KindReset:
					s.metrics.sseResets.Inc()
				}
			}
			s.metrics.sseEvents.Add(float64(len(batch)))
		}
		if err := s.write(w, rc, buf); err != nil {
			// A failed write also cancels the request context, so the
			// timeout is checked first.
			if errors.Is(err, errWriteTimeout) && s.ctx.Err() == nil {
				s.metrics.cut("write_timeout")
				s.log.Debug("sse client cut off", "reason", "write_timeout", "remote", ip)
			} else {
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

var errWriteTimeout = errors.New("sse write timed out")

// write sends b and flushes under a write deadline: a client that stops
// reading is cut off instead of holding a goroutine forever.
func (s *Server) write(w http.ResponseWriter, rc *http.ResponseController, b []byte) error {
	if err := rc.SetWriteDeadline(time.Now().Add(s.sse.WriteTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return classifyWriteErr(err)
	}
	if err := rc.Flush(); err != nil {
		return classifyWriteErr(err)
	}
	return nil
}

func classifyWriteErr(err error) error {
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return errWriteTimeout
	}
	return err
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
