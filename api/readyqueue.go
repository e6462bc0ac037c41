package api

// readyQueue is the writer pool's FIFO of streams with something to send:
// items[head:]. Each stream is on it at most once (its state says so).
// Not safe for concurrent use: the pool's lock guards it.
type readyQueue struct {
	items []*stream
	head  int
}

func (q *readyQueue) len() int { return len(q.items) - q.head }

func (q *readyQueue) push(c *stream) { q.items = append(q.items, c) }

// take appends the first n streams to dst and removes them.
func (q *readyQueue) take(dst []*stream, n int) []*stream {
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
