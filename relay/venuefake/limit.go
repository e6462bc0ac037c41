package venuefake

import "time"

// limiter admits or refuses one event per key (a client IP). Not safe for
// concurrent use: the caller holds a lock.
type limiter interface {
	allow(key string, now time.Time) bool
}

// windowLimiter admits at most n events per key in any window of length w
// (a sliding log, exact rather than a token bucket: a venue's "300 per 5
// minutes" means any 5 minutes). Only admitted events count, so a client
// that backs off after a 429 gets in again once the window slides. Not
// safe for concurrent use: the caller holds a lock.
type windowLimiter struct {
	n    int
	w    time.Duration
	logs map[string][]time.Time
}

func newWindowLimiter(n int, w time.Duration) *windowLimiter {
	return &windowLimiter{n: n, w: w, logs: map[string][]time.Time{}}
}

// allow reports whether an event for key at now is admitted, and records
// it if so.
func (l *windowLimiter) allow(key string, now time.Time) bool {
	log := l.logs[key]
	cut := 0
	for cut < len(log) && now.Sub(log[cut]) >= l.w {
		cut++
	}
	log = log[cut:]
	if len(log) >= l.n {
		l.logs[key] = log
		return false
	}
	l.logs[key] = append(log, now)
	return true
}

// rateCounter counts one connection's inbound messages in a sliding window
// (Binance's 5 messages per second per connection). Not safe for
// concurrent use: the caller holds a lock.
type rateCounter struct {
	n   int
	w   time.Duration
	log []time.Time
}

// add records one message at now and reports whether the count in the
// window is still within n.
func (r *rateCounter) add(now time.Time) bool {
	cut := 0
	for cut < len(r.log) && now.Sub(r.log[cut]) >= r.w {
		cut++
	}
	r.log = append(r.log[cut:], now)
	return len(r.log) <= r.n
}

// bucketLimiter is a token bucket per key: n tokens per window w, at most
// burst stored (Coinbase's "8 per second, bursts up to 20"). Not safe for
// concurrent use: the caller holds a lock.
type bucketLimiter struct {
	rate    float64 // tokens per second
	burst   float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newBucketLimiter(n int, w time.Duration, burst int) *bucketLimiter {
	return &bucketLimiter{rate: float64(n) / w.Seconds(), burst: float64(burst), buckets: map[string]*bucket{}}
}

func (l *bucketLimiter) allow(key string, now time.Time) bool {
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
