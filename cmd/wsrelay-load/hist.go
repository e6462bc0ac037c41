package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds with about 1.5%
// resolution, safe for concurrent use (atomic adds, sharded by the caller).
type hist struct{ b [hBuckets]atomic.Uint64 }

const (
	hSub     = 64
	hBuckets = 40 * hSub
)

func hBucket(v uint64) int {
	if v < hSub {
		return int(v)
	}
	e := bits.Len64(v) - 7
	i := (e+1)*hSub + int(v>>e) - hSub
	if i >= hBuckets {
		return hBuckets - 1
	}
	return i
}

func hValue(i int) uint64 {
	if i < hSub {
		return uint64(i)
	}
	e := i/hSub - 1
	return uint64(i%hSub+hSub) << e
}

func (h *hist) add(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.b[hBucket(uint64(ns))].Add(1)
}

// sharded spreads adds over shards to keep 10 000 writers off one line.
type sharded [64]hist

func (s *sharded) add(shard int, ns int64) { s[shard%len(s)].add(ns) }

// summary merges the shards and returns count and quantiles.
func (s *sharded) summary(qs ...float64) (uint64, []time.Duration, time.Duration) {
	var merged [hBuckets]uint64
	var n uint64
	maxI := 0
	for i := range s {
		for j := range merged {
			c := s[i].b[j].Load()
			merged[j] += c
			n += c
			if c > 0 && j > maxI {
				maxI = j
			}
		}
	}
	out := make([]time.Duration, len(qs))
	if n == 0 {
		return 0, out, 0
	}
	for k, q := range qs {
		target := uint64(q*float64(n) + 0.5)
		if target < 1 {
			target = 1
		}
		var cum uint64
		for j, c := range merged {
			cum += c
			if cum >= target {
				out[k] = time.Duration(hValue(j))
				break
			}
		}
	}
	return n, out, time.Duration(hValue(maxI))
}

func (s *sharded) reset() {
	for i := range s {
		for j := range s[i].b {
			s[i].b[j].Store(0)
		}
	}
}
