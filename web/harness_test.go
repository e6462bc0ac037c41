package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsrelay/wsrelay"
	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/faultnet"
	"github.com/wsrelay/wsrelay/relay/simfeed"
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

// stackConfig shapes the relay behind the page.
type stackConfig struct {
	rate       float64                // simulated quotes per second per symbol
	upstreams  []relay.UpstreamConfig // URL and subscribe filled in when empty
	adminToken string                 // enables PUT/DELETE /v1/symbols
	page       http.Handler           // the page; nil = web.Handler()
}

type stack struct {
	feed    *simfeed.Feed
	feedSrv *httptest.Server
	broker  *relay.Broker
	relay   *relay.Relay
	api     *api.Server
	srv     *httptest.Server
	ln      *faultnet.Listener
	log     *requestLog
}

// requestLog records what the page asked of the server.
type requestLog struct {
	mu      sync.Mutex
	streams int      // GET /v1/stream requests
	opened  []string // when and how each stream was asked for
	refused []string // requests answered 4xx
	start   time.Time
}

func (l *requestLog) streamCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streams
}

func (l *requestLog) streamLog() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.opened...)
}

func (l *requestLog) refusals() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.refused...)
}

// statusWriter keeps the status of a response; Unwrap lets
// http.ResponseController reach the hijacker and the flusher beneath.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		l.mu.Lock()
		defer l.mu.Unlock()
		if r.URL.Path == "/v1/stream" {
			l.streams++
			l.opened = append(l.opened, fmt.Sprintf("%.1fs %s Last-Event-ID=%q: %d", time.Since(l.start).Seconds(), r.URL, r.Header.Get("Last-Event-ID"), sw.code))
		}
		// Admin calls are the test's own.
		if sw.code >= 400 && sw.code < 500 && r.Header.Get("Authorization") == "" {
			l.refused = append(l.refused, fmt.Sprintf("%s %s: %d", r.Method, r.URL, sw.code))
		}
	})
}

func startStack(t *testing.T, cfg stackConfig) *stack {
	t.Helper()
	if cfg.rate == 0 {
		cfg.rate = 10
	}
	if cfg.upstreams == nil {
		cfg.upstreams = []relay.UpstreamConfig{{Name: "sim", Symbols: []relay.Symbol{{Name: "BTCUSDT"}, {Name: "ETHUSDT"}, {Name: "LTCUSDT"}}}}
	}
	s := &stack{feed: simfeed.New(simfeed.Config{Rate: cfg.rate}), log: &requestLog{start: time.Now()}}
	s.feedSrv = httptest.NewServer(s.feed)
	var err error
	s.broker, err = relay.NewBroker(relay.BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ups := make([]relay.UpstreamConfig, len(cfg.upstreams))
	for i, u := range cfg.upstreams {
		if u.URL == "" {
			u.URL = "ws" + strings.TrimPrefix(s.feedSrv.URL, "http")
		}
		if u.Subscribe == nil {
			u.Subscribe = []string{simfeed.Subscribe}
			u.Unsubscribe = []string{simfeed.Unsubscribe}
			u.Accept = []relay.Matcher{relay.Exists(simfeed.Accept)}
		}
		ups[i] = u
	}
	s.relay, err = relay.New(relay.Config{Upstreams: ups}, s.broker)
	if err != nil {
		t.Fatal(err)
	}
	page := cfg.page
	if page == nil {
		page = web.Handler()
	}
	s.api, err = api.New(api.Config{Broker: s.broker, Upstreams: s.relay, Web: page, OpenAPI: wsrelay.OpenAPI,
		AdminToken: cfg.adminToken, SSE: api.SSEConfig{Retry: 300 * time.Millisecond, Heartbeat: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewUnstartedServer(s.log.wrap(s.api.Handler()))
	s.ln = faultnet.NewListener(s.srv.Listener)
	s.srv.Listener = s.ln
	s.srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.api.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		s.ln.CutAll()
		s.srv.Close()
		s.relay.Close()
		s.broker.Close()
		s.feed.Close()
		s.feedSrv.Close()
	})
	return s
}

// browser is one headless Chromium tab.
type browser struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	problems []string
	stop     func() // ends the console collection
}

// newBrowser starts Chromium (PITFALLS.md: Debian's chromium wants these
// flags) and collects the page's console errors and exceptions.
func newBrowser(t *testing.T, width, height int) *browser {
	exe := chromiumPath(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("lang", "en-US"))
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		b.stop()
		cancel()
		cancelAlloc()
	})
	// Start the browser, then collect the console from the first page on.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	cctx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			bad := m.IsException() || m.Type == "error"
			// A server-side cut legitimately breaks the stream's chunked
			// response; the network log reports that as an error.
			if bad && m.Source == "network" && strings.Contains(m.Text+m.URL, "/v1/stream") {
				bad = false
			}
			if bad {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	b.stop = func() { once.Do(func() { stopConsole(); <-done }) }
	return b
}

// checkConsole fails the test for every console error seen so far.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("console: %s", p)
	}
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	tctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates expr (awaiting it when it is a promise) and returns its
// value printed with fmt.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	tctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[any](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return fmt.Sprint(v)
}

// waitJS polls expr until it is true.
func (b *browser) waitJS(what, expr string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for b.eval(expr) != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s (%s); page state: %s", what, expr,
				b.eval(`JSON.stringify({conn: __wsrelay.conn, url: __wsrelay.url, events: __wsrelay.events, gaps: __wsrelay.gaps, dups: __wsrelay.dups, shown: __wsrelay.shown})`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artifactDir(b.t), name), shot, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
