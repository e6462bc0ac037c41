package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsrelay/wsrelay/relay/faultnet"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// soakClient follows a few symbols and resumes after every disconnect;
// its per-symbol sequence must stay complete.
type soakClient struct {
	syms      []string
	lastID    string
	pendingID string // the id: line before the data: line
	last      map[string]int64

	received, gaps, dups, resets, reconnects atomic.Int64
	churn                                    chan bool // true: reset the connection, false: close it
}

var symKey = []byte(`"symbol":"`)

func (c *soakClient) run(ctx context.Context, addr string, lat *sharded, shard int) {
	for ctx.Err() == nil {
		path := "/v1/stream?symbols=" + strings.Join(c.syms, ",")
		if c.lastID != "" {
			path += "&last_event_id=" + c.lastID
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, body, _, err := dialSSE(dctx, addr, path)
		cancel()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
			}
			continue
		}
		lines := make(chan []byte, 64)
		readErr := make(chan error, 1)
		go func() {
			for {
				l, err := body.ReadSlice('\n')
				if err != nil {
					readErr <- err
					close(lines)
					return
				}
				lines <- append([]byte(nil), l...)
			}
		}()
		hard := false
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case hard = <-c.churn:
				break loop
			case l, ok := <-lines:
				if !ok {
					break loop
				}
				c.line(l, lat, shard)
			}
		}
		if tc, ok := conn.(*net.TCPConn); ok && hard {
			tc.SetLinger(0)
		}
		conn.Close()
		for range lines { // drain what was read before the close
		}
		c.reconnects.Add(1)
	}
}

func (c *soakClient) line(l []byte, lat *sharded, shard int) {
	switch {
	case bytes.HasPrefix(l, []byte("id: ")):
		c.lastIDPending(string(bytes.TrimSpace(l[4:])))
	case bytes.HasPrefix(l, []byte("event: reset")):
		c.resets.Add(1)
		clear(c.last)
	case bytes.HasPrefix(l, []byte("data: ")):
		seq := intAfter(l, seqKey)
		if seq <= 0 {
			return // status or reset data
		}
		i := bytes.Index(l, symKey)
		if i < 0 {
			return
		}
		rest := l[i+len(symKey):]
		sym := string(rest[:bytes.IndexByte(rest, '"')])
		if sent := intAfter(l, sentKey); sent > 0 {
			lat.add(shard, time.Now().UnixNano()-sent)
		}
		c.received.Add(1)
		if last, ok := c.last[sym]; ok {
			switch {
			case seq == last+1:
			case seq > last+1:
				c.gaps.Add(seq - last - 1)
			default:
				c.dups.Add(1)
				return
			}
		}
		c.last[sym] = seq
		c.lastID = c.pendingID
	}
}

func (c *soakClient) lastIDPending(id string) { c.pendingID = id }

// soak runs the long mixed workload and samples the relay every o.sample.
func soak(ctx context.Context, o options, feed *simfeed.Feed, proxy *faultnet.Proxy, addr string, pid int, symbols []string, stdout, stderr io.Writer) error {
	feed.SetRate(o.soakRate)
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var lat sharded
	clients := make([]*soakClient, o.soakClients)
	var wg sync.WaitGroup
	for i := range clients {
		k := 1 + rand.IntN(min(4, len(symbols)))
		perm := rand.Perm(len(symbols))[:k]
		c := &soakClient{last: map[string]int64{}, churn: make(chan bool, 1)}
		for _, p := range perm {
			c.syms = append(c.syms, symbols[p])
		}
		clients[i] = c
		wg.Add(1)
		go func() { defer wg.Done(); c.run(ctx, addr, &lat, i) }()
		if i%200 == 199 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Churn: a random 1% of the clients leave (half of them with a reset)
	// and resume, every second.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for range max(1, len(clients)/100) {
				select {
				case clients[rand.IntN(len(clients))].churn <- rand.IntN(2) == 0:
				default:
				}
			}
		}
	}()
	// REST pollers: lossless history cursors, one per symbol.
	var polled, pollGaps atomic.Int64
	for _, sym := range symbols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cursor, last := "", int64(0)
			for ctx.Err() == nil {
				u := "http://" + addr + "/v1/quotes/" + sym + "/history?limit=50"
				if cursor != "" {
					u += "&after=" + cursor
				}
				resp, err := http.Get(u)
				if err == nil {
					var h struct {
						Quotes []struct {
							ID  string `json:"id"`
							Seq int64  `json:"seq"`
						} `json:"quotes"`
						Reset bool `json:"reset"`
					}
					json.NewDecoder(resp.Body).Decode(&h)
					resp.Body.Close()
					if h.Reset {
						last = 0
					}
					for _, q := range h.Quotes {
						if last != 0 && q.Seq != last+1 {
							pollGaps.Add(1)
						}
						last, cursor = q.Seq, q.ID
						polled.Add(1)
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(200+rand.IntN(300)) * time.Millisecond):
				}
			}
		}()
	}
	// Upstream faults every few seconds, in turn.
	var faults atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		kinds := []func(){
			func() { proxy.CutAll() },
			func() { proxy.ResetMidFrame() },
			func() { proxy.Silence(); sleepCtx(ctx, 5*time.Second); proxy.Resume() },
			func() { proxy.SetLatency(50 * time.Millisecond); sleepCtx(ctx, 3*time.Second); proxy.SetLatency(0) },
		}
		for i := 0; ; i++ {
			if !sleepCtx(ctx, time.Duration(3000+rand.IntN(4000))*time.Millisecond) {
				return
			}
			kinds[i%len(kinds)]()
			faults.Add(1)
		}
	}()

	if !o.jsonOut {
		fmt.Fprintf(stdout, "%-6s %-7s %-8s %-6s %-5s %-8s %-8s %-9s %-8s %-5s %-5s %-6s %-7s %s\n",
			"t", "rssMiB", "heapMiB", "gorout", "fds", "gcMaxMs", "clients", "deliv/s", "p99ms", "gaps", "dups", "resets", "faults", "polled(gaps)")
	}
	start := time.Now()
	var lastDeliv int64
	tick := time.NewTicker(o.sample)
	defer tick.Stop()
	sample := func() {
		var deliv, gaps, dups, resets int64
		for _, c := range clients {
			deliv += c.received.Load()
			gaps += c.gaps.Load()
			dups += c.dups.Load()
			resets += c.resets.Load()
		}
		st := readProc(pid)
		g, _ := metricValue("http://"+addr+"/metrics", "go_goroutines")
		gc, _ := metricValue("http://"+addr+"/metrics", `go_gc_duration_seconds{quantile="1"}`)
		conns, _ := metricValue("http://"+addr+"/metrics", "wsrelay_sse_clients")
		heap, _ := metricValue("http://"+addr+"/metrics", "go_memstats_heap_inuse_bytes")
		_, q, _ := lat.summary(0.99)
		lat.reset()
		rate := float64(deliv-lastDeliv) / o.sample.Seconds()
		lastDeliv = deliv
		row := map[string]any{
			"t_s": int(time.Since(start).Seconds()), "rss_mib": float64(st.rssKiB) / 1024, "heap_inuse_mib": heap / (1 << 20), "goroutines": g, "fds": countFDs(pid),
			"gc_max_ms": gc * 1000, "clients": conns, "deliveries_per_sec": rate, "p99_ms": ms(q[0]),
			"gaps": gaps, "dups": dups, "resets": resets, "faults": faults.Load(), "polled": polled.Load(), "poll_gaps": pollGaps.Load(),
		}
		if o.jsonOut {
			b, _ := json.Marshal(row)
			fmt.Fprintln(stdout, string(b))
			return
		}
		fmt.Fprintf(stdout, "%-6d %-7.1f %-8.1f %-6.0f %-5d %-8.2f %-8.0f %-9.0f %-8.2f %-5d %-5d %-6d %-7d %d(%d)\n",
			row["t_s"], row["rss_mib"], heap/(1<<20), g, row["fds"], gc*1000, conns, rate, ms(q[0]), gaps, dups, resets, faults.Load(), polled.Load(), pollGaps.Load())
	}
	for {
		select {
		case <-ctx.Done():
			sample()
			wg.Wait()
			var gaps, dups int64
			for _, c := range clients {
				gaps += c.gaps.Load()
				dups += c.dups.Load()
			}
			if gaps+dups+pollGaps.Load() > 0 {
				fmt.Fprintf(stdout, "FAIL: %d gaps, %d duplicates, %d poll gaps\n", gaps, dups, pollGaps.Load())
				return &failedError{steps: 1}
			}
			fmt.Fprintf(stdout, "PASS: every client's sequence complete over %s (%d clients, %d faults)\n", o.duration, len(clients), faults.Load())
			return nil
		case <-tick.C:
			sample()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func countFDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}
