package api

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// The writer pool delivers every open stream. Instead of a goroutine per
// stream woken for every event, a subscription that has something to send
// puts its stream on a ready queue, and writer goroutines, started as the
// queue grows, take streams off it and write to their connections without
// blocking (poolstream.go). A stream whose connection is full (a slow
// reader), or cannot be written without waiting (HTTP/2), gets a goroutine
// of its own until it has caught up: it writes with the write timeout,
// then goes back to the writers. One housekeeping goroutine sends
// heartbeats to idle streams and notices clients that left (a
// non-blocking peek, since nobody reads a stream's connection).
//
// Every goroutine the pool starts goes through spawn, which refuses once
// the pool is closed, and close waits for all of them. (A conflated
// stream's timer, time.AfterFunc, only calls notify; finish stops it.)

// sweepEvery is how often (at most; more often for heartbeats shorter than
// two sweeps) housekeeping sends due heartbeats and peeks at quiet streams
// for a vanished client.
const sweepEvery = time.Second

// A writer takes writerShare streams off the queue at a time, and another
// writer starts while more than writerShare are waiting per writer, up to
// one per CPU (GOMAXPROCS): measured with 10 000 streams, more writers only
// add scheduling (p99 136 ms with 2 writers, 247 ms with 8, 285 ms with
// 64). Writers end when the queue is empty.
const writerShare = 64

// maxBuf is the largest unsent buffer a slow stream keeps between writes.
const maxBuf = 32 << 10

// poolConfig is what the pool needs. A zero duration means its default.
type poolConfig struct {
	WriteTimeout time.Duration // a slow-path write; default DefaultWriteTimeout
	Heartbeat    time.Duration // idle time before a keepalive; default DefaultHeartbeat
	// Append appends the wire form of a batch of events to dst. Required.
	Append func(dst []byte, batch []*relay.Event) []byte
	// Keepalive is what a heartbeat writes. Required.
	Keepalive []byte
	Metrics   *metrics     // required
	Logger    *slog.Logger // default discards
}

// pool is the writer pool. Its methods are safe for concurrent use.
type pool struct {
	writeTimeout time.Duration
	heartbeat    time.Duration
	append       func(dst []byte, batch []*relay.Event) []byte
	keepalive    []byte
	metrics      *metrics
	log          *slog.Logger
	maxWriters   int

	mu      sync.Mutex
	ready   readyQueue
	running int // writers
	streams map[*stream]struct{}
	closing bool          // no new streams
	closed  bool          // no new goroutines
	drained chan struct{} // closed once closing and no stream is left
	stop    chan struct{} // ends housekeeping
	wg      sync.WaitGroup
}

func newPool(cfg poolConfig) *pool {
	p := &pool{
		writeTimeout: cfg.WriteTimeout, heartbeat: cfg.Heartbeat, append: cfg.Append, keepalive: cfg.Keepalive,
		metrics: cfg.Metrics, log: cfg.Logger, maxWriters: runtime.GOMAXPROCS(0),
		streams: map[*stream]struct{}{}, drained: make(chan struct{}), stop: make(chan struct{}),
	}
	if p.writeTimeout <= 0 {
		p.writeTimeout = DefaultWriteTimeout
	}
	if p.heartbeat <= 0 {
		p.heartbeat = DefaultHeartbeat
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.spawn(p.housekeep)
	return p
}

// spawn runs f on a new goroutine that close waits for. Once the pool is
// closed it starts nothing and reports false.
func (p *pool) spawn(f func()) bool {
	p.mu.Lock()
	ok := p.reserveLocked()
	p.mu.Unlock()
	if ok {
		go p.goReserved(f)
	}
	return ok
}

// reserveLocked counts a goroutine that goReserved then runs; p.mu is
// held. It reports false once the pool is closed.
func (p *pool) reserveLocked() bool {
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

func (p *pool) goReserved(f func()) {
	defer p.wg.Done()
	f()
}

// add starts delivering sub's events to conn, after first (the response
// head and the retry field). From here on the pool owns conn, sub and
// release (called once the stream has ended), also when it refuses the
// stream because it is shutting down: it then ends it at once.
func (p *pool) add(conn streamConn, sub *relay.Subscription, addr string, release func(), first []byte) {
	c := &stream{p: p, conn: conn, sub: sub, addr: addr, release: release, out: first}
	c.lastWrite.Store(time.Now().UnixNano())
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		p.metrics.disconnected(reasonShutdown)
		sub.Close()
		conn.close()
		release()
		return
	}
	p.streams[c] = struct{}{}
	p.metrics.sseClients.Inc()
	p.mu.Unlock()
	c.state.Store(stIdle)
	sub.SetNotify(c.notify)
}

// remove forgets a finished stream.
func (p *pool) remove(c *stream) {
	p.mu.Lock()
	delete(p.streams, c)
	if p.closing && len(p.streams) == 0 {
		p.closeDrainedLocked()
	}
	p.mu.Unlock()
	p.metrics.sseClients.Dec()
}

func (p *pool) closeDrainedLocked() {
	select {
	case <-p.drained:
	default:
		close(p.drained)
	}
}

// len returns the number of open streams.
func (p *pool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

// enqueue puts a stream on the ready queue and starts a writer if the
// queue has grown past what the running ones take. It runs under the
// broker's lock (from a subscription's notify): it never blocks.
func (p *pool) enqueue(c *stream) {
	p.mu.Lock()
	p.ready.push(c)
	start := p.running < p.maxWriters && p.ready.len() > p.running*writerShare && p.reserveLocked()
	if start {
		p.running++
	}
	p.mu.Unlock()
	if start {
		go p.goReserved(p.work)
	}
}

// work runs queued streams, writerShare at a time, until none is left.
func (p *pool) work() {
	var mine []*stream
	var scratch []byte
	for {
		p.mu.Lock()
		n := min(p.ready.len(), writerShare)
		if n == 0 {
			p.running--
			p.mu.Unlock()
			return
		}
		mine = p.ready.take(mine[:0], n)
		p.mu.Unlock()
		for _, c := range mine {
			c.state.Store(stRunning)
			scratch = c.run(scratch)
		}
		clear(mine)
		if cap(scratch) > maxBuf {
			scratch = nil
		}
	}
}

// housekeep sends due heartbeats and ends streams whose client has gone,
// every sweepEvery, until close.
func (p *pool) housekeep() {
	every := max(min(sweepEvery, p.heartbeat/2), time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var all []*stream
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		all = p.list(all)
		now := time.Now()
		due := now.Add(-p.heartbeat).UnixNano()
		quiet := now.Add(-every).UnixNano()
		for _, c := range all {
			last := c.lastWrite.Load()
			switch {
			case last > quiet:
				// Written to within the last sweep: a gone client shows
				// as a failed write; no peek needed.
			case !c.conn.alive():
				c.end(reasonClientGone)
			case last <= due:
				c.beat.Store(true)
				c.notify()
			}
		}
		clear(all)
	}
}

// list returns the open streams in dst's storage.
func (p *pool) list(dst []*stream) []*stream {
	dst = dst[:0]
	p.mu.Lock()
	for c := range p.streams {
		dst = append(dst, c)
	}
	p.mu.Unlock()
	return dst
}

// close refuses new streams, ends every open one and waits until they
// have ended and every goroutine of the pool has returned. If ctx ends
// first it returns ctx's error; the streams still end (their writes are
// interrupted) but are not waited for. close is idempotent.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closing {
		p.closing = true
		close(p.stop)
		if len(p.streams) == 0 {
			p.closeDrainedLocked()
		}
	}
	p.mu.Unlock()
	for _, c := range p.list(nil) {
		c.end(reasonShutdown)
	}
	select {
	case <-p.drained:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait() // writers end with the empty queue, housekeeping with stop
	return nil
}

// isClosing reports whether close has been called.
func (p *pool) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}
