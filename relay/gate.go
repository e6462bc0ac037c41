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
	dials []time.Time // times of the last rate.N dials, oldest first
	open  int
	freed chan struct{} // closed (and replaced) when a connection closes
}

func newGate(rate Rate, maxOpen int) *gate {
	return &gate{rate: rate, max: maxOpen, freed: make(chan struct{})}
}

// acquire waits for a connection slot and a dial within the rate, then
// counts the dial (whether or not it will succeed: the venue counts
// handshake attempts). release frees the connection slot; call it once the
// connection (or the failed dial) is over. wait reports how long acquire
// waited.
func (g *gate) acquire(ctx context.Context) (release func(), wait time.Duration, err error) {
	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ok, delay, freed := g.try(time.Now(), true)
		if ok {
			return g.releaser(), time.Since(start), nil
		}
		var tc <-chan time.Time
		if delay > 0 {
			if timer == nil {
				timer = time.NewTimer(delay)
			} else {
				timer.Reset(delay)
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return nil, time.Since(start), context.Cause(ctx)
		case <-tc:
		case <-freed:
		}
	}
}

// tryAcquire takes a connection slot only if one is free now, waiting
// only for the rate (a handover must not wait for the connection it
// replaces to close).
func (g *gate) tryAcquire(ctx context.Context) (release func(), ok bool, err error) {
	g.mu.Lock()
	full := g.max > 0 && g.open >= g.max
	if !full {
		g.open++ // hold the slot while waiting for the rate
	}
	g.mu.Unlock()
	if full {
		return nil, false, nil
	}
	release = g.releaser()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ok, delay, _ := g.try(time.Now(), false)
		if ok {
			return release, true, nil
		}
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-ctx.Done():
			release()
			return nil, false, context.Cause(ctx)
		case <-timer.C:
		}
	}
}

// try takes a dial (and, when slot, a connection slot) if allowed at now;
// otherwise it says how long until the rate allows one (0: wait for a
// connection to close, on freed).
func (g *gate) try(now time.Time, slot bool) (ok bool, delay time.Duration, freed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if slot && g.max > 0 && g.open >= g.max {
		return false, 0, g.freed
	}
	if g.rate.N > 0 && len(g.dials) >= g.rate.N {
		if d := g.dials[0].Add(g.rate.Per).Sub(now); d > 0 {
			return false, d, g.freed
		}
		g.dials = append(g.dials[:0], g.dials[1:]...)
	}
	if g.rate.N > 0 {
		g.dials = append(g.dials, now)
	}
	if slot {
		g.open++
	}
	return true, 0, nil
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
