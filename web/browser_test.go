package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// visibleRows counts the board's rows in the DOM that are shown (the list
// is virtualised: a pool of rows, the unused ones hidden).
const visibleRows = `document.querySelectorAll("#rows .row:not([hidden])").length`

// TestBoardInBrowser drives the real page in headless Chromium.
func TestBoardInBrowser(t *testing.T) {
	b := newBrowser(t, 1280, 860)
	s := startStack(t, stackConfig{})

	// The page loads and shows a row per demo symbol.
	b.run("load", chromedp.Navigate(s.srv.URL+"/"), chromedp.WaitVisible(`.row[data-symbol="BTCUSDT"]`))
	b.waitJS("three rows", visibleRows+` === 3`, 10*time.Second)
	b.waitJS("connected", `__wsrelay.conn === "connected"`, 10*time.Second)
	if u := b.eval(`__wsrelay.url`); u != "/v1/stream" {
		t.Fatalf("the page streams %q, want every symbol on /v1/stream", u)
	}

	// Prices change within a few seconds.
	price := func() string {
		return b.eval(`document.querySelector('.row[data-symbol="BTCUSDT"] .price').textContent`)
	}
	first := price()
	deadline := time.Now().Add(10 * time.Second)
	for price() == first || price() == "—" {
		if time.Now().After(deadline) {
			t.Fatalf("BTCUSDT price stayed %q", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.waitJS("a sparkline", `document.querySelector('.row[data-symbol="ETHUSDT"] polyline').getAttribute("points").split(" ").length > 3`, 10*time.Second)
	b.waitJS("the panel shows a quote", `document.getElementById("raw").textContent.includes('"seq"')`, 10*time.Second)
	b.waitJS("the panel's chart", `document.getElementById("chart-line").getAttribute("points").split(" ").length > 3`, 10*time.Second)

	// The page reads last, bid and ask through /v1/symbols' fields (JSON
	// pointers, numbers kept as the venue wrote strings), else guesses the
	// last price as it always did.
	if got := b.eval(`(async () => {
		const { pickQuote, pickPrice } = await import("/app.js");
		const { compileFields } = await import("/prices.js");
		const t = (q) => [q.last && q.last.text, q.bid && q.bid.text, q.ask && q.ask.text].join("|");
		return [
			t(pickQuote({c: "1792.84", b: "1792.83", a: "1792.85", p: "28.2"}, compileFields({last: "/c", bid: "/b", ask: "/a"}))),
			t(pickQuote([{bid: 81205.0, ask: 81205.1, last: 81205.1}], compileFields({last: "/0/last", bid: "/0/bid", ask: "/0/ask"}))),
			t(pickQuote({bids: [["8476.97", "256"]], asks: [["8476.98", "415"]]}, compileFields({bid: "/bids/0/0", ask: "/asks/0/0"}))),
			t(pickQuote({bids: [["8476.97", "256"]], asks: [["8476.98", "415"]]}, compileFields({bid: "/bids", ask: "/asks/0"}))),
			t(pickQuote([0.003744, 358.9, 0.0037548, 338.1, -0.00008, -0.02, 0.0037494], compileFields({last: "/6", bid: "/0", ask: "/2"}))),
			t(pickQuote({"a/b": {"~x": "7"}}, compileFields({last: "/a~1b/~0x"}))),
			t(pickQuote({group: "g", data: [{close: "55.59", last_price: "55.59"}]}, null)),
			t(pickQuote({price: "1.5"}, compileFields({last: "/missing"}))),
			String(pickPrice({tick: {close: 26274.5}}).value),
		].join(" ");
	})()`); got != "1792.84|1792.83|1792.85 81,205.10|81,205.00|81,205.10 |8476.97|8476.98 |8476.97|8476.98 0.0037494|0.003744|0.0037548 7|| 55.59|| 1.5|| 26274.5" {
		t.Errorf("pickQuote: %s", got)
	}

	// A server-side cut of the stream: the page recovers without a reload
	// and has seen every quote exactly once.
	b.eval(`window.__marker = 42`)
	before := b.eval(`String(__wsrelay.quotes)`)
	s.ln.CutAll()
	b.waitJS("recovery after the cut", `__wsrelay.conn === "resumed" && __wsrelay.quotes > `+before+` + 10`, 20*time.Second)
	if b.eval(`String(window.__marker)`) != "42" {
		t.Fatal("the page reloaded")
	}
	if g := b.eval(`__wsrelay.gaps + "/" + __wsrelay.dups + "/" + __wsrelay.resets`); g != "0/0/0" {
		t.Fatalf("gaps/duplicates/resets after the resume: %s", g)
	}

	// A filter only changes the view (the stream already carries every
	// symbol) and is kept in the URL.
	streams := s.log.streamCount()
	b.run("filter", chromedp.SendKeys("#filter", "btc"+kb.Enter))
	b.waitJS("one row", visibleRows+` === 1 && document.querySelector("#rows .row:not([hidden])").dataset.symbol === "BTCUSDT"`, 10*time.Second)
	b.waitJS("the filter in the URL", `location.search.includes("filter=btc")`, 10*time.Second)
	q := b.eval(`String(__wsrelay.quotes)`)
	b.waitJS("quotes after the filter", `__wsrelay.quotes > `+q+` + 3 && __wsrelay.conn === "resumed"`, 10*time.Second)
	if n := s.log.streamCount(); n != streams {
		t.Fatalf("the filter opened %d new streams", n-streams)
	}

	// Back to every symbol for the screenshots.
	b.run("clear filter", chromedp.SendKeys("#filter", strings.Repeat(kb.Backspace, 3)+kb.Enter))
	b.waitJS("three rows again", visibleRows+` === 3`, 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	b.screenshot("board-desktop.png")

	// Narrower windows: no row's cells overflow it.
	for _, w := range []int{1280, 1100, 1000, 900, 700} {
		b.run("resize", chromedp.EmulateViewport(int64(w), 800))
		time.Sleep(200 * time.Millisecond)
		if got := b.eval(`[...document.querySelectorAll("#rows .row:not([hidden]), .board-head")].every((r) => r.scrollWidth <= r.clientWidth + 1)`); got != "true" {
			t.Errorf("at %dpx a row overflows: %s", w, b.eval(`JSON.stringify([...document.querySelectorAll("#rows .row:not([hidden]), .board-head")].map((r) => [r.scrollWidth, r.clientWidth]))`))
		}
	}

	// A phone width: no horizontal scrolling.
	b.run("phone", chromedp.EmulateViewport(390, 844))
	time.Sleep(500 * time.Millisecond)
	if b.eval(`String(document.documentElement.scrollWidth <= window.innerWidth + 1)`) != "true" {
		t.Errorf("the page scrolls sideways at 390px: %s > 390", b.eval(`String(document.documentElement.scrollWidth)`))
	}
	b.screenshot("board-phone.png")
	t.Logf("screenshots in %s", artifactDir(t))

	if r := s.log.refusals(); len(r) > 0 {
		t.Errorf("requests refused: %v", r)
	}
	b.checkConsole()
}
