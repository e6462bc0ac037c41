package api

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// The hub serves every hijacked HTTP/1 stream. Instead of a goroutine per
// stream woken for every event, a subscription that has something to send
// puts its stream on a ready queue, and writer goroutines, started as the
// queue grows, take streams off it and write to their sockets without
// blocking.
// A stream whose socket is full (a slow reader) gets a goroutine of its
// own until it has caught up: it writes with the write timeout, then hands
// the stream back. One housekeeping goroutine sends heartbeats to idle
// streams, notices clients that left (a non-blocking peek, since nobody
// reads a stream's connection) and ends every stream on shutdown.
//
// A stream's state says who owns its buffers: the writer running it, its
// own slow-path goroutine, or nobody (idle, queued). notify, called by the
// subscription under the broker's locks, only moves a stream between
// states and onto the queue.

const (
	stSetup   int32 = iota // not yet added: notify does nothing
	stIdle                 // nothing to do; notify queues it
	stQueued               // on the ready queue
	stRunning              // a writer is running it
	stDirty                // running, and notified again since
	stSlow                 // its own goroutine is writing to a full socket
	stDone                 // finished
)

// sweepEvery is how often (at most; more often for heartbeats shorter than
// two sweeps) the hub sends due heartbeats and peeks at quiet streams for a
// vanished client.
const sweepEvery = time.Second

// A writer takes writerShare streams off the queue at a time, and another
// writer starts while more than writerShare are waiting per writer, up to
// one per CPU (GOMAXPROCS): measured with 10 000 streams, more writers only
// add scheduling (p99 136 ms with 2 writers, 247 ms with 8, 285 ms with
// 64). Writers end when the queue is empty.
const writerShare = 64

// maxBuf is the largest unsent buffer a slow stream keeps between writes.
const maxBuf = 32 << 10

type hub struct {
	s *Server

	mu         sync.Mutex
	ready      streamQueue
	running    int // writers
	maxWriters int
	stop       bool // no new writers
	streams    map[*hstream]struct{}

	workers sync.WaitGroup
	keeper  chan struct{} // closed when housekeeping has returned
}

// streamQueue is a FIFO of streams: items[head:].
type streamQueue struct {
	items []*hstream
	head  int
}

func (q *streamQueue) len() int { return len(q.items) - q.head }

func (q *streamQueue) push(c *hstream) { q.items = append(q.items, c) }

// take appends the first n streams to dst and removes them.
func (q *streamQueue) take(dst []*hstream, n int) []*hstream {
	dst = append(dst, q.items[q.head:q.head+n]...)
	clear(q.items[q.head : q.head+n])
	switch q.head += n; {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > cap(q.items)/2:
		// A queue that never empties (steady load) would otherwise grow
		// its array forever: move the waiting streams to the front.
		// Each stream is queued at most once, so the array stays within
		// about twice the number of streams.
		k := copy(q.items, q.items[q.head:])
		clear(q.items[k:])
		q.items, q.head = q.items[:k], 0
	}
	return dst
}

// hstream is one hijacked stream.
type hstream struct {
	h       *hub
	conn    net.Conn
	rc      syscall.RawConn // nil: no raw writes, every write takes the slow path
	sub     *relay.Subscription
	ip      string
	release func()

	state     atomic.Int32
	reason    atomic.Pointer[string] // set by housekeeping: why to end
	beat      atomic.Bool            // housekeeping asks for a keepalive
	lastWrite atomic.Int64           // unix ns of the last write

	// Owned by whoever runs the stream.
	batch []*relay.Event
	out   []byte // bytes not yet written
	timer *time.Timer
	wbuf  []byte                // what write writes
	wn    int                   // what it wrote
	werr  error                 // and its error
	write func(fd uintptr) bool // rawWrite of wbuf, made once per stream
}

func newHub(s *Server) *hub {
	h := &hub{s: s, streams: map[*hstream]struct{}{}, keeper: make(chan struct{}), maxWriters: runtime.GOMAXPROCS(0)}
	go h.housekeep()
	return h
}

// add registers a stream whose response head and first bytes are out.
// The subscription starts notifying the stream right away.
func (h *hub) add(conn net.Conn, sub *relay.Subscription, ip string, release func(), out []byte) {
	c := &hstream{h: h, conn: conn, sub: sub, ip: ip, release: release, out: out}
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil && rawWriteSupported {
			c.rc = rc
		}
	}
	c.lastWrite.Store(time.Now().UnixNano())
	h.mu.Lock()
	h.streams[c] = struct{}{}
	h.mu.Unlock()
	c.state.Store(stIdle)
	sub.SetNotify(c.notify)
}

// notify says the stream has something to do. It never blocks.
func (c *hstream) notify() {
	for {
		switch st := c.state.Load(); st {
		case stIdle:
			if c.state.CompareAndSwap(stIdle, stQueued) {
				c.h.enqueue(c)
				return
			}
		case stRunning:
			if c.state.CompareAndSwap(stRunning, stDirty) {
				return
			}
		default: // queued or dirty: it will look; slow: it looks when caught up
			return
		}
	}
}

func (h *hub) enqueue(c *hstream) {
	h.mu.Lock()
	h.ready.push(c)
	start := !h.stop && h.running < h.maxWriters && h.ready.len() > h.running*writerShare
	if start {
		h.running++
		h.workers.Add(1)
	}
	h.mu.Unlock()
	if start {
		go h.work()
	}
}

// work runs queued streams, writerShare at a time, until none is left.
func (h *hub) work() {
	defer h.workers.Done()
	var mine []*hstream
	var scratch []byte
	for {
		h.mu.Lock()
		n := min(h.ready.len(), writerShare)
		if n == 0 {
			h.running--
			h.mu.Unlock()
			return
		}
		mine = h.ready.take(mine[:0], n)
		h.mu.Unlock()
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

// run writes what the stream has to write: one batch, then the stream is
// idle, queued again (notified meanwhile), handed to a slow goroutine
// (socket full) or finished. Its state is stRunning. scratch is the
// writer's buffer, returned for reuse.
func (c *hstream) run(scratch []byte) []byte {
	if c.ended() {
		return scratch
	}
	buf := append(scratch[:0], c.out...)
	c.out = c.out[:0]
	var err error
	if buf, err = c.fill(buf); err != nil {
		c.finish(err)
		return buf
	}
	if len(buf) > 0 {
		n, err := c.tryWrite(buf)
		if err != nil {
			c.finish(err)
			return buf
		}
		c.lastWrite.Store(time.Now().UnixNano())
		if n < len(buf) { // the socket is full: this stream gets its own writer
			c.out = append(c.out, buf[n:]...)
			c.state.Store(stSlow)
			c.h.s.metrics.sseBlocked.Inc()
			go c.slow()
			return buf
		}
	}
	if cap(c.out) > 512 {
		c.out = nil // an idle stream keeps no buffer
	}
	if !c.state.CompareAndSwap(stRunning, stIdle) {
		// Notified meanwhile: back of the queue, so that a busy
		// stream cannot keep a writer from the others.
		c.state.Store(stQueued)
		c.h.enqueue(c)
	}
	return buf
}

// fill appends the pending events (or a due heartbeat) to buf. It returns
// the error that ends the stream once nothing is left to deliver.
func (c *hstream) fill(buf []byte) ([]byte, error) {
	batch, wait, err := c.sub.TryNext(c.batch)
	c.batch = batch
	if wait > 0 {
		if c.timer == nil {
			c.timer = time.AfterFunc(wait, c.notify)
		} else {
			c.timer.Reset(wait)
		}
	}
	if len(batch) > 0 {
		buf = c.h.s.appendBatch(buf, batch, time.Now())
		clear(batch)
		c.beat.Store(false)
		return buf, nil
	}
	if err != nil {
		return buf, err
	}
	if c.beat.Swap(false) && len(buf) == 0 {
		buf = append(buf, ": keepalive\n\n"...)
	}
	return buf, nil
}

// slow writes the stream's unsent bytes with the write timeout, on its own
// goroutine, then runs the stream as a writer would.
func (c *hstream) slow() {
	if c.ended() {
		return
	}
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.h.s.sse.WriteTimeout)); err != nil {
		c.finish(err)
		return
	}
	if c.ended() { // housekeeping may have set its past deadline first
		return
	}
	if _, err := c.conn.Write(c.out); err != nil {
		c.finish(classifyWriteErr(err))
		return
	}
	// The raw writes of the fast path fail on an expired deadline too.
	if err := c.conn.SetWriteDeadline(time.Time{}); err != nil {
		c.finish(err)
		return
	}
	c.lastWrite.Store(time.Now().UnixNano())
	c.out = c.out[:0]
	if cap(c.out) > maxBuf {
		c.out = nil
	}
	// Caught up: go on as a writer. If the socket fills again, run starts
	// a new slow goroutine and this one ends.
	c.state.Store(stRunning)
	c.run(nil)
}

// tryWrite writes as much of b as the socket takes now.
func (c *hstream) tryWrite(b []byte) (int, error) {
	if c.rc == nil {
		return 0, nil
	}
	if c.write == nil {
		c.write = func(fd uintptr) bool {
			c.wn, c.werr = rawWrite(fd, c.wbuf)
			return true // never wait: a full socket goes to the slow path
		}
	}
	c.wbuf, c.wn, c.werr = b, 0, nil
	err := c.rc.Write(c.write)
	c.wbuf = nil
	if err == nil {
		err = c.werr
	}
	return c.wn, err
}

// ended finishes the stream if housekeeping asked it to end; it reports
// whether the stream is over.
func (c *hstream) ended() bool {
	if c.reason.Load() == nil {
		return false
	}
	c.finish(nil)
	return true
}

// finish ends the stream: err (or the reason housekeeping gave) is
// counted, and everything the stream holds is released.
func (c *hstream) finish(err error) {
	c.state.Store(stDone)
	if c.timer != nil {
		c.timer.Stop()
	}
	s := c.h.s
	reason := "client_gone"
	switch {
	case c.reason.Load() != nil:
		reason = *c.reason.Load()
	case s.ctx.Err() != nil || errors.Is(err, relay.ErrClosed):
		reason = "shutdown"
	case errors.Is(err, relay.ErrSlowConsumer):
		reason = "queue_full"
	case errors.Is(err, relay.ErrSymbolRemoved):
		reason = "symbols_removed"
	case errors.Is(err, errWriteTimeout):
		reason = "write_timeout"
	}
	if reason == "queue_full" || reason == "write_timeout" {
		s.log.Debug("sse client cut off", "reason", reason, "remote", c.ip)
	}
	s.metrics.cut(reason)
	c.sub.Close()
	c.conn.Close()
	c.release()
	s.metrics.sseClients.Dec()
	c.h.mu.Lock()
	delete(c.h.streams, c)
	c.h.mu.Unlock()
	c.batch, c.out = nil, nil
	s.streams.Done()
}

// end asks the stream to end for reason: a write in progress is cut short
// by a deadline in the past, and a waiting stream is woken.
func (c *hstream) end(reason string) {
	if !c.reason.CompareAndSwap(nil, &reason) {
		return
	}
	c.conn.SetWriteDeadline(time.Unix(1, 0))
	c.notify()
}

// housekeep sends due heartbeats and ends streams whose client has gone,
// every sweepEvery, and ends every stream when the server shuts down.
func (h *hub) housekeep() {
	defer close(h.keeper)
	t := time.NewTicker(min(sweepEvery, h.s.sse.Heartbeat/2))
	defer t.Stop()
	var all []*hstream
	for {
		select {
		case <-h.s.ctx.Done():
			all = h.snapshot(all)
			for _, c := range all {
				c.end("shutdown")
			}
			return
		case <-t.C:
		}
		all = h.snapshot(all)
		now := time.Now()
		due := now.Add(-h.s.sse.Heartbeat).UnixNano()
		quiet := now.Add(-sweepEvery).UnixNano()
		for _, c := range all {
			last := c.lastWrite.Load()
			switch {
			case last > quiet:
				// Written to within the last sweep: a gone client shows
				// as a failed write; no peek needed.
			case !peekAlive(c.conn):
				c.end("client_gone")
			case last <= due:
				c.beat.Store(true)
				c.notify()
			}
		}
		clear(all)
	}
}

func (h *hub) snapshot(all []*hstream) []*hstream {
	all = all[:0]
	h.mu.Lock()
	for c := range h.streams {
		all = append(all, c)
	}
	h.mu.Unlock()
	return all
}

// close waits for the writers once every stream has finished.
func (h *hub) close() {
	<-h.keeper
	h.mu.Lock()
	h.stop = true
	h.mu.Unlock()
	h.workers.Wait()
}
