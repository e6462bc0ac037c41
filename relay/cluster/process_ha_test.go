package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func leaderOf(t *testing.T, ps ...*proc) (*proc, *proc) {
	t.Helper()
	var leader, standby *proc
	waitFor(t, "one leader, one standby", 20*time.Second, func() bool {
		leader, standby = nil, nil
		for _, p := range ps {
			code, _, body := get(p.base + "/readyz")
			switch {
			case code == 200 && strings.Contains(string(body), `"leader"`):
				leader = p
			case code == 200 && strings.Contains(string(body), `"standby"`):
				standby = p
			}
		}
		return leader != nil && standby != nil
	})
	return leader, standby
}

// TestIngestTakeover (e): the leader ingest is killed with SIGKILL while a
// second one runs: the second takes over, every symbol's seq goes on
// without a hole, nothing is stored twice and no two writers interleave
// (checked in the stream itself: each message's Wsrelay-Prev is the
// subject's previous message, Wsrelay-Seq grows by one, and the feed's
// counter restarts only once, with the new leader's connection), and
// clients see the symbols stale, then live.
func TestIngestTakeover(t *testing.T) {
	f := newFixture(t, 20, testSymbols...)
	i1 := f.start("ingest", 0)
	i1.waitReady(20 * time.Second)
	i2 := f.start("ingest", 0)
	e := f.start("edge", 0)
	e.waitReady(20 * time.Second)
	leader, _ := leaderOf(t, i1, i2)
	c := openSSE(t, streamURL(e.base), "")
	waitFor(t, "quotes", 10*time.Second, func() bool { qs, _ := quotesOf(t, c.snapshot()); return len(qs) >= 20 })
	killed := time.Now()
	leader.kill()
	mark := len(c.snapshot())
	waitFor(t, "stale, then live, for both symbols", 20*time.Second, func() bool {
		stale, live := map[string]bool{}, map[string]bool{}
		for _, ev := range c.snapshot()[mark:] {
			if ev.event != "status" {
				continue
			}
			var st struct{ Symbol, State string }
			json.Unmarshal([]byte(ev.data), &st)
			switch {
			case st.State == "stale":
				stale[st.Symbol] = true
			case st.State == "live" && stale[st.Symbol]:
				live[st.Symbol] = true
			}
		}
		return len(live) == len(testSymbols)
	})
	waitFor(t, "quotes after the take-over", 10*time.Second, func() bool {
		qs, _ := quotesOf(t, c.snapshot()[mark:])
		return len(qs) >= 20
	})
	t.Logf("take-over: quotes again %v after the SIGKILL", time.Since(killed).Round(time.Millisecond))
	f.feed.SetRate(0)
	qs, resets := quotesOf(t, c.snapshot())
	if resets != 0 {
		t.Fatalf("%d resets", resets)
	}
	// On the client: seq contiguous, IDs increasing (the feed's counter
	// restarts with the new connection, so only seq is checked here).
	last := map[string]quote{}
	for _, q := range qs {
		if p, ok := last[q.Symbol]; ok && q.Seq != p.Seq+1 {
			t.Fatalf("%s: seq %d after %d", q.Symbol, q.Seq, p.Seq)
		}
		last[q.Symbol] = q
	}

	nc, err := nats.Connect(f.natsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "WSRELAY_QUOTES")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	for _, sym := range testSymbols {
		tok := strings.NewReplacer(".", "=2E", ":", "=3A").Replace(sym)
		var prevSeq, prevStream, prevN uint64
		restarts := 0
		ids := map[string]bool{}
		for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("wsrelay.q."+tok))
			if err != nil {
				break
			}
			seq = m.Sequence
			h := m.Header
			ws, _ := strconv.ParseUint(h.Get("Wsrelay-Seq"), 10, 64)
			wp, _ := strconv.ParseUint(h.Get("Wsrelay-Prev"), 10, 64)
			if prevStream != 0 && (wp != prevStream || ws != prevSeq+1) {
				t.Fatalf("%s at %d: seq %d prev %d after seq %d at %d", sym, m.Sequence, ws, wp, prevSeq, prevStream)
			}
			if id := h.Get("Nats-Msg-Id"); ids[id] {
				t.Fatalf("%s: message id %s stored twice", sym, id)
			} else {
				ids[id] = true
			}
			var q struct{ Data []struct{ N uint64 } }
			json.Unmarshal(m.Data, &q)
			if n := q.Data[0].N; prevStream != 0 && n != prevN+1 {
				if n != 1 {
					t.Fatalf("%s: feed counter %d after %d: a quote lost or stored twice", sym, n, prevN)
				}
				restarts++
			}
			prevSeq, prevStream, prevN = ws, m.Sequence, q.Data[0].N
		}
		if prevSeq < 15 || restarts != 1 {
			t.Fatalf("%s: %d messages, the feed counter restarted %d times (want once)", sym, prevSeq, restarts)
		}
	}
}

// TestRecreatedStream (f): deleting and recreating the stream gives every
// client an explicit reset (the epoch changes), never a silent gap.
func TestRecreatedStream(t *testing.T) {
	f := newFixture(t, 20, testSymbols...)
	in := f.start("ingest", 0)
	in.waitReady(20 * time.Second)
	e := f.start("edge", 0)
	e.waitReady(20 * time.Second)
	c := openSSE(t, streamURL(e.base), "")
	waitFor(t, "quotes", 10*time.Second, func() bool { qs, _ := quotesOf(t, c.snapshot()); return len(qs) >= 20 })
	nc, err := nats.Connect(f.natsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, "WSRELAY_QUOTES"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reset on the stream", 20*time.Second, func() bool { _, r := quotesOf(t, c.snapshot()); return r > 0 })
	waitFor(t, "quotes after the reset", 10*time.Second, func() bool {
		evs := c.snapshot()
		for i, ev := range evs {
			if ev.event == "reset" {
				qs, _ := quotesOf(t, evs[i:])
				return len(qs) >= 20
			}
		}
		return false
	})
	evs := c.snapshot()
	// Per symbol, a jump of the feed's counter without a reset before it
	// is a silent gap.
	last := map[string]uint64{}
	var epochs []int64
	for _, ev := range evs {
		switch ev.event {
		case "reset":
			clear(last)
		case "quote":
			var q quote
			json.Unmarshal([]byte(ev.data), &q)
			if p, ok := last[q.Symbol]; ok && q.n() != p+1 {
				t.Fatalf("%s: n %d after %d without a reset", q.Symbol, q.n(), p)
			}
			last[q.Symbol] = q.n()
			ep, _ := idN(t, q.ID)
			if len(epochs) == 0 || epochs[len(epochs)-1] != ep {
				epochs = append(epochs, ep)
			}
		}
	}
	if len(epochs) != 2 || epochs[1] <= epochs[0] {
		t.Fatalf("epochs on the stream: %v", epochs)
	}
	// The new epoch's IDs resume without reset.
	c2 := openSSE(t, streamURL(e.base), lastID(evs))
	waitFor(t, "quotes", 10*time.Second, func() bool { qs, _ := quotesOf(t, c2.snapshot()); return len(qs) >= 5 })
	if _, r := quotesOf(t, c2.snapshot()); r != 0 {
		t.Fatal("an ID of the new epoch answered reset")
	}
}

// TestEmbeddedRestart (h): one `role: all` relay with embedded storage is
// restarted; its client resumes with its Last-Event-ID and loses nothing
// that the relay published (seq goes on across the restart, no reset).
func TestEmbeddedRestart(t *testing.T) {
	f := newFixture(t, 20, testSymbols...)
	cfg := filepath.Join(f.dir, "all.yaml")
	b, _ := os.ReadFile(f.config)
	b = append(b, []byte(fmt.Sprintf("nats: {url: embedded, data_dir: %q}\n", filepath.Join(f.dir, "js")))...)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"serve", "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-config", cfg, "-log-format", "json"}
	p := startProc(t, base, args...)
	p.waitReady(20 * time.Second)
	c := openSSE(t, streamURL(base), "")
	waitFor(t, "quotes", 10*time.Second, func() bool { qs, _ := quotesOf(t, c.snapshot()); return len(qs) >= 20 })
	c.close()
	first := c.snapshot()
	time.Sleep(500 * time.Millisecond) // published while the client is away
	p.stop()
	p = startProc(t, base, args...)
	c2 := openSSE(t, streamURL(base), lastID(first))
	waitFor(t, "quotes after the restart", 15*time.Second, func() bool { qs, _ := quotesOf(t, c2.snapshot()); return len(qs) >= 40 })
	qs1, r1 := quotesOf(t, first)
	qs2, r2 := quotesOf(t, c2.snapshot())
	if r1+r2 != 0 {
		t.Fatalf("%d resets", r1+r2)
	}
	all := append(qs1, qs2...)
	last := map[string]quote{}
	restarts := map[string]int{}
	for _, q := range all {
		if pq, ok := last[q.Symbol]; ok {
			if q.Seq != pq.Seq+1 {
				t.Fatalf("%s: seq %d after %d across the restart", q.Symbol, q.Seq, pq.Seq)
			}
			if q.n() != pq.n()+1 {
				if q.n() != 1 {
					t.Fatalf("%s: feed counter %d after %d", q.Symbol, q.n(), pq.n())
				}
				restarts[q.Symbol]++
			}
		}
		last[q.Symbol] = q
	}
	for _, s := range testSymbols {
		if restarts[s] != 1 {
			t.Fatalf("%s: the feed counter restarted %d times, want once (the relay's new connection)", s, restarts[s])
		}
	}
	if _, _, body := get(base + "/v1/quotes/" + url.PathEscape(testSymbols[0])); !strings.Contains(string(body), `"seq"`) {
		t.Fatalf("latest after restart: %s", body)
	}
}
