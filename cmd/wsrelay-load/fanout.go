package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stepResult is one line of the report (and one JSON object with -json).
type stepResult struct {
	Clients          int     `json:"clients"`
	Rate             float64 `json:"rate"`
	Connected        int     `json:"connected"`
	Published        int64   `json:"published"`
	PublishedPerSec  float64 `json:"published_per_sec"`
	ScheduleKept     bool    `json:"schedule_kept"`
	Delivered        int64   `json:"delivered"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	P50ms            float64 `json:"p50_ms"`
	P90ms            float64 `json:"p90_ms"`
	P99ms            float64 `json:"p99_ms"`
	P999ms           float64 `json:"p999_ms"`
	Maxms            float64 `json:"max_ms"`
	P99Bound         float64 `json:"p99_bound_ms"`
	Lost             int64   `json:"lost"`
	Duplicated       int64   `json:"duplicated"`
	OutOfOrder       int64   `json:"out_of_order"`
	Disconnected     int     `json:"disconnected"`
	RelayCPUPercent  float64 `json:"relay_cpu_percent"`
	RSSBaseMiB       float64 `json:"rss_base_mib"`
	RSSIdleMiB       float64 `json:"rss_idle_mib"`
	RSSLoadMiB       float64 `json:"rss_load_mib"`
	KiBPerClientIdle float64 `json:"kib_per_client_idle"`
	KiBPerClientLoad float64 `json:"kib_per_client_load"`
	WritesPerDeliver float64 `json:"write_syscalls_per_delivery"`
	Pass             bool    `json:"pass"`
	Why              string  `json:"why,omitempty"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// fanout runs the ladder: for each step, connect N clients, hold rate R for
// the duration, drain, and account for every quote.
// source publishes the quotes of a step: the feed of a relay, or the floor
// server.
type source interface {
	SetRate(r float64)
	Sent() int64
}

// fanout runs the ladder against the server at addr (pid), fed by src;
// idle waits until the server has let go of a step's streams.
func fanout(ctx context.Context, o options, feed source, idle func(), addr string, pid int, stdout, stderr io.Writer) error {
	// Fill the relay's history ring first, so that the memory it takes
	// (the same with any number of clients) is part of the base figure
	// and not counted per client under load.
	const warmRate = 2000.0
	feed.SetRate(warmRate)
	time.Sleep(time.Duration(float64(o.history+100) / warmRate * float64(time.Second)))
	feed.SetRate(0)
	time.Sleep(300 * time.Millisecond)
	base := readProc(pid)
	failed := 0
	if !o.jsonOut {
		fmt.Fprintf(stdout, "%-7s %-6s %-9s %-5s %-11s %-8s %-8s %-8s %-8s %-8s %-13s %-5s %-6s %-7s %-14s %-7s %-6s %s\n",
			"clients", "rate", "publ/s", "sched", "deliv/s", "p50", "p90", "p99", "p99.9", "max", "lost/dup/ooo", "disc", "cpu%", "rssMiB", "KiB/cl idle/ld", "w/deliv", "result", "")
	}
	for _, st := range o.steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res := runStep(ctx, o, st, feed, idle, addr, pid, base, stderr)
		if !res.Pass {
			failed++
		}
		if o.jsonOut {
			b, _ := json.Marshal(res)
			fmt.Fprintln(stdout, string(b))
			continue
		}
		verdict := "PASS"
		if !res.Pass {
			verdict = "FAIL " + res.Why
		}
		sched := "yes"
		if !res.ScheduleKept {
			sched = "NO"
		}
		fmt.Fprintf(stdout, "%-7d %-6g %-9.0f %-5s %-11.0f %-8.2f %-8.2f %-8.2f %-8.2f %-8.2f %-13s %-5d %-6.0f %-7.0f %-14s %-7.3f %s\n",
			res.Clients, res.Rate, res.PublishedPerSec, sched, res.DeliveriesPerSec, res.P50ms, res.P90ms, res.P99ms, res.P999ms, res.Maxms,
			fmt.Sprintf("%d/%d/%d", res.Lost, res.Duplicated, res.OutOfOrder), res.Disconnected, res.RelayCPUPercent, res.RSSLoadMiB,
			fmt.Sprintf("%.1f/%.1f", res.KiBPerClientIdle, res.KiBPerClientLoad), res.WritesPerDeliver, verdict)
	}
	if failed > 0 {
		return &failedError{steps: failed}
	}
	return nil
}

func runStep(ctx context.Context, o options, st step, feed source, waitIdle func(), addr string, pid int, base procStat, stderr io.Writer) stepResult {
	res := stepResult{Clients: st.clients, Rate: st.rate, P99Bound: ms(st.p99)}
	var lat sharded
	clients := make([]*sseClient, st.clients)
	bodies := make([]*bufio.Reader, st.clients)
	var allRaw atomic.Bool
	allRaw.Store(true)
	var readers, dials sync.WaitGroup
	sem := make(chan struct{}, 128)
	var mu sync.Mutex
	var dialErr error
	path := "/v1/stream?symbols=" + o.symbol + "&snapshot=false"
	for i := range clients {
		sem <- struct{}{}
		dials.Add(1)
		go func() {
			defer dials.Done()
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			conn, body, raw, err := dialSSE(cctx, addr, path)
			cancel()
			<-sem
			if err != nil {
				mu.Lock()
				dialErr = err
				mu.Unlock()
				return
			}
			if !raw {
				allRaw.Store(false)
			}
			// Each goroutine writes its own slots; read after dials.Wait.
			clients[i], bodies[i] = &sseClient{id: i, conn: conn}, body
		}()
	}
	dials.Wait()
	connected := make([]*sseClient, 0, len(clients))
	buffered := make([][]byte, 0, len(clients))
	for i, c := range clients {
		if c != nil {
			connected = append(connected, c)
			b, _ := bodies[i].Peek(bodies[i].Buffered())
			buffered = append(buffered, b)
		}
	}
	var ep *epollReaders
	if allRaw.Load() && !o.goReaders {
		ep = startEpoll(connected, buffered, &lat)
	}
	if ep == nil {
		for i, c := range clients {
			if c != nil {
				readers.Add(1)
				go func() {
					defer readers.Done()
					c.read(bodies[i], &lat)
				}()
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range clients {
		if c != nil {
			res.Connected++
			c.resetStep()
		}
	}
	if dialErr != nil {
		fmt.Fprintf(stderr, "step %d×%g: %d clients failed to connect, e.g. %v\n", st.clients, st.rate, st.clients-res.Connected, dialErr)
	}
	time.Sleep(time.Second)
	idle := readProc(pid)

	s0 := feed.Sent()
	p0 := readProc(pid)
	start := time.Now()
	feed.SetRate(st.rate)
	var maxRSS uint64
	tick := time.NewTicker(250 * time.Millisecond)
	for time.Since(start) < o.duration && ctx.Err() == nil {
		<-tick.C
		if r := readProc(pid).rssKiB; r > maxRSS {
			maxRSS = r
		}
	}
	tick.Stop()
	feed.SetRate(0)
	elapsed := time.Since(start)
	time.Sleep(100 * time.Millisecond) // a frame already being written still counts
	s1 := feed.Sent()
	time.Sleep(o.settle)
	p1 := readProc(pid)

	res.Published = s1 - s0
	res.PublishedPerSec = float64(res.Published) / elapsed.Seconds()
	want := st.rate * elapsed.Seconds()
	res.ScheduleKept = math.Abs(float64(res.Published)-want) <= want*0.01+2
	for _, c := range clients {
		if c == nil {
			continue
		}
		got := c.received.Load()
		res.Delivered += got
		res.Duplicated += c.dups.Load()
		res.OutOfOrder += c.ooo.Load()
		unique := got - c.dups.Load() - c.ooo.Load()
		if missing := res.Published - unique; missing > 0 {
			res.Lost += missing
		}
		if c.ended.Load() {
			res.Disconnected++
		}
	}
	res.DeliveriesPerSec = float64(res.Delivered) / elapsed.Seconds()
	_, q, mx := lat.summary(0.5, 0.9, 0.99, 0.999)
	res.P50ms, res.P90ms, res.P99ms, res.P999ms, res.Maxms = ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]), ms(mx)
	if p0.ok && p1.ok {
		res.RelayCPUPercent = float64(p1.cpuTicks-p0.cpuTicks) / clkTck / elapsed.Seconds() * 100
		if res.Delivered > 0 {
			res.WritesPerDeliver = float64(p1.syscw-p0.syscw) / float64(res.Delivered)
		}
		res.RSSBaseMiB = float64(base.rssKiB) / 1024
		res.RSSIdleMiB = float64(idle.rssKiB) / 1024
		res.RSSLoadMiB = float64(maxRSS) / 1024
		if res.Connected > 0 {
			res.KiBPerClientIdle = (float64(idle.rssKiB) - float64(base.rssKiB)) / float64(res.Connected)
			res.KiBPerClientLoad = (float64(maxRSS) - float64(base.rssKiB)) / float64(res.Connected)
		}
	}
	switch {
	case res.Connected != st.clients:
		res.Why = fmt.Sprintf("%d of %d connected", res.Connected, st.clients)
	case res.Disconnected > 0:
		res.Why = fmt.Sprintf("%d disconnected", res.Disconnected)
	case res.Lost > 0 || res.Duplicated > 0 || res.OutOfOrder > 0:
		res.Why = "lost, duplicated or out of order"
	case !res.ScheduleKept:
		res.Why = "schedule not kept"
	case res.P99ms >= res.P99Bound:
		res.Why = fmt.Sprintf("p99 %.2fms ≥ %.0fms", res.P99ms, res.P99Bound)
	default:
		res.Pass = true
	}
	if ep != nil {
		ep.close() // before the sockets close: no read of a reused descriptor
	}
	for _, c := range clients {
		if c != nil {
			c.conn.Close()
		}
	}
	readers.Wait()
	waitIdle() // the next step starts from zero streams
	return res
}

// waitNoStreams polls the relay's wsrelay_sse_clients until it reads 0.
func waitNoStreams(addr string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if n, ok := metricValue("http://"+addr+"/metrics", "wsrelay_sse_clients"); ok && n == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue reads one unlabelled sample from a Prometheus endpoint.
func metricValue(url, name string) (float64, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
