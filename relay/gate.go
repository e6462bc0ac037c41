package relay

import (
	"context"
	"sync"
	"time"
)

// gate is an upstream's connection budget: at most rate.N new connections
// in any window of rate.Per (a sliding window over the last N dials, as
// venues count handshakes per IP), and at most max open at once. Startup
// and reconnect storms wait at the gate instead of earning a 429; a symbol
// waiting here is "connecting", not "backoff". Safe for concurrent use.
type gate struct {
	rate Rate
	max  int

	mu    sync.Mutex
	dials []*dialRec // recent dials
	open  int
	freed chan struct{} // closed (and replaced) when a connection closes
}

// dialRec is one dial: in flight until its handshake ends, then counted
// from that moment for one window. A dial in flight always counts: the
// venue counts it from when the request reached it, which may be later
// than the dial began.
type dialRec struct {
	at       time.Time
	inFlight bool
}

func newGate(rate Rate, maxOpen int) *gate {
	return &gate{rate: rate, max: maxOpen, freed: make(chan struct{})}
}

// acquire waits for a connection slot and a dial within the rate, then
// counts the dial (whether or not it will succeed: the venue counts
// handshake attempts). done must be called when the handshake has ended
// (either way): the dial then counts from that moment, which is no
// earlier than the venue saw it, so network delays cannot squeeze two
// dials into one of the venue's windows. release frees the connection
// slot once the connection (or the failed dial) is over. wait reports how
// long acquire waited.
func (g *gate) acquire(ctx context.Context) (release, done func(), wait time.Duration, err error) {
	start := time.Now()
	var w waiter
	defer w.stop()
	for {
		ok, rec, delay, freed := g.try(time.Now(), true)
		if ok {
			return g.releaser(), g.marker(rec), time.Since(start), nil
		}
		if err := w.wait(ctx, delay, freed); err != nil {
			return nil, nil, time.Since(start), err
		}
	}
}

// tryAcquire takes a connection slot only if one is free now, waiting
// only for the rate (a handover must not wait for the connection it
// replaces to close).
func (g *gate) tryAcquire(ctx context.Context) (release, done func(), ok bool, err error) {
	g.mu.Lock()
	full := g.max > 0 && g.open >= g.max
	if !full {
		g.open++ // hold the slot while waiting for the rate
	}
	g.mu.Unlock()
	if full {
		return nil, nil, false, nil
	}
	release = g.releaser()
	var w waiter
	defer w.stop()
	for {
		ok, rec, delay, freed := g.try(time.Now(), false)
		if ok {
			return release, g.marker(rec), true, nil
		}
		if err := w.wait(ctx, delay, freed); err != nil {
			release()
			return nil, nil, false, err
		}
	}
}

// waiter waits at the gate: until delay has passed (0: no limit), the gate
// freed something, or ctx ended. Its timer is reused across waits.
type waiter struct{ t *time.Timer }

func (w *waiter) wait(ctx context.Context, delay time.Duration, freed <-chan struct{}) error {
	var tc <-chan time.Time
	if delay > 0 {
		if w.t == nil {
			w.t = time.NewTimer(delay)
		} else {
			w.t.Reset(delay)
		}
		tc = w.t.C
	}
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-tc:
	case <-freed:
	}
	return nil
}

func (w *waiter) stop() {
	if w.t != nil {
		w.t.Stop()
	}
}

// try takes a dial (and, when slot, a connection slot) if allowed at now;
// otherwise it says how long until the rate allows one (0: wait for a
// connection to close, on freed).
func (g *gate) try(now time.Time, slot bool) (ok bool, rec *dialRec, delay time.Duration, freed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if slot && g.max > 0 && g.open >= g.max {
		return false, nil, 0, g.freed
	}
	if g.rate.N > 0 {
		live := g.dials[:0]
		var oldest time.Time // of the finished dials still in the window
		for _, d := range g.dials {
			if d.inFlight || now.Sub(d.at) < g.rate.Per {
				live = append(live, d)
				if !d.inFlight && (oldest.IsZero() || d.at.Before(oldest)) {
					oldest = d.at
				}
			}
		}
		clear(g.dials[len(live):])
		g.dials = live
		if len(g.dials) >= g.rate.N {
			if oldest.IsZero() { // all in flight: look again when one ends
				return false, nil, 0, g.freed
			}
			return false, nil, oldest.Add(g.rate.Per).Sub(now), g.freed
		}
		rec = &dialRec{at: now, inFlight: true}
		g.dials = append(g.dials, rec)
	}
	if slot {
		g.open++
	}
	return true, rec, 0, nil
}

// marker returns the done func of a dial: the dial counts from the end of
// its handshake, and a dial waiting for it may look again.
func (g *gate) marker(rec *dialRec) func() {
	return func() {
		if rec == nil {
			return
		}
		g.mu.Lock()
		if rec.inFlight {
			rec.at, rec.inFlight = time.Now(), false
			close(g.freed)
			g.freed = make(chan struct{})
		}
		g.mu.Unlock()
	}
}

func (g *gate) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.open--
			close(g.freed)
			g.freed = make(chan struct{})
			g.mu.Unlock()
		})
	}
}
