package capture

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/wsrelay/wsrelay/relay"
)

// Defaults of RecordConfig.
const (
	DefaultRecordFor       = 10 * time.Second
	DefaultRecordMaxFrames = 10_000
)

// RecordConfig configures Record. A zero field means its default.
type RecordConfig struct {
	URL    string      // ws:// or wss:// (http(s):// is mapped)
	Header http.Header // handshake headers (Origin, Cookie…)
	// Send are text frames sent in order once connected.
	Send []string
	// For is how long to listen after connecting (DefaultRecordFor).
	For time.Duration
	// MaxFrames stops the recording after this many received messages.
	MaxFrames int
	// ReadLimit caps one message, as the relay's read_limit does
	// (relay.DefaultReadLimit).
	ReadLimit int64
	// DialTimeout bounds the handshake (relay.DefaultDialTimeout).
	DialTimeout time.Duration
	// InsecureSkipVerify disables TLS certificate checks (testing only).
	InsecureSkipVerify bool
	// HTTPClient dials; nil builds one as the relay does.
	HTTPClient *http.Client
}

// HandshakeError is a handshake the server refused; Status is its HTTP
// status (0 when the connection failed before one).
type HandshakeError struct {
	Status int
	Err    error
}

func (e *HandshakeError) Error() string { return e.Err.Error() }
func (e *HandshakeError) Unwrap() error { return e.Err }

// Record connects to a live feed the way the relay dials an upstream (the
// same client library and options: no compression, the relay's read
// limit), sends the frames, and records everything that comes back until
// cfg.For has passed, MaxFrames arrived, the server closed, or ctx ends.
// The returned session has the handshake and the frames in order; it is
// returned (with the error) when the connection breaks after the
// handshake. Socket.IO pings ("2") are answered ("3") so that the server
// keeps the session.
func Record(ctx context.Context, cfg RecordConfig) (*Session, error) {
	target, ok := wsURL(cfg.URL)
	if !ok {
		return nil, fmt.Errorf("url: %q is not a ws:// or wss:// URL", truncateString(relay.RedactURL(cfg.URL), 128))
	}
	if cfg.For <= 0 {
		cfg.For = DefaultRecordFor
	}
	if cfg.MaxFrames <= 0 {
		cfg.MaxFrames = DefaultRecordMaxFrames
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = relay.DefaultReadLimit
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = relay.DefaultDialTimeout
	}
	client := cfg.HTTPClient
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.InsecureSkipVerify {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opt-in for testing
		}
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
	}
	s := &Session{Entry: -1, URL: target, Started: time.Now()}
	s.Request = append(s.Request, Header{Name: "Host", Value: hostOf(target)})
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range cfg.Header {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range cfg.Header[k] {
			s.Request = append(s.Request, Header{Name: k, Value: v})
		}
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	ws, resp, err := websocket.Dial(dctx, target, &websocket.DialOptions{HTTPClient: client, HTTPHeader: cfg.Header})
	cancel()
	if resp != nil {
		s.Status = resp.StatusCode
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range resp.Header {
				if !yield(k) {
					return
				}
			}
		}) {
			for _, v := range resp.Header[k] {
				s.Response = append(s.Response, Header{Name: k, Value: v})
			}
		}
		if resp.Body != nil {
			resp.Body.Close()
		}
	}
	if err != nil {
		msg := redactErrText(err.Error(), target)
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return s, &HandshakeError{Status: resp.StatusCode, Err: fmt.Errorf("handshake refused: %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))}
		}
		return s, &HandshakeError{Err: fmt.Errorf("dial %s: %s", relay.RedactURL(target), msg)}
	}
	ws.SetReadLimit(cfg.ReadLimit)
	err = recordFrames(ctx, ws, s, cfg)
	slices.SortStableFunc(s.Frames, func(a, b Frame) int { return a.At.Compare(b.At) })
	return s, err
}

type message struct {
	typ  websocket.MessageType
	data []byte
	at   time.Time
	err  error
}

// recordFrames sends cfg.Send and collects messages; it owns the reader
// goroutine and waits for it.
func recordFrames(ctx context.Context, ws *websocket.Conn, s *Session, cfg RecordConfig) error {
	msgs := make(chan message, 64)
	rctx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReading()
	go func() {
		defer close(msgs)
		for {
			typ, p, err := ws.Read(rctx)
			msgs <- message{typ: typ, data: p, at: time.Now(), err: err}
			if err != nil {
				return
			}
		}
	}()
	// Whatever happens, the connection is closed and the reader drained.
	defer func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = ws.Close(websocket.StatusNormalClosure, "probe done")
		}()
		t := time.NewTimer(2 * time.Second)
		select {
		case <-done:
		case <-t.C:
			ws.CloseNow()
			<-done
		}
		t.Stop()
		stopReading()
		for range msgs {
		}
	}()
	send := func(text string) error {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s.Frames = append(s.Frames, Frame{Sent: true, At: time.Now(), Data: []byte(text)})
		return ws.Write(wctx, websocket.MessageText, []byte(text))
	}
	// Socket.IO wants its order (SIO v5 "Connection to a namespace"): the
	// server's open packet first, and an event only once its namespace
	// answered the CONNECT (the reference server closes the connection
	// otherwise). Frames are held back until then, at most 5 s each.
	socketIO := strings.Contains(s.URL, "/socket.io") || strings.Contains(s.URL, "EIO=")
	var waitingFor func(string) bool
	if socketIO {
		waitingFor = func(p string) bool { return strings.HasPrefix(p, "0{") }
	}
	pending := cfg.Send
	hold := time.NewTimer(5 * time.Second)
	defer hold.Stop()
	deadline := time.NewTimer(cfg.For)
	defer deadline.Stop()
	received := 0
	for {
		for waitingFor == nil && len(pending) > 0 {
			f := pending[0]
			pending = pending[1:]
			if err := send(f); err != nil {
				return fmt.Errorf("send: %w", err)
			}
			if socketIO && strings.HasPrefix(f, "40") {
				waitingFor = func(p string) bool { return strings.HasPrefix(p, "40") || strings.HasPrefix(p, "44") }
				hold.Reset(5 * time.Second)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return nil
		case <-hold.C:
			waitingFor = nil // no answer: send the rest anyway
		case m := <-msgs:
			if m.err != nil {
				if code := websocket.CloseStatus(m.err); code != -1 {
					if code == websocket.StatusNormalClosure || code == websocket.StatusGoingAway {
						return nil
					}
					return fmt.Errorf("the server closed the connection: %d %s", code, closeReason(m.err))
				}
				if errors.Is(m.err, websocket.ErrMessageTooBig) {
					return fmt.Errorf("a message exceeds the read limit of %d bytes (the relay would close with 1009 too)", cfg.ReadLimit)
				}
				return fmt.Errorf("read: %s", redactErrText(m.err.Error(), s.URL))
			}
			s.Frames = append(s.Frames, Frame{At: m.at, Binary: m.typ == websocket.MessageBinary, Data: m.data})
			received++
			text := string(m.data)
			if waitingFor != nil && m.typ == websocket.MessageText && waitingFor(text) {
				waitingFor = nil
			}
			if socketIO && m.typ == websocket.MessageText && text == "2" {
				if err := send("3"); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
			if received >= cfg.MaxFrames {
				return nil
			}
		}
	}
}

func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return strings.TrimSpace(ce.Reason)
	}
	return ""
}

// redactErrText hides the URL's query values and credentials in an error
// text (the WebSocket library quotes the URL, sometimes as http(s)://).
func redactErrText(msg, raw string) string {
	for _, form := range []string{raw, "http" + strings.TrimPrefix(raw, "ws")} {
		msg = strings.ReplaceAll(msg, form, relay.RedactURL(raw))
	}
	if u, err := url.Parse(raw); err == nil {
		for _, vs := range u.Query() {
			for _, v := range vs {
				if len(v) >= 4 {
					msg = strings.ReplaceAll(msg, v, Redacted)
				}
			}
		}
	}
	return msg
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
