package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/faultnet"
	"github.com/wsrelay/wsrelay/relay/relaytest"
)

// watcher follows one SSE stream in the background and checks that quote
// seqs of every symbol continue by exactly one.
type watcher struct {
	mu     sync.Mutex
	quotes int
	states []string // "A:backoff" …
	at     []time.Time
	last   map[string]uint64
	err    error
	done   chan struct{}
}

func watch(t *testing.T, f *fixture, query string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := openSSE(t, ctx, f.URL+"/v1/stream?"+query)
	w := &watcher{last: map[string]uint64{}, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			ev, err := r.next()
			if err != nil {
				return
			}
			w.mu.Lock()
			switch ev.Event {
			case "quote":
				var q quoteBody
				json.Unmarshal([]byte(ev.Data), &q)
				if l, ok := w.last[q.Symbol]; ok && q.Seq != l+1 && w.err == nil {
					w.err = fmt.Errorf("%s seq %d after %d", q.Symbol, q.Seq, l)
				}
				w.last[q.Symbol] = q.Seq
				w.quotes++
			case "status":
				var st struct {
					Symbol, State string
					At            time.Time
				}
				json.Unmarshal([]byte(ev.Data), &st)
				w.states = append(w.states, st.Symbol+":"+st.State)
				w.at = append(w.at, st.At)
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); r.Close(); <-w.done })
	return w
}

func (w *watcher) snapshot() (int, []string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.quotes, append([]string(nil), w.states...), w.err
}

// recovers waits until, after mark, the stream shows the given state
// changes in order and then at least 10 more quotes, all in sequence.
func (w *watcher) recovers(t *testing.T, what string, states ...string) {
	t.Helper()
	q0, s0, _ := w.snapshot()
	relaytest.Eventually(t, what+": recovery", func() bool {
		q, st, err := w.snapshot()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return containsInOrder(st[len(s0):], states) && q >= q0+10
	}, func() string {
		q, st, _ := w.snapshot()
		return fmt.Sprintf("states since the fault %v, %d new quotes", st[len(s0):], q-q0)
	})
}

func containsInOrder(have, want []string) bool {
	i := 0
	for _, h := range have {
		if i < len(want) && h == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestUpstreamFaultsShowAsStatusThenQuotesResume injects every fault
// between the relay and the feed and checks what an SSE client sees: the
// right status events, then quotes again with seq continuing and nothing
// duplicated.
func TestUpstreamFaultsShowAsStatusThenQuotesResume(t *testing.T) {
	f := newFixture(t, opts{proxy: true, rate: 100, syms: []string{"A"}, upstream: func(u *relay.UpstreamConfig) {
		u.PingInterval = 100 * time.Millisecond
		u.PingTimeout = 200 * time.Millisecond
		u.DialTimeout = 300 * time.Millisecond
		u.Backoff = relay.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}})
	f.WaitQuotes(t, 5)
	w := watch(t, f, "symbols=A&snapshot=false")
	status := func() relay.SymbolStatus { st, _ := f.Relay.Status("A"); return st }

	t.Run("latency", func(t *testing.T) {
		r0 := status().Reconnects
		f.Proxy.SetLatency(30 * time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		f.Proxy.SetLatency(0)
		w.recovers(t, "latency")
		if st := status(); st.Reconnects != r0 || st.State != relay.StateLive {
			t.Fatalf("30 ms of latency caused a reconnect: %+v", st)
		}
	})
	t.Run("bandwidth", func(t *testing.T) {
		r0 := status().Reconnects
		f.Proxy.SetBandwidth(256 << 10)
		w.recovers(t, "bandwidth")
		f.Proxy.SetBandwidth(0)
		if st := status(); st.Reconnects != r0 {
			t.Fatalf("a 256 KiB/s link caused a reconnect: %+v", st)
		}
	})
	t.Run("half-open silence", func(t *testing.T) {
		r0 := status().Reconnects
		f.Proxy.Silence()
		w.recovers(t, "silence", "A:backoff", "A:connecting", "A:live")
		st := status()
		if st.Reconnects <= r0 || !strings.Contains(st.LastError, "no pong") {
			t.Fatalf("after silence: %+v", st)
		}
		f.Proxy.Resume()
	})
	t.Run("reset mid-frame", func(t *testing.T) {
		r0 := status().Reconnects
		f.Proxy.ResetMidFrame()
		w.recovers(t, "reset", "A:backoff", "A:connecting", "A:live")
		if st := status(); st.Reconnects <= r0 {
			t.Fatalf("after reset: %+v", st)
		}
	})
	t.Run("refused", func(t *testing.T) {
		if err := f.Proxy.SetMode(faultnet.Refuse); err != nil {
			t.Fatal(err)
		}
		f.Proxy.CutAll()
		time.Sleep(400 * time.Millisecond)
		if st := status(); st.State != relay.StateBackoff && st.State != relay.StateConnecting {
			t.Fatalf("state %s while refused", st.State)
		}
		if err := f.Proxy.SetMode(faultnet.Forward); err != nil {
			t.Fatal(err)
		}
		w.recovers(t, "refused", "A:live")
	})
	t.Run("handshake never completes", func(t *testing.T) {
		f.Proxy.SetMode(faultnet.Blackhole)
		f.Proxy.CutAll()
		time.Sleep(800 * time.Millisecond)
		if st := status(); st.Connected || !strings.Contains(st.LastError, "dial") {
			t.Fatalf("blackholed handshake: %+v", st)
		}
		f.Proxy.SetMode(faultnet.Forward)
		w.recovers(t, "blackhole", "A:live")
	})
	// No reconnect came before backoff.min (the upper bound is proven
	// exactly under synctest in the relay package).
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		t.Fatal(w.err)
	}
	checked := 0
	for i := 1; i < len(w.states); i++ {
		if w.states[i-1] == "A:backoff" && w.states[i] == "A:connecting" {
			checked++
			if d := w.at[i].Sub(w.at[i-1]); d < 20*time.Millisecond {
				t.Fatalf("redialled %s after a drop, below backoff.min", d)
			}
		}
	}
	if checked < 4 {
		t.Fatalf("only %d backoff periods seen", checked)
	}
}
