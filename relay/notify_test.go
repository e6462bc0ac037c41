package relay

import (
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestNotifyTellsOfEveryEventAndTryNextTakesThem: a subscription driven by
// SetNotify is told of every queued event and of its end, and TryNext hands
// over exactly what is pending without waiting.
func TestNotifyTellsOfEveryEventAndTryNextTakesThem(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t, BrokerConfig{History: 16, Epoch: 7}, "A", "B")
	publish(t, b, "A", 0) // the snapshot
	s, err := b.Subscribe([]string{"A", "B"}, SubscribeOptions{Snapshot: true, Queue: 4})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	s.SetNotify(func() { calls.Add(1) })
	if calls.Load() != 1 {
		t.Fatalf("SetNotify called f %d times, want once at once", calls.Load())
	}
	batch, wait, err := s.TryNext(nil)
	if err != nil || wait != 0 || len(batch) != 1 || batch[0].Symbol != "A" {
		t.Fatalf("snapshot: %v %v %v", batch, wait, err)
	}
	if batch, _, err = s.TryNext(batch); err != nil || len(batch) != 0 {
		t.Fatalf("nothing pending: %v %v", batch, err)
	}
	publish(t, b, "A", 1)
	publish(t, b, "B", 2)
	if calls.Load() != 3 {
		t.Fatalf("notified %d times after two events, want 3", calls.Load())
	}
	if batch, _, err = s.TryNext(batch); err != nil || len(batch) != 2 || batch[0].Symbol != "A" || batch[1].Symbol != "B" {
		t.Fatalf("two events: %v %v", batch, err)
	}
	// Falling behind: the fifth pending event cuts it, and f hears of it.
	for i := range 5 {
		publish(t, b, "A", 10+i)
	}
	before := calls.Load()
	if _, _, err = s.TryNext(batch); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("after 5 events with queue 4: %v", err)
	}
	if before < 3+5 {
		t.Fatalf("notified %d times, want every queued event and the cut", before)
	}
	s.Close()
	if _, _, err = s.TryNext(nil); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("after Close the first reason stays: %v", err)
	}
}

// TestTryNextSaysWhenAConflatedQuoteIsDue: with MaxRate, TryNext says when
// the held-back quote becomes due, and hands over only the newest one then.
func TestTryNextSaysWhenAConflatedQuoteIsDue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, BrokerConfig{History: 16, Epoch: 7}, "A")
		s, err := b.Subscribe([]string{"A"}, SubscribeOptions{MaxRate: 10})
		if err != nil {
			t.Fatal(err)
		}
		s.SetNotify(func() {})
		publish(t, b, "A", 1)
		batch, wait, err := s.TryNext(nil)
		if err != nil || len(batch) != 1 || wait != 0 {
			t.Fatalf("first quote: %v %v %v", batch, wait, err)
		}
		publish(t, b, "A", 2)
		last := publish(t, b, "A", 3)
		if batch, wait, err = s.TryNext(batch); err != nil || len(batch) != 0 || wait <= 0 || wait > 100*time.Millisecond {
			t.Fatalf("held back: %v wait %v %v", batch, wait, err)
		}
		time.Sleep(wait)
		if batch, _, err = s.TryNext(batch); err != nil || len(batch) != 1 || batch[0] != last {
			t.Fatalf("due: %v %v (want only the newest)", batch, err)
		}
	})
}

// TestTryNextGivesTheEndAfterTheLastEvents: a subscription whose every
// symbol is removed delivers the removal's status first; Done is closed by
// then, and the next TryNext returns ErrSymbolRemoved.
func TestTryNextGivesTheEndAfterTheLastEvents(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t, BrokerConfig{}, "A")
	s, err := b.Subscribe([]string{"A"}, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var calls atomic.Int32
	s.SetNotify(func() { calls.Add(1) })
	if err := b.RemoveSymbol("A"); err != nil {
		t.Fatal(err)
	}
	batch, _, err := s.TryNext(nil)
	if err != nil || len(batch) != 1 || batch[0].Kind != KindStatus {
		t.Fatalf("last events: %v %v", batch, err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done is open after the last events")
	}
	if _, _, err = s.TryNext(batch); !errors.Is(err, ErrSymbolRemoved) {
		t.Fatalf("after the last events: %v", err)
	}
	if calls.Load() < 2 {
		t.Fatalf("notified %d times, want the event and the end", calls.Load())
	}
}
