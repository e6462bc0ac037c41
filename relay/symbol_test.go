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
// held and published after the old one's, a handover session that ended
// before it synced leaves nothing behind (its successor is not refused),
// and older sessions are dropped once the new one is active.
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
	m := newSymbol(r, &upstream{cfg: UpstreamConfig{Name: "v"}}, Symbol{Name: "A"})
	q := func(n int) []byte { return fmt.Appendf(nil, `{"sym":"A","seq":%d}`, n) }
	offer := func(s *session, n int) (published, startSync bool) {
		t.Helper()
		published, startSync, err := m.offer(s, q(n), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return published, startSync
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
	if ok, _ := offer(old, 2); !ok {
		t.Fatal("the old session stops publishing before the switch")
	}
	if ok, _ := offer(old, 3); !ok {
		t.Fatal("the old session stops publishing before the switch")
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
		t.Fatal("the old session still publishes after the switch")
	}
	if ok, _ := offer(next, 5); !ok {
		t.Fatal("the new session does not publish after the switch")
	}
	want := []uint64{1, 2, 3, 3, 4, 5} // 2 held on the cut session is the old one's too
	if got := seqs(t, b, "A"); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
}
