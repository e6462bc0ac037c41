package api

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// A stream's state says who owns its buffers: the writer running it, its
// own slow-path goroutine, or nobody (idle, queued). notify, called by the
// subscription under the broker's lock, only moves a stream between
// states and onto the ready queue.
const (
	stSetup   int32 = iota // not yet added: notify does nothing
	stIdle                 // nothing to do; notify queues it
	stQueued               // on the ready queue
	stRunning              // a writer is running it
	stDirty                // running, and notified again since
	stSlow                 // its own goroutine is writing with a deadline
	stDone                 // finished
)

// stream is one client's stream in the writer pool.
type stream struct {
	p       *pool
	conn    streamConn
	sub     *relay.Subscription
	addr    string // the client's, for logs
	release func() // returns its admission

	state     atomic.Int32
	reason    atomic.Uint32 // a disconnectReason: end was called
	beat      atomic.Bool   // housekeeping asks for a keepalive
	lastWrite atomic.Int64  // unix ns of the last write

	// Owned by whoever runs the stream.
	batch []*relay.Event
	out   []byte // bytes not yet written
	timer *time.Timer
}

// notify says the stream has something to do. It never blocks.
func (c *stream) notify() {
	for {
		switch st := c.state.Load(); st {
		case stIdle:
			if c.state.CompareAndSwap(stIdle, stQueued) {
				c.p.enqueue(c)
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

// run is a writer's turn at the stream (in stRunning): it writes what the
// stream has to write without waiting, then the stream is idle, queued
// again (notified meanwhile), handed to a slow goroutine (the connection
// took less than all) or finished. scratch is the writer's buffer,
// returned for reuse.
func (c *stream) run(scratch []byte) []byte {
	buf, full := c.step(scratch)
	if full {
		c.state.Store(stSlow)
		if !c.p.spawn(c.slow) {
			c.finish(relay.ErrClosed)
		}
	}
	return buf
}

// step collects the stream's pending events (or a due heartbeat) and
// writes them without waiting. full says the connection did not take
// everything: the rest is in c.out and the caller still owns the stream.
// Otherwise the stream is left idle, queued again or finished.
func (c *stream) step(scratch []byte) (buf []byte, full bool) {
	if c.ended() {
		return scratch, false
	}
	buf = append(scratch[:0], c.out...)
	c.out = c.out[:0]
	buf, err := c.fill(buf)
	if err != nil {
		c.finish(err)
		return buf, false
	}
	if len(buf) > 0 {
		n, err := c.conn.tryWrite(buf)
		waitOnly := errors.Is(err, errWouldBlock)
		if err != nil && !waitOnly {
			c.finish(err)
			return buf, false
		}
		if n > 0 {
			c.lastWrite.Store(time.Now().UnixNano())
		}
		if n < len(buf) {
			c.out = append(c.out, buf[n:]...)
			if !waitOnly {
				c.p.metrics.sseBlocked.Inc()
			}
			return buf, true
		}
	}
	if cap(c.out) > 512 {
		c.out = nil // an idle stream keeps no buffer
	}
	if !c.state.CompareAndSwap(stRunning, stIdle) {
		// Notified meanwhile: back of the queue, so that a busy
		// stream cannot keep a writer from the others.
		c.state.Store(stQueued)
		c.p.enqueue(c)
	}
	return buf, false
}

// fill appends the pending events (or a due heartbeat) to buf. It returns
// the error that ends the stream once nothing is left to deliver.
func (c *stream) fill(buf []byte) ([]byte, error) {
	batch, wait, err := c.sub.TryNext(c.batch)
	c.batch = batch
	if wait > 0 { // a conflated quote is due later: nothing else will say so
		if c.timer == nil {
			c.timer = time.AfterFunc(wait, c.notify)
		} else {
			c.timer.Reset(wait)
		}
	}
	if len(batch) > 0 {
		buf = c.p.append(buf, batch)
		c.p.metrics.delivered(batch, time.Now())
		clear(batch)
		c.beat.Store(false)
		if c.sub.Ended() {
			// It ended after these last events (every symbol removed),
			// and its notify came while the stream was queued: run once
			// more to take the end.
			c.state.Store(stDirty)
		}
		return buf, nil
	}
	if err != nil {
		return buf, err
	}
	if c.beat.Swap(false) && len(buf) == 0 {
		buf = append(buf, c.p.keepalive...)
	}
	return buf, nil
}

// slow is the stream's own goroutine (in stSlow): it writes the unsent
// bytes with the write timeout, and runs the stream as a writer would
// until the connection takes everything without waiting again.
func (c *stream) slow() {
	var scratch []byte
	for {
		if c.ended() {
			return
		}
		if err := c.conn.write(c.out, time.Now().Add(c.p.writeTimeout)); err != nil {
			c.finish(err)
			return
		}
		c.lastWrite.Store(time.Now().UnixNano())
		c.out = c.out[:0]
		if cap(c.out) > maxBuf {
			c.out = nil
		}
		c.state.Store(stRunning)
		var full bool
		if scratch, full = c.step(scratch); !full {
			return
		}
		c.state.Store(stSlow)
		if cap(scratch) > maxBuf {
			scratch = nil
		}
	}
}

// ended finishes the stream if it was told to end; it reports whether the
// stream is over.
func (c *stream) ended() bool {
	if c.reason.Load() == 0 {
		return false
	}
	c.finish(nil)
	return true
}

// finish ends the stream: why (the reason it was told to end, or err) is
// counted, and everything the stream holds is released.
func (c *stream) finish(err error) {
	c.state.Store(stDone)
	if c.timer != nil {
		c.timer.Stop()
	}
	reason := classify(disconnectReason(c.reason.Load()), err, c.p.isClosing())
	if reason == reasonQueueFull || reason == reasonWriteTimeout {
		c.p.log.Debug("sse client cut off", "reason", reason.String(), "remote", c.addr)
	}
	c.p.metrics.disconnected(reason)
	c.sub.Close()
	c.conn.close()
	c.release()
	c.batch, c.out = nil, nil
	c.p.remove(c)
}

// end asks the stream to end for reason: a write in progress is
// interrupted, and an idle stream is woken to finish.
func (c *stream) end(reason disconnectReason) {
	if !c.reason.CompareAndSwap(0, uint32(reason)) {
		return
	}
	c.conn.interrupt()
	c.notify()
}
