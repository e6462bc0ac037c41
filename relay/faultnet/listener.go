// Package faultnet injects network faults for tests and the soak: a
// listener that can cut every accepted connection at once, and a TCP proxy
// that adds latency, limits bandwidth, goes silent, resets mid-stream,
// refuses connections or never completes a handshake. It is test
// infrastructure: nothing in the relay's serving path imports it.
package faultnet

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// Listener wraps a net.Listener and remembers every accepted connection,
// so that a test can cut them all from the server side, including ones an
// HTTP handler hijacked. All methods are safe for concurrent use.
type Listener struct {
	net.Listener
	// SendBuffer, when positive, sets each accepted connection's kernel
	// send buffer, so that a client that stops reading blocks the server
	// within kilobytes instead of megabytes.
	SendBuffer int

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// NewListener wraps l.
func NewListener(l net.Listener) *Listener {
	return &Listener{Listener: l, conns: map[net.Conn]struct{}{}}
}

// Accept accepts and tracks a connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok && l.SendBuffer > 0 {
		tc.SetWriteBuffer(l.SendBuffer)
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// CutAll closes every open accepted connection and reports how many.
func (l *Listener) CutAll() int {
	l.mu.Lock()
	cs := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	return len(cs)
}

// Open returns the number of accepted connections not yet closed.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type trackedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// SyscallConn exposes the socket, so that code peeking at it (the SSE
// sweeper) sees through the wrapper.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
