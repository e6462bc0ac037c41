package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// sink is where a stream's bytes go: a hijacked connection or a
// ResponseWriter. write has a deadline; alive reports false once the peer
// has certainly gone.
type sink interface {
	write(b []byte) error
	alive() bool
}

var (
	errWriteTimeout = errors.New("sse write timed out")
	errClientGone   = errors.New("sse client gone")
)

func classifyWriteErr(err error) error {
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return errWriteTimeout
	}
	return err
}

// connSink writes straight to a hijacked HTTP/1 connection: one write
// syscall per batch.
type connSink struct {
	conn    net.Conn
	timeout time.Duration
}

func (c *connSink) write(b []byte) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	if _, err := c.conn.Write(b); err != nil {
		return classifyWriteErr(err)
	}
	return nil
}

// alive peeks at the socket without blocking: a clean EOF or an error
// means the client has gone. Nobody reads a stream's connection, so this
// is how an idle stream notices a vanished client (at each heartbeat tick).
func (c *connSink) alive() bool { return peekAlive(c.conn) }

// responseSink streams through net/http (HTTP/2), flushing every batch.
type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	done    <-chan struct{} // the request's context ended
}

func (r *responseSink) write(b []byte) error {
	if err := r.rc.SetWriteDeadline(time.Now().Add(r.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := r.w.Write(b); err != nil {
		return classifyWriteErr(err)
	}
	if err := r.rc.Flush(); err != nil {
		return classifyWriteErr(err)
	}
	return nil
}

// alive: net/http cancels the request context when the client goes.
func (r *responseSink) alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}
