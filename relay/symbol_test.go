package relay

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

// TestSymbolHandoverHoldsUntilSynced drives one symbol's handover by hand:
// the old session publishes until the switch, the new one's quotes are
// held and published after the old one's (those the old one published
// already are not repeated), a handover session that ended before it
// synced leaves nothing behind (its successor is not refused), the old
// session is still heard for the linger (what it had queued is not
// lost, what the new one published is not repeated) and not after.
func TestSymbolHandoverHoldsUntilSynced(t *testing.T) {
	b, err := NewBroker(BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.AddSymbol("A"); err != nil {
		t.Fatal(err)
	}
	r := &Relay{sink: b, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	up := &upstream{cfg: UpstreamConfig{Name: "v", PingTimeout: time.Second}}
	m := newSymbol(r, up, Symbol{Name: "A"})
	q := func(n int) []byte { return fmt.Appendf(nil, `{"sym":"A","seq":%d}`, n) }
	now := time.Now()
	offerAt := func(s *session, n int, at time.Time) (published, startSync bool) {
		t.Helper()
		published, startSync, err := m.offer(s, q(n), at)
		if err != nil {
			t.Fatal(err)
		}
		return published, startSync
	}
	offer := func(s *session, n int) (published, startSync bool) {
		t.Helper()
		return offerAt(s, n, now)
	}

	old := &session{}
	if ok, _ := offer(old, 1); !ok {
		t.Fatal("the first session does not take over")
	}
	cut := &session{prev: old}
	if ok, sync := offer(cut, 2); !ok || !sync {
		t.Fatalf("handover quote: published %v, startSync %v", ok, sync)
	}
	cut.ended.Store(true) // cut before its sync

	next := &session{prev: old}
	if ok, sync := offer(next, 3); !ok || !sync {
		t.Fatalf("successor of an ended handover session: published %v, startSync %v", ok, sync)
	}
	if ok, sync := offer(next, 4); !ok || sync {
		t.Fatalf("second held quote: published %v, startSync %v", ok, sync)
	}
	for _, n := range []int{2, 3} {
		if ok, _ := offer(old, n); !ok {
			t.Fatalf("the old session stops publishing before the switch (%d)", n)
		}
	}
	if !m.pendingOn(next) || m.pendingOn(cut) {
		t.Fatal("pending on the wrong session")
	}
	if err := m.finishSwitch(cut, false); err != nil || m.active.Load() != old {
		t.Fatalf("a session that holds nothing switched the symbol: %v", err)
	}
	if err := m.finishSwitch(next, false); err != nil || m.active.Load() != next {
		t.Fatalf("finishSwitch: %v", err)
	}
	if ok, _ := offer(old, 4); ok {
		t.Fatal("the old session repeats a quote the new one published")
	}
	if ok, _ := offer(old, 6); !ok {
		t.Fatal("a quote the old session had queued is lost in the linger")
	}
	if ok, _ := offer(next, 5); !ok {
		t.Fatal("the new session does not publish after the switch")
	}
	if ok, _ := offer(next, 6); ok {
		t.Fatal("the new session repeats a quote the old one published in the linger")
	}
	later := now.Add(2 * time.Second)
	if ok, _ := offerAt(next, 7, later); !ok {
		t.Fatal("the new session does not publish after the linger")
	}
	if ok, _ := offerAt(old, 8, later); ok {
		t.Fatal("the old session still publishes after the linger")
	}
	if m.switching.Load() {
		t.Fatal("the handover's bookkeeping outlives it")
	}
	want := []uint64{1, 2, 3, 4, 6, 5, 7}
	if got := seqs(t, b, "A"); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
}
