package api

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestStreamQueueBoundedUnderSteadyLoad: a queue that is never empty
// (writers take while notifications keep arriving) keeps FIFO order and
// does not grow its array with the number of pushes.
func TestStreamQueueBoundedUnderSteadyLoad(t *testing.T) {
	const streams = 100
	pool := make([]*hstream, streams)
	for i := range pool {
		pool[i] = &hstream{}
	}
	var q streamQueue
	for _, c := range pool {
		q.push(c)
	}
	var got []*hstream
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

// TestSSEConflatedThroughHub: a conflated stream (max_rate) gets at most
// max_rate quotes per second, each the newest one at the time, delivered
// by the hub's timer when nothing else wakes the stream.
func TestSSEConflatedThroughHub(t *testing.T) {
	f := newFixture(t, opts{rate: 200})
	f.waitQuotes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := openSSE(t, ctx, f.url+"/v1/quotes/A/stream?max_rate=10&snapshot=false")
	defer r.Close()
	const window = 1500 * time.Millisecond
	start := time.Now()
	var seqs []uint64
	for time.Since(start) < window {
		ev, err := r.nextQuote()
		if err != nil {
			t.Fatal(err)
		}
		var q quoteBody
		if err := json.Unmarshal([]byte(ev.Data), &q); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q.Seq)
	}
	// At most one per 100 ms, plus the one that may end the window.
	if max := int(window/(100*time.Millisecond)) + 2; len(seqs) > max || len(seqs) < 3 {
		t.Fatalf("%d quotes in %v at max_rate=10: %v", len(seqs), window, seqs)
	}
	skipped := 0
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("not increasing: %v", seqs)
		}
		if seqs[i] > seqs[i-1]+1 {
			skipped++
		}
	}
	if skipped == 0 {
		t.Fatalf("nothing conflated at 200 quotes/s: %v", seqs)
	}
	t.Logf("%d quotes in %v, %d conflation gaps", len(seqs), window, skipped)
}
