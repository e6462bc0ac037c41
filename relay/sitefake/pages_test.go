package sitefake

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the browser to drive; in CI a missing one is a failure
// (.ci/run installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is missing; .ci/run installs Debian's chromium package")
	}
	t.Skip("Chromium not found")
	return ""
}

// TestSitePagesInChromium: each site's page, loaded in headless Chromium,
// gets quotes through the site's own browser client (Socket.IO: long
// polling then the WebSocket upgrade; SignalR: negotiate then WebSockets),
// as a capture of a real site would show them.
func TestSitePagesInChromium(t *testing.T) {
	RequireNode(t)
	exe := chromium(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	site, err := StartSocketIO(ctx, SocketIOConfig{Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	hub := NewSignalRHub(SignalRConfig{Interval: 20 * time.Millisecond})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	defer hub.Close()

	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	for _, page := range []string{site.PageURL + "?symbols=BTC-USD,ETH-USD", srv.URL + "/?symbols=SOL-USD"} {
		if err := chromedp.Do(bctx, chromedp.Navigate(page)); err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			n, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`window.quotes || 0`))
			if err != nil {
				t.Fatalf("%s: %v", page, err)
			}
			if n >= 10 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v quotes after 20 s", page, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	st, err := site.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Subscribes != 2 || hub.Stats().Subscribes != 1 {
		t.Fatalf("socket.io %+v, hub %+v", st, hub.Stats())
	}
}
