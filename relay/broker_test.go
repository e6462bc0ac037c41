package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func newTestBroker(t testing.TB, cfg BrokerConfig, symbols ...string) *Broker {
	t.Helper()
	b, err := NewBroker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range symbols {
		if _, err := b.AddSymbol(s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(b.Close)
	return b
}

func publish(t testing.TB, b *Broker, sym string, v int) *Event {
	t.Helper()
	ev, err := b.Publish(sym, []byte(fmt.Sprintf(`{"v":%d}`, v)), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// drain reads from s until it has want events or the deadline passes.
func drain(t testing.TB, s *Subscription, want int) []*Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var out, batch []*Event
	for len(out) < want {
		var err error
		batch, err = s.Next(ctx, batch)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), want, err)
		}
		out = append(out, batch...)
	}
	return out
}

// TestBrokerKeepsLatestAndHistoryByID: the latest quote, the quote JSON and
// its stale copy, and history by event ID: newest, after a kept ID, a reset
// after an evicted or foreign one, and a cursor walk that loses nothing.
func TestBrokerKeepsLatestAndHistoryByID(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t, BrokerConfig{History: 4, Epoch: 1000}, "A", "B")
	if _, err := b.Latest("A"); !errors.Is(err, ErrNoData) {
		t.Fatalf("latest before data: %v", err)
	}
	if _, err := b.Latest("Z"); !errors.Is(err, ErrUnknownSymbol) {
		t.Fatalf("latest unknown: %v", err)
	}
	var evs []*Event
	for i := 1; i <= 6; i++ {
		evs = append(evs, publish(t, b, "A", i))
		publish(t, b, "B", i)
	}
	last := evs[5]
	if last.Seq != 6 || last.ID.String() != "1000-11" {
		t.Fatalf("seq %d id %s", last.Seq, last.ID)
	}
	var q struct {
		Symbol string          `json:"symbol"`
		ID     string          `json:"id"`
		Seq    uint64          `json:"seq"`
		Stale  bool            `json:"stale"`
		Data   json.RawMessage `json:"data"`
		At     time.Time       `json:"received_at"`
	}
	if err := json.Unmarshal(last.JSON, &q); err != nil {
		t.Fatal(err)
	}
	if q.Symbol != "A" || q.ID != "1000-11" || q.Seq != 6 || string(q.Data) != `{"v":6}` || q.Stale || q.At.IsZero() {
		t.Fatalf("quote json %s", last.JSON)
	}
	if err := json.Unmarshal(last.StaleCopy(), &q); err != nil || !q.Stale || string(q.Data) != `{"v":6}` {
		t.Fatalf("stale copy %s", last.StaleCopy())
	}
	got, _ := b.Latest("A")
	if got != last {
		t.Fatal("latest is not the last quote")
	}
	// Without after: newest limit, oldest first.
	h, reset, err := b.History("A", "", 2)
	if err != nil || reset || len(h) != 2 || h[0].Seq != 5 || h[1].Seq != 6 {
		t.Fatalf("history newest: %v %v %d", err, reset, len(h))
	}
	// After an ID still covered.
	h, reset, _ = b.History("A", evs[3].ID.String(), 10)
	if reset || len(h) != 2 || h[0].Seq != 5 {
		t.Fatalf("history after seq 4: reset %v len %d", reset, len(h))
	}
	// After an evicted ID: reset with the oldest kept.
	h, reset, _ = b.History("A", evs[0].ID.String(), 10)
	if !reset || len(h) != 4 || h[0].Seq != 3 {
		t.Fatalf("history after evicted: reset %v len %d", reset, len(h))
	}
	// The newest evicted is seq 2: after it nothing is missing.
	h, reset, _ = b.History("A", evs[1].ID.String(), 10)
	if reset || len(h) != 4 {
		t.Fatalf("history after newest evicted: reset %v len %d", reset, len(h))
	}
	// Foreign epoch and future IDs.
	for _, id := range []string{"999-3", "1000-999"} {
		if _, reset, _ := b.History("A", id, 10); !reset {
			t.Fatalf("%s: no reset", id)
		}
	}
	if _, _, err := b.History("A", "abc", 10); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("bad id: %v", err)
	}
	// Cursor polling from B's newest evicted quote (seq 2, N 4) walks
	// seq 3..6 one at a time, losing nothing.
	cursor := "1000-4"
	var walked []uint64
	for range 10 {
		h, reset, err := b.History("B", cursor, 1)
		if err != nil || reset {
			t.Fatalf("walk: %v reset %v", err, reset)
		}
		if len(h) == 0 {
			break
		}
		walked = append(walked, h[0].Seq)
		cursor = h[0].ID.String()
	}
	if fmt.Sprint(walked) != "[3 4 5 6]" {
		t.Fatalf("cursor walk saw %v", walked)
	}
}

// TestBrokerRejectsInvalidSymbols: a name outside SymbolPattern never
// becomes a symbol.
func TestBrokerRejectsInvalidSymbols(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t, BrokerConfig{})
	for _, s := range []string{"", "a b", "a/b", "é", "x\n", string(make([]byte, 65))} {
		if _, err := b.AddSymbol(s); !errors.Is(err, ErrInvalidSymbol) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestResumeContinuesWithExactlyTheNextQuote cuts a multiplexed stream at
// random points while quotes keep being published, and checks that the
// resumed stream continues with exactly the next quote and nothing twice.
func TestResumeContinuesWithExactlyTheNextQuote(t *testing.T) {
	t.Parallel()
	syms := []string{"A", "B", "C"}
	b := newTestBroker(t, BrokerConfig{History: 4096}, syms...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var published []*Event
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ev, err := b.Publish(syms[rand.IntN(3)], []byte(`1`), time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			published = append(published, ev)
			mu.Unlock()
			if i%64 == 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	sub, err := b.Subscribe(syms, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []*Event
	for cut := 0; cut < 40; cut++ {
		take := 1 + rand.IntN(200)
		evs := drain(t, sub, take)
		got = append(got, evs...)
		sub.Close()
		lastID := got[len(got)-1].ID.String()
		if sub, err = b.Subscribe(syms, SubscribeOptions{After: lastID}); err != nil {
			t.Fatal(err)
		}
	}
	got = append(got, drain(t, sub, 1)...)
	sub.Close()
	for i := 1; i < len(got); i++ {
		if got[i].Kind != KindQuote || got[i].ID.N != got[i-1].ID.N+1 {
			t.Fatalf("event %d: N %d after %d: gap or duplicate", i, got[i].ID.N, got[i-1].ID.N)
		}
	}
	seqs := map[string]uint64{}
	for _, ev := range got {
		if s := seqs[ev.Symbol]; s != 0 && ev.Seq != s+1 {
			t.Fatalf("%s seq %d after %d", ev.Symbol, ev.Seq, s)
		}
		seqs[ev.Symbol] = ev.Seq
	}
}

// TestSubscribeStartsWithSnapshotOrResetThenSnapshot: a fresh subscription
// starts with the latest quote of each symbol in ID order; an ID the broker
// cannot honour gives a reset (with its reason), then that snapshot.
func TestSubscribeStartsWithSnapshotOrResetThenSnapshot(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t, BrokerConfig{History: 3, Epoch: 77}, "A", "B")
	publish(t, b, "B", 1)
	first := publish(t, b, "A", 1)
	for i := 2; i <= 5; i++ {
		publish(t, b, "A", i)
	}
	// Snapshot: latest of each, ordered by ID.
	s, _ := b.Subscribe([]string{"A", "B"}, SubscribeOptions{Snapshot: true})
	evs := drain(t, s, 2)
	s.Close()
	if evs[0].Symbol != "B" || evs[1].Symbol != "A" || evs[1].Seq != 5 {
		t.Fatalf("snapshot %s %s", evs[0].JSON, evs[1].JSON)
	}
	for _, tc := range []struct{ after, reason string }{
		{"12-1", ResetForeignEpoch},
		{"77-100", ResetForeignEpoch},
		{"garbage", ResetInvalidID},
		{first.ID.String(), ResetHistoryExhausted},
	} {
		s, err := b.Subscribe([]string{"A", "B"}, SubscribeOptions{After: tc.after})
		if err != nil {
			t.Fatal(err)
		}
		evs := drain(t, s, 3)
		s.Close()
		if evs[0].Kind != KindReset || string(evs[0].JSON) != `{"reason":"`+tc.reason+`"}` {
			t.Fatalf("%s: first event %s", tc.after, evs[0].JSON)
		}
		if evs[1].Kind != KindQuote || evs[2].Kind != KindQuote || evs[2].Seq != 5 {
			t.Fatalf("%s: snapshot after reset missing", tc.after)
		}
	}
	if _, err := b.Subscribe([]string{"A", "nope"}, SubscribeOptions{}); !errors.Is(err, ErrUnknownSymbol) {
		t.Fatalf("unknown symbol: %v", err)
	}
}

// TestSlowSubscriberIsCutAndCostsOthersNothing: one subscriber that never
// reads is cut off at its queue limit and costs the others nothing.
func TestSlowSubscriberIsCutAndCostsOthersNothing(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t, BrokerConfig{}, "A")
	slow, _ := b.Subscribe([]string{"A"}, SubscribeOptions{Queue: 16})
	defer slow.Close()
	const n = 5000
	var wg sync.WaitGroup
	counts := make([]int, 10)
	for i := range counts {
		s, _ := b.Subscribe([]string{"A"}, SubscribeOptions{Queue: n})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			counts[i] = len(drain(t, s, n))
		}()
	}
	start := time.Now()
	for i := range n {
		publish(t, b, "A", i)
	}
	elapsed := time.Since(start)
	wg.Wait()
	for i, c := range counts {
		if c != n {
			t.Fatalf("reader %d got %d of %d", i, c, n)
		}
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber was not cut off")
	}
	if !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Fatalf("slow err %v", slow.Err())
	}
	if _, err := slow.Next(context.Background(), nil); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Next after cut: %v", err)
	}
	t.Logf("published %d quotes to 10 readers and 1 stalled subscriber in %s", n, elapsed)
}

// TestRemovedSymbolEndsItsSubscriptionsAfterAStatus: subscribers of a
// removed symbol get a removed status; a subscription left with no symbol
// ends with ErrSymbolRemoved once drained; an ID from before a re-add
// resets.
func TestRemovedSymbolEndsItsSubscriptionsAfterAStatus(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t, BrokerConfig{}, "A", "B")
	both, _ := b.Subscribe([]string{"A", "B"}, SubscribeOptions{})
	defer both.Close()
	onlyB, _ := b.Subscribe([]string{"B"}, SubscribeOptions{})
	defer onlyB.Close()
	publish(t, b, "B", 1)
	if err := b.RemoveSymbol("B"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "A", 1)
	evs := drain(t, both, 3)
	if evs[1].Kind != KindStatus || evs[1].Symbol != "B" || evs[2].Symbol != "A" {
		t.Fatalf("multiplexed stream after removal: %s %s", evs[1].JSON, evs[2].JSON)
	}
	var st struct{ State string }
	json.Unmarshal(evs[1].JSON, &st)
	if st.State != "removed" {
		t.Fatalf("status %s", evs[1].JSON)
	}
	evs = drain(t, onlyB, 2)
	if evs[1].Kind != KindStatus {
		t.Fatal("no removal status")
	}
	if _, err := onlyB.Next(context.Background(), nil); !errors.Is(err, ErrSymbolRemoved) {
		t.Fatalf("after removal: %v", err)
	}
	if b.Has("B") {
		t.Fatal("B still known")
	}
	// Re-adding starts over; an ID from before cannot be honoured.
	b.AddSymbol("B")
	s, _ := b.Subscribe([]string{"B"}, SubscribeOptions{After: evs[0].ID.String()})
	defer s.Close()
	if ev := drain(t, s, 1)[0]; ev.Kind != KindReset {
		t.Fatalf("resume across re-add: %s", ev.JSON)
	}
}

// TestMaxRateConflatesQuotesButNeverStatus: with MaxRate a subscriber gets
// the newest quote of each symbol at most MaxRate times a second, and every
// status event.
func TestMaxRateConflatesQuotesButNeverStatus(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := newTestBroker(t, BrokerConfig{}, "A", "B")
		s, _ := b.Subscribe([]string{"A", "B"}, SubscribeOptions{MaxRate: 2})
		defer s.Close()
		for i := 1; i <= 100; i++ {
			publish(t, b, "A", i)
		}
		publish(t, b, "B", 1)
		evs := drain(t, s, 2)
		if len(evs) != 2 || evs[0].Seq != 100 || evs[1].Symbol != "B" {
			t.Fatalf("first conflated batch: %d events", len(evs))
		}
		b.PublishStatus("A", StateStale, "quiet", time.Now())
		for i := 101; i <= 150; i++ {
			publish(t, b, "A", i)
		}
		start := time.Now()
		evs = drain(t, s, 1)
		if evs[0].Kind != KindStatus {
			t.Fatalf("status is not conflated away: %s", evs[0].JSON)
		}
		evs = drain(t, s, 1)
		if evs[0].Seq != 150 || time.Since(start) != 500*time.Millisecond {
			t.Fatalf("second quote seq %d after %s", evs[0].Seq, time.Since(start))
		}
	})
}

// TestBrokerCloseEndsSubscriptions: Close ends every subscription with
// ErrClosed and later publishes fail; Close is idempotent.
func TestBrokerCloseEndsSubscriptions(t *testing.T) {
	t.Parallel()
	b, _ := NewBroker(BrokerConfig{})
	b.AddSymbol("A")
	s, _ := b.Subscribe([]string{"A"}, SubscribeOptions{})
	done := make(chan error)
	go func() {
		_, err := s.Next(context.Background(), nil)
		done <- err
	}()
	b.Close()
	b.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if _, err := b.Publish("A", []byte("1"), time.Now()); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
}

// BenchmarkBrokerFanout publishes quotes to N subscribers, each drained by
// its own goroutine, and reports ns per delivered quote.
func BenchmarkBrokerFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			br := newTestBroker(b, BrokerConfig{}, "A")
			data := []byte(`{"group":"QuoteBin5m:A","data":[{"low":"55.42","high":"55.63","open":"55.42","close":"55.59","last_price":"55.59","volume":"40078","timestamp":1551941701}]}`)
			var wg sync.WaitGroup
			ctx, cancel := context.WithCancel(context.Background())
			total := make([]int, n)
			subs := make([]*Subscription, n)
			for i := range n {
				subs[i], _ = br.Subscribe([]string{"A"}, SubscribeOptions{Queue: 1 << 20})
				wg.Add(1)
				go func() {
					defer wg.Done()
					var batch []*Event
					var err error
					for total[i] < b.N {
						if batch, err = subs[i].Next(ctx, batch); err != nil {
							return
						}
						total[i] += len(batch)
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			now := time.Now()
			for range b.N {
				if _, err := br.Publish("A", data, now); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.StopTimer()
			cancel()
			for _, s := range subs {
				s.Close()
			}
			delivered := 0
			for _, c := range total {
				delivered += c
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(delivered), "ns/delivery")
			b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// TestSubscribeAllTakesTheSymbolsOfTheMoment: an all-symbols subscription
// takes the set under the broker's lock, so a symbol removed just before
// cannot make it fail.
func TestSubscribeAllTakesTheSymbolsOfTheMoment(t *testing.T) {
	b, _ := NewBroker(BrokerConfig{})
	defer b.Close()
	for _, s := range []string{"A", "B", "C"} {
		b.AddSymbol(s)
	}
	if err := b.RemoveSymbol("B"); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe([]string{"B"}, SubscribeOptions{All: true})
	if err != nil {
		t.Fatalf("a symbol removed before the subscription: %v", err)
	}
	defer sub.Close()
	b.Publish("A", []byte(`1`), time.Now())
	b.Publish("C", []byte(`2`), time.Now())
	evs, err := sub.Next(t.Context(), nil)
	if err != nil || len(evs) != 2 || evs[0].Symbol != "A" || evs[1].Symbol != "C" {
		t.Fatalf("%v %v", evs, err)
	}
}
