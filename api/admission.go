package api

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
)

// admission bounds the open streams: sse.max_clients in all, and
// sse.max_clients_per_ip per client address. Safe for concurrent use.
type admission struct {
	max, perAddr int

	total  atomic.Int64
	mu     sync.Mutex
	byAddr map[string]int
}

func newAdmission(max, perAddr int) *admission {
	return &admission{max: max, perAddr: perAddr, byAddr: map[string]int{}}
}

// admit counts a new stream of addr, or refuses it with 503 (the relay is
// full) or 429 (addr has its share). release, called once the stream has
// ended, returns the place; calling it again does nothing.
func (a *admission) admit(addr string) (release func(), refused *apiError) {
	if n := a.total.Add(1); n > int64(a.max) {
		a.total.Add(-1)
		return nil, &apiError{status: http.StatusServiceUnavailable, code: CodeTooManyClients,
			msg: fmt.Sprintf("the relay serves its maximum of %d streams", a.max), retryAfter: 2}
	}
	a.mu.Lock()
	if a.byAddr[addr] >= a.perAddr {
		a.mu.Unlock()
		a.total.Add(-1)
		return nil, &apiError{status: http.StatusTooManyRequests, code: CodeTooManyClients,
			msg: fmt.Sprintf("at most %d streams per client address", a.perAddr), retryAfter: 2}
	}
	a.byAddr[addr]++
	a.mu.Unlock()
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		a.total.Add(-1)
		a.mu.Lock()
		if a.byAddr[addr]--; a.byAddr[addr] <= 0 {
			delete(a.byAddr, addr)
		}
		a.mu.Unlock()
	}, nil
}
