package relay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// framingSession is what the upstream engine does with a framing, in
// small: dialURL, dial, open, then a read loop that decodes each message,
// sends the replies and hands the records over. Tests use it to drive a
// framing over a real connection.
type framingSession struct {
	t    *testing.T
	f    framing
	ws   *websocket.Conn
	info openInfo
	recs []record
}

// openFraming dials target through f and runs its handshake; it fails the
// test on error.
func openFraming(ctx context.Context, t *testing.T, f framing, target string, header http.Header) *framingSession {
	t.Helper()
	s, err := tryOpenFraming(ctx, f, target, header)
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	t.Cleanup(func() { s.ws.CloseNow() })
	return s
}

// tryOpenFraming returns the error of dialURL, the dial or open.
func tryOpenFraming(ctx context.Context, f framing, target string, header http.Header) (*framingSession, error) {
	u, err := f.dialURL(ctx, &http.Client{}, header, target)
	if err != nil {
		return nil, err
	}
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	info, err := f.open(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	return &framingSession{f: f, ws: ws, info: info}, nil
}

// send encodes and writes one rendered template.
func (s *framingSession) send(ctx context.Context, payload string) {
	s.t.Helper()
	if err := s.ws.Write(ctx, websocket.MessageText, s.f.encode(nil, []byte(payload))); err != nil {
		s.t.Fatalf("write %q: %v", payload, err)
	}
}

// next returns the records of the next message (possibly none), answering
// it when the framing says so; closed is the framing's in-band end.
func (s *framingSession) next(ctx context.Context) (recs []record, closed error) {
	s.t.Helper()
	typ, p, err := s.ws.Read(ctx)
	if err != nil {
		s.t.Fatalf("read: %v", err)
	}
	s.recs, _, closed = s.decodeAndReply(ctx, typ, p)
	return s.recs, closed
}

func (s *framingSession) decodeAndReply(ctx context.Context, typ websocket.MessageType, p []byte) ([]record, []byte, error) {
	recs, reply, closed := s.f.decode(s.recs[:0], typ, p)
	if reply != nil {
		if err := s.ws.Write(ctx, websocket.MessageText, reply); err != nil {
			s.t.Fatalf("reply: %v", err)
		}
	}
	// Copy: the records alias the read buffer.
	out := make([]record, len(recs))
	for i, r := range recs {
		out[i] = record{binary: r.binary, data: append([]byte(nil), r.data...)}
	}
	return out, reply, closed
}

// until reads records until keep returns false or the session ends in-band
// (then closed is returned). Every ping interval of the framing it sends the
// keepalive, as the engine does.
func (s *framingSession) until(ctx context.Context, keep func(record) bool) (closed error) {
	s.t.Helper()
	type msg struct {
		typ websocket.MessageType
		p   []byte
		err error
	}
	var tick <-chan time.Time
	if ka := s.f.keepalive(); ka != nil && s.info.pingInterval > 0 {
		tk := time.NewTicker(s.info.pingInterval)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		read := make(chan msg, 1)
		rctx, cancel := context.WithCancel(ctx)
		go func() {
			typ, p, err := s.ws.Read(rctx)
			read <- msg{typ, p, err}
		}()
	wait:
		for {
			select {
			case <-tick:
				if err := s.ws.Write(ctx, websocket.MessageText, s.f.keepalive()); err != nil {
					cancel()
					<-read
					s.t.Fatalf("keepalive: %v", err)
				}
			case m := <-read:
				cancel()
				if m.err != nil {
					s.t.Fatalf("read: %v", m.err)
				}
				recs, _, closed := s.decodeAndReply(ctx, m.typ, m.p)
				if closed != nil {
					return closed
				}
				for _, r := range recs {
					if !keep(r) {
						return nil
					}
				}
				break wait
			}
		}
	}
}

// wsURL turns an httptest server URL into a WebSocket one.
func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

// scripted is a WebSocket server that runs script on each connection: a
// peer that breaks the protocol in ways real servers do not on demand.
func scripted(t *testing.T, script func(ctx context.Context, ws *websocket.Conn)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		script(r.Context(), ws)
	}))
	t.Cleanup(srv.Close)
	return srv
}
