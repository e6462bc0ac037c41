package api

import "testing"

// TestReadyQueueStaysBoundedUnderSteadyLoad: a queue that is never empty
// (writers take while notifications keep arriving) keeps FIFO order and
// does not grow its array with the number of pushes.
func TestReadyQueueStaysBoundedUnderSteadyLoad(t *testing.T) {
	const streams = 100
	pool := make([]*stream, streams)
	for i := range pool {
		pool[i] = &stream{}
	}
	var q readyQueue
	for _, c := range pool {
		q.push(c)
	}
	var got []*stream
	next := 0 // the stream expected next, in FIFO order
	for round := range 100_000 {
		got = q.take(got[:0], 7)
		for _, c := range got {
			if c != pool[next%streams] {
				t.Fatalf("round %d: out of order", round)
			}
			next++
			q.push(c) // notified again: back of the queue
		}
		if q.len() != streams {
			t.Fatalf("round %d: %d queued, want %d", round, q.len(), streams)
		}
	}
	if c := cap(q.items); c > 4*streams {
		t.Fatalf("queue array grew to %d for %d streams", c, streams)
	}
	got = q.take(got[:0], q.len())
	if len(got) != streams || q.len() != 0 || len(q.items) != 0 {
		t.Fatalf("drain: took %d, left %d (%d items)", len(got), q.len(), len(q.items))
	}
}
