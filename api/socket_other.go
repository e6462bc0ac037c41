//go:build !unix

package api

import "net"

// peekAlive cannot peek here; a vanished client is noticed at its next
// failed write.
func peekAlive(net.Conn) bool { return true }

// rawWriteSupported is false here: every stream write takes the blocking
// path with its deadline.
const rawWriteSupported = false

func rawWrite(uintptr, []byte) (int, error) { return 0, nil }
