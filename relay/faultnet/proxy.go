package faultnet

import (
	"errors"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how the proxy treats new connections.
type Mode int32

// Modes of a Proxy.
const (
	// Forward passes connections through (with latency and bandwidth).
	Forward Mode = iota
	// Refuse stops listening: connection attempts are refused by the kernel.
	Refuse
	// Blackhole accepts connections and never forwards a byte, so a
	// handshake never completes.
	Blackhole
)

// Proxy is a TCP proxy between a client (the relay) and a target (the
// simulated feed) that injects faults. All methods are safe for concurrent
// use; Close stops everything it started and waits.
type Proxy struct {
	target string
	addr   string

	latency   atomic.Int64 // per forwarded chunk, each direction
	bandwidth atomic.Int64 // bytes per second per direction; 0 = unlimited
	mode      atomic.Int32

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*pair]struct{}
	closed   bool
	accepted int
	wg       sync.WaitGroup
}

type pair struct {
	client, server net.Conn
	latency        atomic.Int64  // added to the proxy's, per chunk (SetLatencyOpen)
	silence        chan struct{} // closed while silenced; nil = flowing
	resetMid       atomic.Bool
	mu             sync.Mutex
	once           sync.Once
}

// NewProxy listens on a random loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// Addr is the proxy's listening address (stable across Refuse/Forward).
func (p *Proxy) Addr() string { return p.addr }

// Accepted is the number of connections accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// SetLatency delays every forwarded chunk by d in each direction.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetLatencyOpen delays every chunk of the connections open now by d more
// in each direction, in order; connections accepted later are not slowed
// (one congested path among fresh ones). It reports how many it slowed.
func (p *Proxy) SetLatencyOpen(d time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.latency.Store(int64(d))
	}
	return len(p.conns)
}

// SetBandwidth limits each direction of each connection to bytes per
// second (0 = unlimited).
func (p *Proxy) SetBandwidth(bytesPerSec int64) { p.bandwidth.Store(bytesPerSec) }

// SetMode changes how new connections are treated. Refuse closes the
// listener; Forward or Blackhole listen again on the same address.
func (p *Proxy) SetMode(m Mode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return net.ErrClosed
	}
	p.mode.Store(int32(m))
	switch {
	case m == Refuse && p.ln != nil:
		p.ln.Close()
		p.ln = nil
	case m != Refuse && p.ln == nil:
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return err
		}
		p.ln = ln
		p.wg.Add(1)
		go p.accept(ln)
	}
	return nil
}

// Silence makes every open connection go quiet in both directions: bytes
// are neither read nor forwarded, and nothing is closed (no FIN, no RST),
// like a half-open connection behind a dead NAT. Resume lets them flow.
func (p *Proxy) Silence() {
	for _, c := range p.pairs() {
		c.mu.Lock()
		if c.silence == nil {
			c.silence = make(chan struct{})
		}
		c.mu.Unlock()
	}
}

// Resume ends a Silence.
func (p *Proxy) Resume() {
	for _, c := range p.pairs() {
		c.mu.Lock()
		if c.silence != nil {
			close(c.silence)
			c.silence = nil
		}
		c.mu.Unlock()
	}
}

// ResetMidFrame makes every open connection forward half of the next chunk
// from the target and then reset both sides (RST, no FIN).
func (p *Proxy) ResetMidFrame() {
	for _, c := range p.pairs() {
		c.resetMid.Store(true)
	}
}

// CutAll resets every open connection now and reports how many.
func (p *Proxy) CutAll() int {
	cs := p.pairs()
	for _, c := range cs {
		c.reset()
	}
	return len(cs)
}

// Open is the number of open proxied connections.
func (p *Proxy) Open() int { return len(p.pairs()) }

// Close stops listening, resets every connection and waits.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.ln != nil {
		p.ln.Close()
	}
	p.mu.Unlock()
	p.Resume()
	p.CutAll()
	p.wg.Wait()
	return nil
}

func (p *Proxy) pairs() []*pair {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.conns))
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.accepted++
		p.mu.Unlock()
		if Mode(p.mode.Load()) == Blackhole {
			pr := &pair{client: c}
			p.track(pr)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				io.Copy(io.Discard, c) // swallow the handshake, answer nothing
				p.untrack(pr)
				pr.reset()
			}()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{client: c, server: s}
		p.track(pr)
		p.wg.Add(2)
		go p.pipe(pr, c, s, false)
		go p.pipe(pr, s, c, true)
	}
}

func (p *Proxy) track(c *pair) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *Proxy) untrack(c *pair) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pipe copies src to dst, applying the proxy's faults; fromTarget marks the
// target→client direction (where mid-frame resets happen).
func (p *Proxy) pipe(c *pair, src, dst net.Conn, fromTarget bool) {
	defer p.wg.Done()
	defer func() {
		p.untrack(c)
		c.reset()
	}()
	buf := make([]byte, 16<<10)
	for {
		if !c.waitFlowing() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !c.waitFlowing() {
				return
			}
			if d := time.Duration(p.latency.Load() + c.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if bw := p.bandwidth.Load(); bw > 0 {
				time.Sleep(time.Duration(float64(n) / float64(bw) * float64(time.Second)))
			}
			chunk := buf[:n]
			if fromTarget && c.resetMid.Load() {
				dst.Write(chunk[:max(1, n/2)])
				return // the deferred reset sends RST both ways
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Pass a clean close on as a clean close.
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
			return
		}
	}
}

// waitFlowing blocks while the pair is silenced; false once it is closed.
func (c *pair) waitFlowing() bool {
	for {
		c.mu.Lock()
		ch := c.silence
		c.mu.Unlock()
		if ch == nil {
			return true
		}
		<-ch
	}
}

// reset closes both sides with RST (SO_LINGER 0).
func (c *pair) reset() {
	c.once.Do(func() {
		for _, conn := range []net.Conn{c.client, c.server} {
			if conn == nil {
				continue
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			conn.Close()
		}
		c.mu.Lock()
		if c.silence != nil {
			close(c.silence)
			c.silence = nil
		}
		c.mu.Unlock()
	})
}
