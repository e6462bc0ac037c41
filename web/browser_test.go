package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/wsrelay/wsrelay"
	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/relay/relaytest"
	"github.com/wsrelay/wsrelay/web"
)

// chromiumPath finds the browser; in CI a missing browser is a failure.
func chromiumPath(t *testing.T) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is missing; .ci/run installs Debian's chromium package")
	}
	t.Skip("Chromium not found (apt-get install chromium); skipping the browser test")
	return ""
}

// artifactDir is where screenshots go: WSRELAY_ARTIFACTS, or the ignored
// artifacts/ folder at the repository root.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("WSRELAY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startStack runs the whole stack (relaytest) with the page mounted.
func startStack(t *testing.T) *relaytest.Stack {
	s := relaytest.Start(t, relaytest.Options{Symbols: []string{"BTCUSDT", "ETHUSDT", "LTCUSDT"}, Rate: 10})
	a, err := api.New(api.Config{Broker: s.Broker, Upstreams: s.Relay, Web: web.Handler(), OpenAPI: wsrelay.OpenAPI,
		SSE: api.SSEConfig{Retry: 300 * time.Millisecond, Heartbeat: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	s.Serve(t, a)
	return s
}

// TestBoardInBrowser drives the real page in headless Chromium.
func TestBoardInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	s := startStack(t)

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 860),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// Start the browser, then collect the console from the first page on.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	cctx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(cctx)
	var mu sync.Mutex
	var problems []string
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			bad := m.IsException() || m.Type == "error"
			// The server-side cut below legitimately breaks the stream's
			// chunked response; the network log reports that as an error.
			if bad && m.Source == "network" && strings.Contains(m.Text+m.URL, "/v1/stream") {
				bad = false
			}
			if bad {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()

	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
		defer tcancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
		defer tcancel()
		v, err := chromedp.Run(tctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return fmt.Sprint(v)
	}
	waitJS := func(what, expr string, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for eval(expr) != "true" {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (%s); page state: %s", what, expr,
					eval(`JSON.stringify({conn: __wsrelay.conn, url: __wsrelay.url, events: __wsrelay.events, gaps: __wsrelay.gaps, dups: __wsrelay.dups})`))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The page loads and shows a row per demo symbol.
	run("load", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(`.row[data-symbol="BTCUSDT"]`))
	waitJS("three rows", `document.querySelectorAll("#rows .row").length === 3`, 10*time.Second)
	waitJS("connected", `__wsrelay.conn === "connected"`, 10*time.Second)

	// Prices change within a few seconds.
	price := func() string { return eval(`document.querySelector('.row[data-symbol="BTCUSDT"] .price').textContent`) }
	first := price()
	deadline := time.Now().Add(10 * time.Second)
	for price() == first || price() == "—" {
		if time.Now().After(deadline) {
			t.Fatalf("BTCUSDT price stayed %q", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitJS("a sparkline", `document.querySelector('.row[data-symbol="ETHUSDT"] polyline').getAttribute("points").split(" ").length > 3`, 10*time.Second)
	waitJS("the panel shows a quote", `document.getElementById("raw").textContent.includes('"seq"')`, 10*time.Second)

	// A server-side cut of the stream: the page recovers without a reload
	// and has seen every quote exactly once.
	eval(`window.__marker = 42`)
	before := eval(`String(__wsrelay.quotes)`)
	s.Listener.CutAll()
	waitJS("recovery after the cut", `__wsrelay.conn === "resumed" && __wsrelay.quotes > `+before+` + 10`, 20*time.Second)
	if eval(`String(window.__marker)`) != "42" {
		t.Fatal("the page reloaded")
	}
	if g := eval(`__wsrelay.gaps + "/" + __wsrelay.dups + "/" + __wsrelay.resets`); g != "0/0/0" {
		t.Fatalf("gaps/duplicates/resets after the resume: %s", g)
	}

	// A filter change reconnects with the new symbols= list and is kept
	// in the URL.
	run("filter", chromedp.SendKeys("#filter", "btc"+kb.Enter))
	waitJS("one row", `document.querySelectorAll("#rows .row").length === 1 && __wsrelay.url.includes("symbols=BTCUSDT") && location.search.includes("filter=btc")`, 10*time.Second)
	q := eval(`String(__wsrelay.quotes)`)
	waitJS("quotes after the filter", `__wsrelay.quotes > `+q+` + 3 && __wsrelay.conn === "connected"`, 10*time.Second)

	// Back to every symbol for the screenshots.
	run("clear filter", chromedp.SendKeys("#filter", strings.Repeat(kb.Backspace, 3)+kb.Enter))
	waitJS("three rows again", `document.querySelectorAll("#rows .row").length === 3`, 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	dir := artifactDir(t)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "board-desktop.png"), shot, 0o644)

	// A phone width: no horizontal scrolling.
	run("phone", chromedp.EmulateViewport(390, 844))
	time.Sleep(500 * time.Millisecond)
	if eval(`String(document.documentElement.scrollWidth <= window.innerWidth + 1)`) != "true" {
		t.Errorf("the page scrolls sideways at 390px: %s > 390", eval(`String(document.documentElement.scrollWidth)`))
	}
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(dir, "board-phone.png"), shot, 0o644)
	}
	t.Logf("screenshots in %s", dir)

	stopConsole()
	<-consoleDone
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("console: %s", p)
	}
}
