package venuefake

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// streamKey names one stream: a canonical channel (ChannelTicker, …) and a
// symbol in the venue's spelling.
type streamKey struct {
	channel string
	symbol  string
}

// stream is one (channel, symbol) feed. Its counter only grows; its
// generator goroutine runs while it has subscribers. Guarded by Server.mu.
type stream struct {
	key     streamKey
	seq     uint64
	subs    map[*conn]struct{}
	last    *event
	running bool
}

// event is one market event of a stream, the same for every subscriber;
// each venue renders it in its own shape.
type event struct {
	seq    uint64 // the stream's counter: 1, 2, 3, …
	at     time.Time
	price  float64 // last trade price
	qty    float64 // last trade size
	buy    bool    // taker side of the last trade
	bid    float64
	bidQty float64
	ask    float64
	askQty float64
	open   float64 // 24 h open
	high   float64
	low    float64
	volume float64 // 24 h base volume
}

// subscribe adds c to stream k and starts its generator if needed. With
// snapshot, c also receives the stream's last event at once (rendered with
// snapshot=true, same counter: a venue's snapshot repeats the current
// state), or, if the stream has none yet, a new event that every
// subscriber receives. It reports false if c already subscribed k. The
// venue must queue its ack before calling it, so the ack precedes data.
func (s *Server) subscribe(c *conn, k streamKey, snapshot bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil {
		st = &stream{key: k, subs: map[*conn]struct{}{}}
		s.streams[k] = st
	}
	if _, dup := st.subs[c]; dup {
		return false
	}
	st.subs[c] = struct{}{}
	c.mu.Lock()
	c.subs[k] = struct{}{}
	c.subscribed = true
	c.mu.Unlock()
	if snapshot {
		if st.last != nil {
			c.send(s.v.render(c, k, st.last, true))
		} else if s.pushing.Load() {
			e := s.nextEvent(st)
			for sub := range st.subs {
				c.send(s.v.render(sub, k, e, sub == c))
			}
		}
	}
	if !st.running && s.push > 0 && !s.closed {
		st.running = true
		s.wg.Add(1)
		go s.generate(st)
	}
	return true
}

// unsubscribe removes c from stream k; it reports whether c was
// subscribed.
func (s *Server) unsubscribe(c *conn, k streamKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.mu.Lock()
	_, ok := c.subs[k]
	delete(c.subs, k)
	c.mu.Unlock()
	if st := s.streams[k]; st != nil {
		delete(st.subs, c)
	}
	return ok
}

func (s *Server) unsubscribeAll(c *conn) {
	for _, k := range c.subscriptions() {
		s.unsubscribe(c, k)
	}
}

// generate pushes stream st's events at the push interval until it has no
// subscriber left or the server closes.
func (s *Server) generate(st *stream) {
	defer s.wg.Done()
	t := time.NewTicker(s.push)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if !s.pushing.Load() {
			s.mu.Lock()
			idle := len(st.subs) == 0
			if idle {
				st.running = false
			}
			s.mu.Unlock()
			if idle {
				return
			}
			continue
		}
		if !s.emit(st) {
			return
		}
	}
}

// emit produces one event of st for every subscriber; false (and the
// generator stops) when it has none.
func (s *Server) emit(st *stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(st.subs) == 0 {
		st.running = false
		return false
	}
	last := st.last
	e := s.nextEvent(st)
	live := 0
	for c := range st.subs {
		if b := s.v.render(c, st.key, e, false); b == nil {
			if !c.closing.Load() {
				live++ // a channel this event does not concern
			}
		} else if c.trySend(b) {
			live++
		}
	}
	if live == 0 {
		// Every subscriber is being closed (the venue's own close after
		// an announcement, before the client's new connection
		// subscribed): the event went to nobody, so it was not made —
		// the counter a test checks for loss counts events sent.
		st.seq, st.last = st.seq-1, last
	}
	return true
}

// nextEvent advances st's counter and the symbol's price (a small random
// walk shared by the symbol's channels). s.mu held.
func (s *Server) nextEvent(st *stream) *event {
	st.seq++
	p, ok := s.prices[st.key.symbol]
	if !ok {
		p = basePrice(st.key.symbol)
	}
	open := p
	p *= math.Exp(rand.NormFloat64() * 0.0005)
	s.prices[st.key.symbol] = p
	tick := p * 0.00002
	e := &event{
		seq:    st.seq,
		at:     time.Now(),
		price:  p,
		qty:    0.001 + rand.Float64(),
		buy:    rand.IntN(2) == 0,
		bid:    p - tick,
		bidQty: 0.01 + rand.Float64()*3,
		ask:    p + tick,
		askQty: 0.01 + rand.Float64()*3,
		open:   open * 0.98,
		high:   max(open, p) * 1.01,
		low:    min(open, p) * 0.99,
		volume: 1000 + float64(st.seq),
	}
	st.last = e
	return e
}

// basePrice is a plausible starting price for a symbol in any spelling.
func basePrice(sym string) float64 {
	u := strings.ToUpper(sym)
	switch {
	case strings.HasPrefix(u, "BTC") || strings.HasPrefix(u, "XBT") || strings.HasPrefix(u, "TBTC"):
		return 81200
	case strings.HasPrefix(u, "ETH") || strings.HasPrefix(u, "TETH"):
		return 3600
	case strings.HasPrefix(u, "SOL"):
		return 180
	}
	h := 0
	for _, r := range u {
		h = h*31 + int(r)
	}
	return 1 + float64(h%9000)/10
}

// SetPushing stops (false) or resumes (true) every automatic push; while
// stopped the counters stand still, so a test can wait for the relay to
// catch up and compare its last counter with Pushed.
func (s *Server) SetPushing(on bool) { s.pushing.Store(on) }

// Push produces one event on stream (channel, symbol) now, for its
// subscribers; it reports false (and produces nothing) when the stream has
// none. It works with automatic pushes off (PushInterval < 0).
func (s *Server) Push(channel, symbol string) bool {
	s.mu.Lock()
	st := s.streams[streamKey{channel, symbol}]
	s.mu.Unlock()
	if st == nil {
		return false
	}
	return s.emit(st)
}

// PushedOn returns how many events stream (channel, symbol) has produced:
// its counter's current value.
func (s *Server) PushedOn(channel, symbol string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[streamKey{channel, symbol}]; st != nil {
		return st.seq
	}
	return 0
}

// Pushed returns how many events the streams of symbol produced, all
// channels together (with one channel subscribed, its counter).
func (s *Server) Pushed(symbol string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for k, st := range s.streams {
		if k.symbol == symbol {
			n += st.seq
		}
	}
	return n
}

// Subscribers returns how many connections subscribe to (channel, symbol)
// now.
func (s *Server) Subscribers(channel, symbol string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[streamKey{channel, symbol}]; st != nil {
		return len(st.subs)
	}
	return 0
}

// num formats v with dec decimals, as venues print prices in strings.
func num(v float64, dec int) string { return strconv.FormatFloat(v, 'f', dec, 64) }
