package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"

	"github.com/wsrelay/wsrelay/relay"
)

// A whole exchange on the board: by default 500 symbols at 2 quotes a
// second each from the simulated feed, on two upstreams (one with
// fields). WSRELAY_BOARD_SYMBOLS and WSRELAY_BOARD_RATE change the load;
// WSRELAY_BOARD_PAGE=DIR serves another version of web/static from DIR
// (e.g. an older one, extracted with git archive) and only measures it.
func envNumber(t *testing.T, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%q is not a positive number", name, v)
	}
	return f
}

func symbolRange(from, to int) []relay.Symbol {
	out := make([]relay.Symbol, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, relay.Symbol{Name: fmt.Sprintf("SYM%03d", i)})
	}
	return out
}

// mainThread is what Chromium's Performance domain counts for the page.
type mainThread map[string]float64

func (b *browser) mainThread() mainThread {
	b.t.Helper()
	tctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	m, err := chromedp.Run(tctx, func(ctx context.Context, t *chromedp.Target) (mainThread, error) {
		if _, err := cdp.Call(ctx, t, performance.Enable, performance.EnableParams{}); err != nil {
			return nil, err
		}
		r, err := cdp.Call(ctx, t, performance.GetMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		out := mainThread{}
		for _, m := range r.Metrics {
			out[m.Name] = m.Value
		}
		return out, nil
	})
	if err != nil {
		b.t.Fatalf("Performance.getMetrics: %v", err)
	}
	return m
}

// pageCounters is read from the page before and after the measurement.
const pageCounters = `JSON.stringify({quotes: __wsrelay.quotes, events: __wsrelay.events, gaps: __wsrelay.gaps, dups: __wsrelay.dups,
	resets: __wsrelay.resets, conn: __wsrelay.conn, long: window.__long || null,
	board: __wsrelay.board ? __wsrelay.board.stats : null, dom: document.getElementsByTagName("*").length})`

// startObservers counts long tasks (> 50 ms) in the page. (No frame
// counter of its own: a requestAnimationFrame loop would make Chromium
// run a frame 60 times a second and be measured with the page.)
const startObservers = `(() => {
	window.__long = {n: 0, ms: 0, max: 0};
	new PerformanceObserver((l) => { for (const e of l.getEntries()) { __long.n++; __long.ms += e.duration; __long.max = Math.max(__long.max, e.duration); } }).observe({type: "longtask"});
	return true;
})()`

// measure records the page's main-thread time over d and logs it.
func measure(t *testing.T, b *browser, label string, d time.Duration) (before, after string) {
	t.Helper()
	b.eval(startObservers)
	before = b.eval(pageCounters)
	m0 := b.mainThread()
	time.Sleep(d)
	m1 := b.mainThread()
	after = b.eval(pageCounters)
	delta := func(k string) float64 { return m1[k] - m0[k] }
	secs := d.Seconds()
	// TaskDuration is the wall time of the main thread's tasks; ThreadTime
	// its CPU time (less inflated when other processes take the cores);
	// ProcessTime the whole renderer's CPU (compositor and IO threads too).
	t.Logf("%s: main thread over %s: busy %.0f ms (%.1f%%; CPU %.0f ms): script %.0f ms, layout %.0f ms (%d layouts), style %.0f ms (%d recalcs); renderer CPU %.0f ms; JS heap %.1f MB; DOM nodes %.0f",
		label, d, delta("TaskDuration")*1000, delta("TaskDuration")/secs*100, delta("ThreadTime")*1000, delta("ScriptDuration")*1000,
		delta("LayoutDuration")*1000, int(delta("LayoutCount")), delta("RecalcStyleDuration")*1000, int(delta("RecalcStyleCount")),
		delta("ProcessTime")*1000, m1["JSHeapUsedSize"]/1e6, m1["Nodes"])
	if os.Getenv("WSRELAY_BOARD_ALLMETRICS") != "" {
		for k, v := range m1 {
			t.Logf("  %s: %g (Δ %g)", k, v, v-m0[k])
		}
	}
	t.Logf("%s: page before %s", label, before)
	t.Logf("%s: page after  %s", label, after)
	return before, after
}

// TestBoardWholeExchange opens the board on a relay with a whole
// exchange's worth of symbols: every row is reachable, prices move, the
// page holds one stream the server accepts, filter, sort and grouping
// work, and symbols come and go at runtime. It logs the main thread's
// busy time over 10 s (a figure for the README, never asserted).
func TestBoardWholeExchange(t *testing.T) {
	if testing.Short() {
		t.Skip("a 500-symbol relay and a browser for half a minute")
	}
	n := int(envNumber(t, "WSRELAY_BOARD_SYMBOLS", 500))
	rate := envNumber(t, "WSRELAY_BOARD_RATE", 2)
	other := os.Getenv("WSRELAY_BOARD_PAGE")
	var page http.Handler
	if other != "" {
		page = http.FileServer(http.Dir(other))
	}
	half := n / 2
	s := startStack(t, stackConfig{rate: rate, adminToken: "test-token", page: page, upstreams: []relay.UpstreamConfig{
		// The simulated feed has no bid and ask: low and high stand in,
		// so that the page's fields path is exercised.
		{Name: "sim-a", Symbols: symbolRange(0, half), Fields: relay.Fields{Last: "/data/0/last_price", Bid: "/data/0/low", Ask: "/data/0/high"}},
		{Name: "sim-b", Symbols: symbolRange(half, n)},
	}})
	deadline := time.Now().Add(60 * time.Second)
	for live := 0; live < n; {
		live = 0
		for _, st := range s.relay.Statuses() {
			if st.EverLive {
				live++
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d symbols live after 60 s", live, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b := newBrowser(t, 1280, 900)
	b.run("load", chromedp.Navigate(s.srv.URL+"/"))
	if other != "" {
		b.waitJS("quotes", `window.__wsrelay && __wsrelay.quotes > 0`, 30*time.Second)
		time.Sleep(2 * time.Second)
		measure(t, b, other, 10*time.Second)
		return
	}

	// Every symbol gets a price, over one stream without symbols=.
	b.waitJS("a price for every symbol", fmt.Sprintf(`[...__wsrelay.rows.values()].filter((m) => m.value != null).length === %d`, n), 30*time.Second)
	if u := b.eval(`__wsrelay.url`); u != "/v1/stream" {
		t.Fatalf("stream URL %q", u)
	}
	if c := b.eval(`__wsrelay.conn`); c != "connected" {
		t.Fatalf("stream is %s", c)
	}
	if rows, _ := strconv.Atoi(b.eval(visibleRows)); rows == 0 || rows > 80 {
		t.Fatalf("%d rows in the DOM for %d symbols: the list is not virtualised", rows, n)
	}

	// Every row can be scrolled to, and shows a price when it is there.
	seen := b.eval(`(async () => {
		const vp = document.getElementById("viewport"), seen = new Set(), noPrice = [];
		const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
		vp.scrollTop = 0; await frame();
		for (let i = 0; i < 2000; i++) {
			const v = vp.getBoundingClientRect();
			for (const r of document.querySelectorAll("#rows .row:not([hidden])")) {
				const b = r.getBoundingClientRect();
				if (!r.dataset.symbol || b.bottom <= v.top || b.top >= v.bottom) continue;
				seen.add(r.dataset.symbol);
				if (r.querySelector(".price").textContent === "—") noPrice.push(r.dataset.symbol);
			}
			if (vp.scrollTop + vp.clientHeight >= vp.scrollHeight - 1) break;
			vp.scrollTop += Math.max(10, vp.clientHeight - 20); await frame();
		}
		vp.scrollTop = 0; await frame();
		return seen.size + " " + noPrice.length;
	})()`)
	if seen != fmt.Sprintf("%d 0", n) {
		t.Fatalf("scrolling through the board: %q rows seen and rows without a price, want %d 0", seen, n)
	}

	// fields: sim-a shows bid and ask from its pointers, sim-b (no fields)
	// the heuristic's last price and no bid or ask.
	first := b.eval(`(() => { const r = document.querySelector('.row[data-symbol="SYM000"]'), m = __wsrelay.rows.get("SYM000"), d = m.q.data.data[0];
		return [!!m.bid && m.bid.text === d.low, !!m.ask && m.ask.text === d.high, r.querySelector(".bid").textContent !== ""].join(); })()`)
	if first != "true,true,true" {
		t.Fatalf("sim-a bid/ask from fields: %s", first)
	}
	if v := b.eval(fmt.Sprintf(`(() => { const m = __wsrelay.rows.get("SYM%03d"); return [m.bid === null, m.ask === null, m.last.text === m.q.data.data[0].last_price].join() })()`, n-1)); v != "true,true,true" {
		t.Fatalf("sim-b without fields: %s", v)
	}

	b.screenshot("board-500.png")

	// Filter by name.
	streams := s.log.streamCount()
	b.run("filter", chromedp.SendKeys("#filter", "sym04"))
	b.waitJS("ten rows", visibleRows+` === 10 && [...document.querySelectorAll("#rows .row:not([hidden])")].every((r) => r.dataset.symbol.startsWith("SYM04"))`, 10*time.Second)
	if c := b.eval(`document.getElementById("count").textContent`); c != fmt.Sprintf("10 of %d symbols", n) {
		t.Fatalf("count %q", c)
	}
	b.run("clear filter", chromedp.Evaluate[chromedp.Void](`(() => { const f = document.getElementById("filter"); f.value = ""; f.dispatchEvent(new Event("input")); })()`))
	b.waitJS("every symbol again", fmt.Sprintf(`__wsrelay.shown === %d`, n), 10*time.Second)

	// Sorting, on frozen prices (the feed paused) so that the order is
	// checkable. visibleOrder lists the shown rows top to bottom with the
	// key of their model.
	const visibleOrder = `(key) => [...document.querySelectorAll("#rows .row:not([hidden])")]
		.map((r) => ({r, top: r.getBoundingClientRect().top}))
		.filter((x) => x.top >= document.getElementById("viewport").getBoundingClientRect().top)
		.sort((a, b) => a.top - b.top).map((x) => key(__wsrelay.rows.get(x.r.dataset.symbol)))`
	s.feed.SetPaused(true)
	quiet := ""
	for i := 0; i < 50; i++ {
		time.Sleep(200 * time.Millisecond)
		q := b.eval(`String(__wsrelay.quotes)`)
		if q == quiet {
			break
		}
		quiet = q
	}
	b.run("sort by name, descending", chromedp.Click(`#dir`))
	b.waitJS("descending names", fmt.Sprintf(`(%s)((m) => m.symbol)[0] === "SYM%03d"`, visibleOrder, n-1), 5*time.Second)
	b.run("sort by change", chromedp.Click(`.board-head [data-sort="change"]`))
	b.waitJS("by change, largest first", `(() => { const v = (`+visibleOrder+`)((m) => (m.value - m.base) / m.base);
		return v.length > 5 && v.every((x, i) => i === 0 || v[i - 1] >= x) &&
			__wsrelay.view.every((m, i, a) => i === 0 || (a[i-1].value - a[i-1].base) / a[i-1].base >= (m.value - m.base) / m.base); })()`, 5*time.Second)
	b.run("sort by last update", chromedp.Click(`.board-head [data-sort="updated"]`))
	b.waitJS("newest first", `(() => { const v = (`+visibleOrder+`)((m) => m.at);
		return v.length > 5 && v.every((x, i) => i === 0 || v[i - 1] >= x) && __wsrelay.view.every((m, i, a) => i === 0 || a[i-1].at >= m.at); })()`, 5*time.Second)
	if q := b.eval(`location.search`); !strings.Contains(q, "sort=updated") || !strings.Contains(q, "dir=desc") {
		t.Fatalf("the sort is not in the URL: %q", q)
	}
	s.feed.SetPaused(false)
	b.run("sort by name", chromedp.Click(`.board-head [data-sort="name"]`))
	b.waitJS("names ascending", `(`+visibleOrder+`)((m) => m.symbol)[0] === "SYM000"`, 5*time.Second)

	// Grouping by upstream, and collapsing a group.
	b.run("group", chromedp.Click(`#group`))
	b.waitJS("two groups", fmt.Sprintf(`(() => { const heads = __wsrelay.view.filter((it) => it.group !== undefined);
		return heads.length === 2 && heads[0].group === "sim-a" && heads[0].count === %d && heads[1].group === "sim-b" && heads[1].count === %d
			&& document.querySelector('#rows .row.grp[data-group="sim-a"]') !== null; })()`, half, n-half), 5*time.Second)
	b.run("collapse sim-a", chromedp.Click(`#rows .row.grp[data-group="sim-a"]`))
	b.waitJS("sim-a collapsed", fmt.Sprintf(`__wsrelay.view.length === %d && __wsrelay.view[1].group === "sim-b"
		&& document.querySelector('#rows .row.grp[data-group="sim-b"]') !== null`, 2+n-half), 5*time.Second)
	b.run("expand sim-a", chromedp.Click(`#rows .row.grp[data-group="sim-a"]`))
	b.waitJS("sim-a expanded", fmt.Sprintf(`__wsrelay.view.length === %d`, 2+n), 5*time.Second)
	b.screenshot("board-grouped.png")
	b.run("ungroup", chromedp.Click(`#group`))
	b.waitJS("ungrouped", fmt.Sprintf(`__wsrelay.view.length === %d`, n), 5*time.Second)
	if got := s.log.streamCount(); got != streams {
		t.Fatalf("filter, sort and grouping opened %d streams", got-streams)
	}

	// The steady state: 10 s of every symbol updating, measured.
	time.Sleep(2 * time.Second)
	before, after := measure(t, b, fmt.Sprintf("%d symbols × %g/s", n, rate), 10*time.Second)
	if os.Getenv("WSRELAY_BOARD_TRACE") != "" {
		t.Log(b.traceMainThread(10 * time.Second))
	}
	if !strings.Contains(after, `"conn":"connected"`) || s.log.streamCount() != streams {
		t.Fatalf("the stream did not stay up: %s, %d new streams", after, s.log.streamCount()-streams)
	}
	if before == after {
		t.Fatal("nothing moved in 10 s")
	}
	if g := b.eval(`__wsrelay.gaps + "/" + __wsrelay.dups + "/" + __wsrelay.resets`); g != "0/0/0" {
		t.Fatalf("gaps/duplicates/resets: %s", g)
	}

	// Symbols come and go at runtime: a removed one says so at once and
	// leaves at the next read of /v1/symbols; an added one appears then,
	// on a resumed stream.
	admin := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer test-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	// The row says "removed" (seen by an observer: the next read of the
	// list may drop the row at any moment after that).
	b.eval(`(() => { window.__sawRemoved = false;
		new MutationObserver((ms) => { for (const m of ms) { const cell = m.target.parentElement;
			if (cell && cell.classList.contains("state") && m.target.data === "removed" && cell.parentElement.dataset.symbol === "SYM001") window.__sawRemoved = true; } })
			.observe(document.getElementById("rows"), {subtree: true, characterData: true});
		return true; })()`)
	admin(http.MethodDelete, "/v1/symbols/SYM001", "", http.StatusNoContent)
	b.waitJS("SYM001 shown removed", `window.__sawRemoved`, 5*time.Second)
	admin(http.MethodPut, "/v1/symbols/NEW-1", `{"upstream":"sim-b"}`, http.StatusCreated)
	added := time.Now()
	b.waitJS("NEW-1 listed with a price and SYM001 gone", `(() => { const m = __wsrelay.rows.get("NEW-1");
		return !!m && m.value != null && m.upstream === "sim-b" && !__wsrelay.rows.has("SYM001"); })()`, 25*time.Second)
	t.Logf("NEW-1 appeared %.1fs after it was added", time.Since(added).Seconds())
	b.run("filter NEW", chromedp.SendKeys("#filter", "new"))
	b.waitJS("the NEW-1 row", `document.querySelector('.row[data-symbol="NEW-1"]:not([hidden]) .price').textContent !== "—"`, 5*time.Second)
	if got := s.log.streamCount() - streams; got != 1 {
		t.Fatalf("the added symbol took %d new streams, want 1 (resumed)", got)
	}
	if g := b.eval(`__wsrelay.gaps + "/" + __wsrelay.dups + "/" + __wsrelay.resets + "/" + __wsrelay.conn`); g != "0/0/0/resumed" {
		t.Fatalf("gaps/duplicates/resets/conn after adding a symbol: %s", g)
	}

	t.Logf("streams: %q", s.log.streamLog())
	if r := s.log.refusals(); len(r) > 0 {
		t.Errorf("requests refused: %v", r)
	}
	b.checkConsole()
}
