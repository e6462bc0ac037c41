//go:build unix

package api

import (
	"errors"
	"net"
	"syscall"
)

// peekAlive reports whether the peer of conn may still be there: a
// non-blocking MSG_PEEK read that returns EOF or an error (other than
// "would block") means it has gone. Bytes the client sent stay unread.
func peekAlive(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true // cannot tell; the next write will
	}
	alive := true
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
		case err != nil || n == 0:
			alive = false
		}
		return true // never wait for readability
	})
	return alive && err == nil
}

// rawWriteSupported says rawWrite can write to a socket without blocking.
const rawWriteSupported = true

// rawWrite writes as much of b to the non-blocking socket fd as it takes
// now; a full socket is not an error.
func rawWrite(fd uintptr, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := syscall.Write(int(fd), b[n:])
		if m > 0 {
			n += m
		}
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN):
			return n, nil
		case err != nil:
			return n, err
		case m <= 0:
			return n, syscall.EIO
		}
	}
	return n, nil
}
