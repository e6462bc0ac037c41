package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A streamConn is the client end of one stream, as the writer pool writes
// to it. It writes in one of two ways: tryWrite takes what the connection
// accepts without waiting (the fast path of every writer), write waits
// for all of it until a deadline (a stream's own slow-path goroutine).
// The owner of the stream calls tryWrite, write and close, one at a time;
// alive and interrupt may be called from any goroutine.
type streamConn interface {
	// tryWrite writes as much of b as the connection takes now: n <
	// len(b) with no error means it is full. errWouldBlock means it never
	// writes without waiting (HTTP/2): every write takes the deadline path.
	tryWrite(b []byte) (n int, err error)
	// write writes all of b, failing with a timeout once deadline passes.
	write(b []byte, deadline time.Time) error
	// alive reports whether the client may still be there; a quiet
	// stream's client is checked this way.
	alive() bool
	// interrupt makes every later write fail at once, and a write in
	// progress too where the client then still sees a clean end (a
	// hijacked socket is closed next anyway). An HTTP/2 write in progress
	// is left to finish within its deadline: aborting it would reset the
	// stream.
	interrupt()
	// close ends the connection, or the response.
	close()
}

// errWouldBlock is tryWrite's answer on a connection that cannot write
// without waiting.
var errWouldBlock = errors.New("connection writes only with a deadline")

// hijackedConn is an HTTP/1 stream's connection, taken over from net/http:
// its socket is written directly, without blocking where the platform
// allows.
type hijackedConn struct {
	conn        net.Conn
	rc          syscall.RawConn // nil: no raw writes, tryWrite would block
	interrupted atomic.Bool

	// tryWrite's state, kept so that the raw write callback is made once.
	wbuf  []byte
	wn    int
	werr  error
	rawFn func(fd uintptr) bool
}

func newHijackedConn(conn net.Conn) *hijackedConn {
	c := &hijackedConn{conn: conn}
	if sc, ok := conn.(syscall.Conn); ok && rawWriteSupported {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	return c
}

func (c *hijackedConn) tryWrite(b []byte) (int, error) {
	if c.interrupted.Load() {
		return 0, errInterrupted
	}
	if c.rc == nil {
		return 0, errWouldBlock
	}
	if c.rawFn == nil {
		c.rawFn = func(fd uintptr) bool {
			c.wn, c.werr = rawWrite(fd, c.wbuf)
			return true // never wait: a full socket takes the deadline path
		}
	}
	c.wbuf, c.wn, c.werr = b, 0, nil
	err := c.rc.Write(c.rawFn)
	c.wbuf = nil
	if err == nil {
		err = c.werr
	}
	return c.wn, err
}

func (c *hijackedConn) write(b []byte, deadline time.Time) error {
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	// An interrupt before the deadline above was set would be undone by
	// it: look again.
	if c.interrupted.Load() {
		return errInterrupted
	}
	if _, err := c.conn.Write(b); err != nil {
		return err
	}
	// The raw writes of the fast path fail on an expired deadline too.
	return c.conn.SetWriteDeadline(time.Time{})
}

func (c *hijackedConn) alive() bool { return peekAlive(c.conn) }

func (c *hijackedConn) interrupt() {
	c.interrupted.Store(true)
	c.conn.SetWriteDeadline(time.Unix(1, 0))
}

func (c *hijackedConn) close() { c.conn.Close() }

// responseConn is a stream served through net/http's ResponseWriter: every
// HTTP/2 stream (an HTTP/2 connection carries many and cannot be taken
// over), and an HTTP/1 one whose writer cannot be hijacked. The handler
// waits on done, since the writer is only usable while it runs.
type responseConn struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	ctx  context.Context // the request's: done when the client leaves
	done chan struct{}   // closed by close: the handler may return

	interrupted atomic.Bool
	closeOnce   sync.Once
}

func newResponseConn(w http.ResponseWriter, r *http.Request) *responseConn {
	return &responseConn{w: w, rc: http.NewResponseController(w), ctx: r.Context(), done: make(chan struct{})}
}

func (c *responseConn) tryWrite([]byte) (int, error) { return 0, errWouldBlock }

func (c *responseConn) write(b []byte, deadline time.Time) error {
	if c.interrupted.Load() {
		return errInterrupted
	}
	if err := c.rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	_, err := c.w.Write(b)
	if err == nil {
		err = c.rc.Flush()
	}
	switch {
	case err != nil && !time.Now().Before(deadline):
		return errWriteTimeout
	case err != nil && c.ctx.Err() != nil:
		return errClientGone
	case err != nil:
		return err
	}
	// An HTTP/2 stream's deadline fires even while nothing is written:
	// clear it, or a quiet stream would be reset.
	if err := c.rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (c *responseConn) alive() bool { return c.ctx.Err() == nil }

func (c *responseConn) interrupt() { c.interrupted.Store(true) }

func (c *responseConn) close() { c.closeOnce.Do(func() { close(c.done) }) }
