package api

import (
	"context"
	"net"
	"sync"
	"time"
)

// sweepEvery is how often idle hijacked streams are checked for a vanished
// client.
const sweepEvery = time.Second

// sweeper notices clients that left an idle stream. Nobody reads a hijacked
// connection, so one goroutine peeks at every open one each sweepEvery (a
// non-blocking syscall each) and ends the streams whose peer has gone,
// instead of a reader goroutine per client.
type sweeper struct {
	mu      sync.Mutex
	streams map[net.Conn]context.CancelFunc
	done    chan struct{}
}

func newSweeper() *sweeper {
	return &sweeper{streams: map[net.Conn]context.CancelFunc{}, done: make(chan struct{})}
}

func (w *sweeper) add(c net.Conn, cancel context.CancelFunc) {
	w.mu.Lock()
	w.streams[c] = cancel
	w.mu.Unlock()
}

func (w *sweeper) remove(c net.Conn) {
	w.mu.Lock()
	delete(w.streams, c)
	w.mu.Unlock()
}

// run sweeps until ctx ends.
func (w *sweeper) run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	var conns []net.Conn
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		conns = conns[:0]
		for c := range w.streams {
			conns = append(conns, c)
		}
		w.mu.Unlock()
		for _, c := range conns {
			if !peekAlive(c) {
				w.mu.Lock()
				cancel := w.streams[c]
				w.mu.Unlock()
				if cancel != nil {
					cancel()
				}
			}
		}
		clear(conns)
	}
}
