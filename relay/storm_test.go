package relay

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// long reports whether the full-size reliability runs were asked for
// (WSRELAY_LONG=1); CI runs shorter versions of the same tests.
func long() bool { return os.Getenv("WSRELAY_LONG") != "" }

func rssKiB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// settleGoroutines waits for the goroutine count to come back to at most
// base+slack and returns it.
func settleGoroutines(t *testing.T, base, slack int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+slack {
			return n
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d, baseline %d\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReconnectStormOneSymbol(t *testing.T) {
	cycles := 200
	if long() {
		cycles = 1000
	}
	f := newFixture(t, simfeed.Config{Rate: 500}, func(u *UpstreamConfig) {
		u.Backoff = Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}
	}, Symbol{Name: "A"})
	eventually(t, "live", func() bool { return f.status(t, "A").State == StateLive })
	baseG, baseRSS, baseHeap := runtime.NumGoroutine(), rssKiB(), heapInuse()
	start := time.Now()
	for i := 1; i <= cycles; i++ {
		q := f.status(t, "A").Quotes
		f.feed.Drop("A")
		eventually(t, fmt.Sprintf("cycle %d", i), func() bool {
			st := f.status(t, "A")
			return st.Reconnects >= uint64(i) && st.State == StateLive && st.Quotes > q
		})
	}
	took := time.Since(start)
	g := settleGoroutines(t, baseG, 2)
	st := f.status(t, "A")
	if st.Reconnects != uint64(cycles) || f.feed.Accepted() != int64(cycles+1) {
		t.Fatalf("%d reconnects, %d dials for %d drops", st.Reconnects, f.feed.Accepted(), cycles)
	}
	t.Logf("%d drop/reconnect cycles in %s: goroutines %d -> %d, RSS %d -> %d KiB, heap in use %d -> %d KiB",
		cycles, took.Round(time.Millisecond), baseG, g, baseRSS, rssKiB(), baseHeap>>10, heapInuse()>>10)
}

func TestReconnectStormHundredSymbols(t *testing.T) {
	var syms []Symbol
	for i := range 100 {
		syms = append(syms, Symbol{Name: fmt.Sprintf("S%03d", i)})
	}
	f := newFixture(t, simfeed.Config{Rate: 20}, func(u *UpstreamConfig) {
		u.Backoff = Backoff{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond}
	}, syms...)
	allLive := func() bool {
		for _, st := range f.r.Statuses() {
			if st.State != StateLive {
				return false
			}
		}
		return true
	}
	eventually(t, "100 symbols live", allLive)
	baseG, baseRSS, baseHeap := runtime.NumGoroutine(), rssKiB(), heapInuse()
	rounds := 3
	if long() {
		rounds = 20
	}
	for r := 1; r <= rounds; r++ {
		if n := f.feed.Drop(""); n != 100 {
			t.Fatalf("dropped %d connections", n)
		}
		eventually(t, "every symbol back", func() bool {
			if !allLive() {
				return false
			}
			for _, st := range f.r.Statuses() {
				if st.Reconnects < uint64(r) {
					return false
				}
			}
			return true
		})
	}
	g := settleGoroutines(t, baseG, 5)
	t.Logf("100 symbols dropped at once, %d times: goroutines %d -> %d, RSS %d -> %d KiB, heap in use %d -> %d KiB",
		rounds, baseG, g, baseRSS, rssKiB(), baseHeap>>10, heapInuse()>>10)
}
