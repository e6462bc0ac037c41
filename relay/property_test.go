package relay

import (
	"errors"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

const (
	propHistory = 6
	propQueue   = 5
	markReset   = ^uint64(0) // a reset event in an expected sequence
	markStatus  = ^uint64(1) // a "removed" status event
)

// modelSub is what the model expects of one subscription.
type modelSub struct {
	sub      *Subscription
	syms     []string
	expect   []uint64 // events pushed and not yet drained (quote N or a mark)
	limit    int      // cut-off threshold for expect, as the broker's
	lastID   string   // last quote ID delivered
	cut      bool     // cut off as a slow consumer
	ended    bool     // closed by the test, or every symbol removed
	drainErr error    // the error Next must report once drained
}

type model struct {
	b       *Broker
	n       uint64
	topics  map[string][]uint64 // symbol -> N of every quote since it was (re)created
	created map[string]uint64   // symbol -> broker n when (re)created
	subs    []*modelSub
}

func (m *model) push(s *modelSub, v uint64) {
	if s.cut || s.ended {
		return
	}
	if len(s.expect) >= s.limit {
		s.cut, s.expect, s.drainErr = true, nil, ErrSlowConsumer
		return
	}
	s.expect = append(s.expect, v)
}

func (m *model) latest(syms []string) []uint64 {
	var out []uint64
	for _, sym := range syms {
		if q := m.topics[sym]; len(q) > 0 {
			out = append(out, q[len(q)-1])
		}
	}
	slices.Sort(out)
	return out
}

// subscribe predicts the start of a subscription after the ID after
// ("" = fresh, with or without a snapshot).
func (m *model) subscribe(t *rapid.T, syms []string, after string, snapshot bool) {
	s := &modelSub{syms: syms, lastID: after}
	var initial []uint64
	if after == "" {
		if snapshot {
			initial = m.latest(syms)
		}
	} else {
		id, _ := ParseEventID(after)
		honour := true
		for _, sym := range syms {
			cnt := 0
			for _, n := range m.topics[sym] {
				if n > id.N {
					cnt++
				}
			}
			if m.created[sym] > id.N || cnt > propHistory {
				honour = false
			}
		}
		if honour {
			for _, sym := range syms {
				for _, n := range m.topics[sym] {
					if n > id.N {
						initial = append(initial, n)
					}
				}
			}
			slices.Sort(initial)
		} else {
			initial = append([]uint64{markReset}, m.latest(syms)...)
		}
	}
	sub, err := m.b.Subscribe(syms, SubscribeOptions{After: after, Snapshot: snapshot, Queue: propQueue})
	if err != nil {
		t.Fatalf("subscribe %v: %v", syms, err)
	}
	s.sub, s.expect, s.limit = sub, initial, propQueue+len(initial)
	m.subs = append(m.subs, s)
}

// drain reads everything pending and compares it with the model.
func (m *model) drain(t *rapid.T, s *modelSub) {
	var got []uint64
	var err error
	var batch []*Event
	for {
		batch, _, err = s.sub.TryNext(batch)
		if err != nil || len(batch) == 0 {
			break
		}
		for _, ev := range batch {
			switch ev.Kind {
			case KindQuote:
				got = append(got, ev.ID.N)
				s.lastID = ev.ID.String()
			case KindReset:
				got = append(got, markReset)
			case KindStatus:
				got = append(got, markStatus)
			}
		}
	}
	if !slices.Equal(got, s.expect) {
		t.Fatalf("subscription %v delivered %v, want %v", s.syms, got, s.expect)
	}
	s.expect = s.expect[:0]
	s.limit = propQueue
	if s.drainErr != nil && !errors.Is(err, s.drainErr) {
		t.Fatalf("subscription %v ended with %v, want %v", s.syms, err, s.drainErr)
	}
	if s.drainErr == nil && err != nil {
		t.Fatalf("subscription %v ended early: %v", s.syms, err)
	}
}

// TestAnyInterleavingDeliversExactlyOrResets: for any interleaving of
// publish, subscribe, drain, cut, resume, add and remove symbol, every
// subscriber gets exactly the published quotes after its resume point, in
// order, or an explicit reset.
func TestAnyInterleavingDeliversExactlyOrResets(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		b, _ := NewBroker(BrokerConfig{History: propHistory, Epoch: 1000})
		defer b.Close()
		all := []string{"A", "B", "C", "D"}
		m := &model{b: b, topics: map[string][]uint64{}, created: map[string]uint64{}}
		for _, s := range all[:3] {
			b.AddSymbol(s)
			m.topics[s], m.created[s] = nil, 0
		}
		live := func() []string {
			var out []string
			for _, s := range all {
				if _, ok := m.topics[s]; ok {
					out = append(out, s)
				}
			}
			return out
		}
		pickSub := func(pred func(*modelSub) bool) *modelSub {
			var c []*modelSub
			for _, s := range m.subs {
				if pred(s) {
					c = append(c, s)
				}
			}
			if len(c) == 0 {
				return nil
			}
			return c[rapid.IntRange(0, len(c)-1).Draw(t, "sub")]
		}
		steps := rapid.IntRange(1, 120).Draw(t, "steps")
		for range steps {
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op <= 3: // publish
				syms := live()
				if len(syms) == 0 {
					continue
				}
				sym := rapid.SampledFrom(syms).Draw(t, "publish")
				ev, err := b.Publish(sym, []byte("1"), time.Now())
				if err != nil {
					t.Fatal(err)
				}
				m.n++
				if ev.ID.N != m.n {
					t.Fatalf("id %d, want %d", ev.ID.N, m.n)
				}
				m.topics[sym] = append(m.topics[sym], m.n)
				for _, s := range m.subs {
					if slices.Contains(s.syms, sym) {
						m.push(s, m.n)
					}
				}
			case op == 4: // subscribe
				syms := live()
				if len(syms) == 0 {
					continue
				}
				k := rapid.IntRange(1, len(syms)).Draw(t, "nsyms")
				rapid.Permutation(syms).Draw(t, "perm")
				m.subscribe(t, syms[:k], "", rapid.Bool().Draw(t, "snapshot"))
			case op <= 6: // drain
				if s := pickSub(func(s *modelSub) bool { return !s.ended || len(s.expect) > 0 }); s != nil {
					m.drain(t, s)
				}
			case op == 7: // cut and resume from the last delivered ID
				s := pickSub(func(s *modelSub) bool { return !s.ended })
				if s == nil {
					continue
				}
				if !s.cut {
					m.drain(t, s)
				}
				s.sub.Close()
				s.ended = true
				var syms []string
				for _, sym := range s.syms {
					if _, ok := m.topics[sym]; ok {
						syms = append(syms, sym)
					}
				}
				if len(syms) > 0 {
					m.subscribe(t, syms, s.lastID, true)
				}
			case op == 8: // remove a symbol
				syms := live()
				if len(syms) == 0 {
					continue
				}
				sym := rapid.SampledFrom(syms).Draw(t, "remove")
				if err := b.RemoveSymbol(sym); err != nil {
					t.Fatal(err)
				}
				delete(m.topics, sym)
				for _, s := range m.subs {
					if i := slices.Index(s.syms, sym); i >= 0 && !s.ended {
						m.push(s, markStatus)
						s.syms = slices.Delete(slices.Clone(s.syms), i, i+1)
						if len(s.syms) == 0 && !s.cut {
							s.ended, s.drainErr = true, ErrSymbolRemoved
						}
					}
				}
			default: // add a symbol
				for _, sym := range all {
					if _, ok := m.topics[sym]; !ok {
						if _, err := b.AddSymbol(sym); err != nil {
							t.Fatal(err)
						}
						m.topics[sym], m.created[sym] = nil, m.n
						break
					}
				}
			}
		}
		for _, s := range m.subs {
			if !s.ended || len(s.expect) > 0 {
				m.drain(t, s)
			}
			s.sub.Close()
		}
	})
}
