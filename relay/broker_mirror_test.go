package relay

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func newMirror(t testing.TB, history int, epoch int64, symbols ...string) *Broker {
	t.Helper()
	b := newTestBroker(t, BrokerConfig{History: history})
	b.EnableMirror(nil)
	for _, s := range symbols {
		if _, err := b.AddMirrorSymbol(s); err != nil {
			t.Fatal(err)
		}
	}
	if epoch != 0 {
		b.SetEpoch(epoch)
	}
	return b
}

func apply(t testing.TB, b *Broker, sym string, n, seq, prev uint64) *Event {
	t.Helper()
	ev, err := b.ApplyAt(MirrorQuote{Symbol: sym, N: n, Seq: seq, Prev: prev, ReceivedAt: time.Unix(1, 0), Data: []byte(fmt.Sprintf(`{"n":%d}`, n))})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// Two mirrors that start reading the same log at different points decide
// the same for every resume point, and IDs carry the log's numbers.
func TestMirrorHistoryFromLogEvidence(t *testing.T) {
	// The log: A at 3,5,7,9 (prev 0,3,5,7), B at 4,8 (prev 0,4).
	type q struct {
		sym          string
		n, seq, prev uint64
	}
	log := []q{{"A", 3, 1, 0}, {"B", 4, 1, 0}, {"A", 5, 2, 3}, {"A", 7, 3, 5}, {"B", 8, 2, 4}, {"A", 9, 4, 7}}
	// Mirror 1 read everything; mirror 2 started after the log evicted
	// A@3, A@5 and B@4 (per-subject limit), as a late edge would.
	m1 := newMirror(t, 4, 77, "A", "B")
	m2 := newMirror(t, 4, 77, "A", "B")
	for _, x := range log {
		ev := apply(t, m1, x.sym, x.n, x.seq, x.prev)
		if ev.ID != (EventID{77, x.n}) || ev.Seq != x.seq {
			t.Fatalf("event %v seq %d", ev.ID, ev.Seq)
		}
		if x.n >= 7 {
			apply(t, m2, x.sym, x.n, x.seq, x.prev)
		}
	}
	// Mirror 1 keeps 2 per symbol only from here on: same as mirror 2 for
	// the question "is everything after n kept?" once its rings evict too.
	for n := uint64(0); n <= 9; n++ {
		_, r2, err := m2.History("A", fmt.Sprintf("77-%d", n), 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := n < 5; r2 != want {
			t.Fatalf("mirror 2, A after %d: reset %v, want %v", n, r2, want)
		}
		_, r1, _ := m1.History("A", fmt.Sprintf("77-%d", n), 10)
		if r1 {
			t.Fatalf("mirror 1 kept all of A, yet reset after %d", n)
		}
	}
	if _, err := m1.ApplyAt(MirrorQuote{Symbol: "A", N: 9, Seq: 5, Prev: 9}); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("reapplying 9: %v", err)
	}
	if _, err := m1.ApplyAt(MirrorQuote{Symbol: "C", N: 10}); !errors.Is(err, ErrUnknownSymbol) {
		t.Fatalf("unknown symbol: %v", err)
	}
}

// A hole in a symbol's chain (or quotes the writer lost) resets the live
// subscribers of that symbol and every resume point before the hole.
func TestMirrorHoleResets(t *testing.T) {
	b := newMirror(t, 8, 5, "A", "B")
	apply(t, b, "A", 1, 1, 0)
	apply(t, b, "B", 2, 1, 0)
	sa, err := b.Subscribe([]string{"A"}, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := b.Subscribe([]string{"B"}, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	apply(t, b, "A", 6, 3, 4) // A@4 never reached this mirror
	evs := drain(t, sa, 2)
	if evs[0].Kind != KindReset || evs[1].ID.N != 6 {
		t.Fatalf("A's subscriber got %v then %v", evs[0].Kind, evs[1].ID)
	}
	if _, reset, _ := b.History("A", "5-3", 10); !reset {
		t.Fatal("resume before the hole was honoured")
	}
	if qs, reset, _ := b.History("A", "5-4", 10); reset || len(qs) != 1 || qs[0].ID.N != 6 {
		t.Fatalf("resume at the hole's end: reset %v, %d quotes", reset, len(qs))
	}
	// Lost quotes at the writer: same, on B.
	if _, err := b.ApplyAt(MirrorQuote{Symbol: "B", N: 9, Seq: 5, Prev: 2, Lost: 3}); err != nil {
		t.Fatal(err)
	}
	evs = drain(t, sb, 2)
	if evs[0].Kind != KindReset || evs[1].ID.N != 9 {
		t.Fatalf("B's subscriber got %v then %v", evs[0].Kind, evs[1].ID)
	}
	if _, reset, _ := b.History("B", "5-7", 10); !reset {
		t.Fatal("resume before the lost quotes was honoured")
	}
}

// A new epoch resets every subscriber and clears the rings; the first
// epoch of an empty mirror does not.
func TestMirrorEpochChange(t *testing.T) {
	b := newMirror(t, 8, 0, "A")
	s, err := b.Subscribe([]string{"A"}, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b.SetEpoch(10) {
		t.Fatal("the first epoch reset subscribers")
	}
	apply(t, b, "A", 100, 1, 0)
	if !b.SetEpoch(20) {
		t.Fatal("a new epoch did not reset")
	}
	evs := drain(t, s, 2)
	if evs[0].Kind != KindQuote || evs[1].Kind != KindReset || string(evs[1].JSON) != `{"reason":"epoch_changed"}` {
		t.Fatalf("events %v %v %s", evs[0].Kind, evs[1].Kind, evs[1].JSON)
	}
	if _, err := b.Latest("A"); !errors.Is(err, ErrNoData) {
		t.Fatalf("ring kept across epochs: %v", err)
	}
	if ev := apply(t, b, "A", 1, 1, 0); ev.ID != (EventID{20, 1}) {
		t.Fatalf("id after the change %v", ev.ID)
	}
	if _, reset, _ := b.History("A", "10-100", 5); !reset {
		t.Fatal("an ID of the old epoch was honoured")
	}
}

// A client with an ID the mirror has not applied yet waits for it (and is
// served without reset); one that never comes is reset after MirrorWait.
func TestMirrorWaitsForAnIDAhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newMirror(t, 8, 3, "A")
		apply(t, b, "A", 1, 1, 0)
		done := make(chan bool)
		go func() {
			qs, reset, err := b.History("A", "3-2", 10)
			done <- err == nil && !reset && len(qs) == 0
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("answered before the ID was applied")
		default:
		}
		apply(t, b, "A", 2, 2, 1)
		if ok := <-done; !ok {
			t.Fatal("not served after the ID arrived")
		}
		start := time.Now()
		s, err := b.Subscribe([]string{"A"}, SubscribeOptions{After: "3-50"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if waited := time.Since(start); waited != MirrorWait {
			t.Fatalf("waited %v", waited)
		}
		if evs := drain(t, s, 1); evs[0].Kind != KindReset {
			t.Fatalf("an ID beyond the log was not reset: %v", evs[0].Kind)
		}
	})
}

// An ID of a newer epoch kicks the reader and waits for the epoch.
func TestMirrorKickOnNewerEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, BrokerConfig{History: 4})
		kicked := make(chan struct{}, 1)
		b.EnableMirror(func() { kicked <- struct{}{} })
		b.AddMirrorSymbol("A")
		b.SetEpoch(10)
		go func() {
			<-kicked
			b.SetEpoch(20)
			b.ApplyAt(MirrorQuote{Symbol: "A", N: 1, Seq: 1, Data: []byte(`1`)})
			b.ApplyAt(MirrorQuote{Symbol: "A", N: 2, Seq: 2, Prev: 1, Data: []byte(`2`)})
		}()
		qs, reset, err := b.History("A", "20-2", 10)
		if err != nil || reset || len(qs) != 0 {
			t.Fatalf("reset %v, %d quotes, %v", reset, len(qs), err)
		}
	})
}
