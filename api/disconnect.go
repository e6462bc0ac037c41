package api

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/wsrelay/wsrelay/relay"
)

// disconnectReason says why a stream ended: the reason label of
// wsrelay_sse_disconnects_total. The zero value is "not ended".
type disconnectReason uint32

const (
	reasonQueueFull      disconnectReason = iota + 1 // fell sse.queue events behind
	reasonWriteTimeout                               // took no write for sse.write_timeout
	reasonClientGone                                 // the client closed or reset the connection
	reasonShutdown                                   // the server or the broker shut down
	reasonSymbolsRemoved                             // every symbol of the stream was removed
	reasonWriteError                                 // a write failed for another reason
)

// disconnectReasons lists every reason, in label order: the metric
// registers each label up front.
var disconnectReasons = []disconnectReason{
	reasonQueueFull, reasonWriteTimeout, reasonClientGone, reasonShutdown, reasonSymbolsRemoved, reasonWriteError,
}

func (r disconnectReason) String() string {
	switch r {
	case reasonQueueFull:
		return "queue_full"
	case reasonWriteTimeout:
		return "write_timeout"
	case reasonClientGone:
		return "client_gone"
	case reasonShutdown:
		return "shutdown"
	case reasonSymbolsRemoved:
		return "symbols_removed"
	case reasonWriteError:
		return "write_error"
	}
	return "unknown"
}

// Errors of the connections a stream writes to, for the classifier.
var (
	errWriteTimeout = errors.New("stream write timed out")
	errClientGone   = errors.New("client gone")
	errInterrupted  = errors.New("stream write interrupted")
)

// classify says why a stream ended. ended is the reason it was told to end
// with (0 if none), err what ended it otherwise; closing says the writer
// pool is shutting down, which every other cause then is a consequence of.
func classify(ended disconnectReason, err error, closing bool) disconnectReason {
	switch {
	case ended != 0:
		return ended
	case closing || errors.Is(err, relay.ErrClosed):
		return reasonShutdown
	case errors.Is(err, relay.ErrSlowConsumer):
		return reasonQueueFull
	case errors.Is(err, relay.ErrSymbolRemoved):
		return reasonSymbolsRemoved
	case errors.Is(err, errWriteTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return reasonWriteTimeout
	case clientGone(err):
		return reasonClientGone
	}
	return reasonWriteError
}

// clientGone reports whether a write failed because the client left.
func clientGone(err error) bool {
	for _, gone := range []error{
		errClientGone, syscall.EPIPE, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.ETIMEDOUT,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, net.ErrClosed, io.EOF, io.ErrClosedPipe,
	} {
		if errors.Is(err, gone) {
			return true
		}
	}
	return false
}
