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
