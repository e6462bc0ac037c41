package simfeed

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/coder/websocket"
)

// This file holds the feed's observation and scripting methods: what tests
// use to see what the relay did and to make the feed misbehave.

// Accepted returns the number of WebSocket connections accepted so far.
func (f *Feed) Accepted() int64 { return f.accepted.Load() }

// Sent returns the number of quote frames sent so far.
func (f *Feed) Sent() int64 { return f.sent.Load() }

// Conns returns the number of open connections.
func (f *Feed) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Subscribed returns how many open connections are subscribed to sym.
func (f *Feed) Subscribed(sym string) int {
	n := 0
	for _, c := range f.snapshot() {
		c.mu.Lock()
		if _, ok := c.syms[sym]; ok {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// Received returns every text frame the feed has received, in order.
func (f *Feed) Received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.received...)
}

// Headers returns the handshake headers of the newest connection.
func (f *Feed) Headers() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.headers.Clone()
}

// CloseCodes returns the close status of every ended connection as its
// reader saw it (-1 when it ended without a close frame).
func (f *Feed) CloseCodes() []websocket.StatusCode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]websocket.StatusCode(nil), f.closes...)
}

// SetPaused stops (or resumes) sending quotes while still answering pings.
func (f *Feed) SetPaused(p bool) {
	f.mu.Lock()
	f.paused = p
	f.mu.Unlock()
}

// SetStalled makes every connection go silent: no quotes, no reads, so no
// pong either, until it is set false again.
func (f *Feed) SetStalled(s bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == f.stalled {
		return
	}
	f.stalled = s
	if s {
		f.stallCh = make(chan struct{})
	} else {
		close(f.stallCh)
	}
}

func (f *Feed) snapshot() []*conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Collect(maps.Keys(f.conns))
}

// targets returns connections subscribed to sym ("" = all).
func (f *Feed) targets(sym string) []*conn {
	var out []*conn
	for _, c := range f.snapshot() {
		c.mu.Lock()
		_, ok := c.syms[sym]
		c.mu.Unlock()
		if sym == "" || ok {
			out = append(out, c)
		}
	}
	return out
}

// Drop ends the connections subscribed to sym ("" = all) abruptly, without
// a close frame. It returns how many it dropped.
func (f *Feed) Drop(sym string) int {
	cs := f.targets(sym)
	for _, c := range cs {
		c.ws.CloseNow()
	}
	return len(cs)
}

// CloseWith closes the connections of sym ("" = all) with a status code.
func (f *Feed) CloseWith(sym string, code websocket.StatusCode, reason string) int {
	cs := f.targets(sym)
	for _, c := range cs {
		// The close handshake waits for the peer; Close waits for it.
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			c.ws.Close(code, reason)
		}()
	}
	return len(cs)
}

// Send writes a raw frame to the connections of sym ("" = all).
func (f *Feed) Send(sym string, typ websocket.MessageType, payload []byte) int {
	cs := f.targets(sym)
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
		_ = c.ws.Write(ctx, typ, payload)
		cancel()
	}
	return len(cs)
}

// Push sends one quote frame of sym to its connections now.
func (f *Feed) Push(sym string) int {
	cs := f.targets(sym)
	for _, c := range cs {
		b := f.frame(nil, c, sym)
		ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
		if c.ws.Write(ctx, websocket.MessageText, b) == nil {
			f.sent.Add(1)
		}
		cancel()
	}
	return len(cs)
}
