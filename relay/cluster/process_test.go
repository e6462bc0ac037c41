package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"
)

// Symbols with "." and ":" go through NATS escaped, never split.
var testSymbols = []string{"BTC.USD:PERP", "ETH-1"}

func streamURL(base string) string {
	return base + "/v1/stream?symbols=" + url.QueryEscape(testSymbols[0]+","+testSymbols[1])
}

func latest(t *testing.T, base, sym string) (quote, string) {
	t.Helper()
	code, h, body := get(base + "/v1/quotes/" + url.PathEscape(sym))
	if code != 200 {
		t.Fatalf("%s latest %s: %d %s", base, sym, code, body)
	}
	var q quote
	if err := json.Unmarshal(body, &q); err != nil {
		t.Fatal(err)
	}
	return q, h.Get("ETag")
}

type historyResp struct {
	Quotes []quote `json:"quotes"`
	Reset  bool    `json:"reset"`
}

func history(t *testing.T, base, sym, after string, limit int) historyResp {
	t.Helper()
	u := fmt.Sprintf("%s/v1/quotes/%s/history?limit=%d", base, url.PathEscape(sym), limit)
	if after != "" {
		u += "&after=" + after
	}
	code, _, body := get(u)
	if code != 200 {
		t.Fatalf("history %s: %d %s", u, code, body)
	}
	var h historyResp
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTwoEdges: an ingest and two edges fed by the simulated feed.
// (a) the same quote has the same ID and ETag on both edges (and the same
// history); (c) a REST ?after= cursor alternating between the edges loses
// nothing; (g) an edge paused with SIGSTOP for a second, then asked for
// the newest ID of the other edge, answers without reset; (b) an SSE client
// on edge A (two symbols), A killed with SIGKILL, resumes on edge B with
// its Last-Event-ID: nothing lost, nothing twice, checked against the
// feed's own counter; (d) restarting an edge, then the NATS server (file
// storage), causes no reset and loses nothing.
func TestTwoEdges(t *testing.T) {
	f := newFixture(t, 20, testSymbols...)
	ingest := f.start("ingest", 0)
	a := f.start("edge", 0)
	bPort := freePort(t)
	b := f.start("edge", bPort)
	for _, p := range []*proc{ingest, a, b} {
		p.waitReady(20 * time.Second)
	}
	waitFor(t, "quotes on both edges", 10*time.Second, func() bool {
		c1, _, _ := get(a.base + "/v1/quotes/" + url.PathEscape(testSymbols[0]))
		c2, _, _ := get(b.base + "/v1/quotes/" + url.PathEscape(testSymbols[1]))
		return c1 == 200 && c2 == 200 && len(history(t, a.base, testSymbols[0], "", 100).Quotes) >= 10
	})

	t.Run("a_same_id_and_etag", func(t *testing.T) {
		f.feed.SetRate(0)
		defer f.feed.SetRate(f.rate)
		for _, sym := range testSymbols {
			waitFor(t, "both edges at the same quote", 10*time.Second, func() bool {
				qa, _ := latest(t, a.base, sym)
				qb, _ := latest(t, b.base, sym)
				time.Sleep(100 * time.Millisecond) // the feed has stopped: settled?
				qa2, _ := latest(t, a.base, sym)
				return qa.ID == qb.ID && qa2.ID == qa.ID
			})
			qa, ea := latest(t, a.base, sym)
			qb, eb := latest(t, b.base, sym)
			if qa.ID != qb.ID || ea != eb || ea != `"`+qa.ID+`"` || qa.Seq != qb.Seq || qa.n() != qb.n() {
				t.Fatalf("%s: A %s %s seq %d, B %s %s seq %d", sym, qa.ID, ea, qa.Seq, qb.ID, eb, qb.Seq)
			}
			ha, hb := history(t, a.base, sym, "", 1000), history(t, b.base, sym, "", 1000)
			ja, _ := json.Marshal(ha)
			jb, _ := json.Marshal(hb)
			if string(ja) != string(jb) || len(ha.Quotes) < 5 {
				t.Fatalf("%s: histories differ (%d and %d quotes)", sym, len(ha.Quotes), len(hb.Quotes))
			}
			checkContiguous(t, ha.Quotes)
		}
	})

	t.Run("c_cursor_alternating", func(t *testing.T) {
		sym := testSymbols[0]
		cursor := history(t, a.base, sym, "", 1).Quotes[0].ID
		var got []quote
		edges := []*proc{a, b}
		for i := 0; i < 40; i++ {
			h := history(t, edges[i%2].base, sym, cursor, 1000)
			if h.Reset {
				t.Fatalf("poll %d on edge %d: reset after %s", i, i%2, cursor)
			}
			got = append(got, h.Quotes...)
			if len(h.Quotes) > 0 {
				cursor = h.Quotes[len(h.Quotes)-1].ID
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(got) < 20 {
			t.Fatalf("only %d quotes in 2 s", len(got))
		}
		checkContiguous(t, got)
	})

	t.Run("g_paused_edge_waits", func(t *testing.T) {
		b.signal(syscall.SIGSTOP)
		time.Sleep(time.Second)
		q, _ := latest(t, a.base, testSymbols[0])
		ch := make(chan historyResp, 1)
		go func() { ch <- history(t, b.base, testSymbols[0], q.ID, 10) }()
		sse := make(chan *sseClient, 1)
		go func() { sse <- openSSE(t, streamURL(b.base), q.ID) }()
		time.Sleep(200 * time.Millisecond) // both requests wait in B's accept queue
		b.signal(syscall.SIGCONT)
		if h := <-ch; h.Reset {
			t.Fatalf("B answered reset for A's newest id %s", q.ID)
		}
		c := <-sse
		waitFor(t, "events on B's stream", 5*time.Second, func() bool { return len(c.snapshot()) > 0 })
		if ev := c.snapshot()[0]; ev.event == "reset" {
			t.Fatalf("B's stream began with a reset for A's newest id %s", q.ID)
		}
		c.close()
	})

	t.Run("b_kill_edge_resume_elsewhere", func(t *testing.T) {
		c := openSSE(t, streamURL(a.base), "")
		waitFor(t, "40 quotes on A", 10*time.Second, func() bool { qs, _ := quotesOf(t, c.snapshot()); return len(qs) >= 40 })
		a.kill()
		waitFor(t, "the stream from A to end", 5*time.Second, c.ended)
		first := c.snapshot()
		c2 := openSSE(t, streamURL(b.base), lastID(first))
		waitFor(t, "40 more quotes on B", 10*time.Second, func() bool { qs, _ := quotesOf(t, c2.snapshot()); return len(qs) >= 40 })
		f.feed.SetRate(0)
		defer f.feed.SetRate(f.rate)
		sentAt := f.feed.Sent()
		final := map[string]uint64{}
		waitFor(t, "B to have every quote the feed sent", 10*time.Second, func() bool {
			var sum uint64
			for _, s := range testSymbols {
				q, _ := latest(t, b.base, s)
				final[s] = q.n()
				sum += q.n()
			}
			return int64(sum) == f.feed.Sent() && f.feed.Sent() == sentAt
		})
		waitFor(t, "the client to have them", 5*time.Second, func() bool {
			qs, _ := quotesOf(t, c2.snapshot())
			last := map[string]uint64{}
			for _, q := range qs {
				last[q.Symbol] = q.n()
			}
			return last[testSymbols[0]] == final[testSymbols[0]] && last[testSymbols[1]] == final[testSymbols[1]]
		})
		qs1, r1 := quotesOf(t, first)
		qs2, r2 := quotesOf(t, c2.snapshot())
		if r1+r2 != 0 {
			t.Fatalf("%d resets", r1+r2)
		}
		if f.feed.Accepted() != int64(len(testSymbols)) {
			t.Fatalf("the feed accepted %d connections; the counters are per connection", f.feed.Accepted())
		}
		checkContiguous(t, append(qs1, qs2...))
	})

	t.Run("d_restart_edge_and_nats", func(t *testing.T) {
		c := openSSE(t, streamURL(b.base), "")
		waitFor(t, "quotes on B", 10*time.Second, func() bool { qs, _ := quotesOf(t, c.snapshot()); return len(qs) >= 20 })
		b.stop()
		waitFor(t, "the stream from B to end", 5*time.Second, c.ended)
		first := c.snapshot()
		time.Sleep(500 * time.Millisecond) // quotes go on meanwhile
		b = f.start("edge", bPort)
		c2 := openSSE(t, streamURL(b.base), lastID(first))
		waitFor(t, "quotes on the restarted B", 10*time.Second, func() bool { qs, _ := quotesOf(t, c2.snapshot()); return len(qs) >= 20 })

		// The NATS server restarts (file storage): the ingest buffers, the
		// edges reconnect, the stream keeps its epoch.
		f.stopNATS()
		time.Sleep(time.Second)
		f.startNATS()
		before := len(c2.snapshot())
		waitFor(t, "quotes after the NATS restart", 20*time.Second, func() bool {
			qs, _ := quotesOf(t, c2.snapshot()[before:])
			return len(qs) >= 40
		})
		qs1, r1 := quotesOf(t, first)
		qs2, r2 := quotesOf(t, c2.snapshot())
		if r1+r2 != 0 {
			t.Fatalf("%d resets", r1+r2)
		}
		checkContiguous(t, append(qs1, qs2...))
		// A fresh client resumes from the first quote seen, across both restarts.
		c3 := openSSE(t, streamURL(b.base), qs1[0].ID)
		waitFor(t, "the replay", 10*time.Second, func() bool { qs, _ := quotesOf(t, c3.snapshot()); return len(qs) >= len(qs1)+len(qs2)-2 })
		qs3, r3 := quotesOf(t, c3.snapshot())
		if r3 != 0 {
			t.Fatal("resume across the restarts answered reset")
		}
		checkContiguous(t, qs3)
	})
}
