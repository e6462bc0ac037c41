// Package chromerec records what a web page does on the network in
// headless Chromium, over the DevTools protocol, and writes it as the HAR
// that DevTools' "Export HAR" writes (front_end/models/har/Log.ts), with
// the page's WebSocket frames in _webSocketMessages. Tests use it to get
// real captures of local test sites without a person at a browser.
//
// It is test infrastructure: it starts a browser (about a second) and
// stops it before Record returns.
package chromerec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/wsrelay/wsrelay/relay/capture"
)

// Config configures Record. A zero field means its default.
type Config struct {
	// Chromium is the browser's path (default /usr/bin/chromium).
	Chromium string
	// URL is the page to open.
	URL string
	// Done is a JavaScript expression that is true once the page has done
	// what the recording needs (default: window.__state && window.__state.done).
	Done string
	// Received, when set, is a JavaScript expression giving the number of
	// messages the page has received; the recording waits until the
	// browser reported as many frames, so none is missing from the HAR.
	Received string
	// Timeout bounds the whole recording (default 30s).
	Timeout time.Duration
	// Sanitize writes what "Export HAR (sanitized)", Chrome's default,
	// writes: no Cookie, Authorization or Set-Cookie.
	Sanitize bool
}

// Record opens the page in a fresh headless Chromium, waits until Done,
// and returns the HAR of everything the page loaded and every frame of
// its sockets.
func Record(ctx context.Context, cfg Config) ([]byte, error) {
	if cfg.Chromium == "" {
		cfg.Chromium = "/usr/bin/chromium"
	}
	if cfg.Done == "" {
		cfg.Done = "!!(window.__state && window.__state.done)"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp("", "chromerec-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Flags as PITFALLS.md measured for Debian's chromium.
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(cfg.Chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dir), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	rec := newRecorder()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithListener(rec.onEvent))
	defer cancelBrowser()
	// The first action starts the browser: no timeout on it.
	var ua string
	if err := chromedp.Do(bctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		v, err := cdp.Call(ctx, chromedp.FromContext(ctx).Browser, browser.GetVersion, cdp.Empty{})
		ua = v.UserAgent
		return err
	})); err != nil {
		return nil, fmt.Errorf("chromium: %w", err)
	}
	tctx, cancel := context.WithTimeout(bctx, cfg.Timeout)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(cfg.URL)); err != nil {
		return nil, fmt.Errorf("navigate: %w", err)
	}
	for {
		done, err := chromedp.Run(tctx, chromedp.Evaluate[bool](cfg.Done))
		if err != nil {
			return nil, fmt.Errorf("evaluate %s: %w", cfg.Done, err)
		}
		if done {
			break
		}
		if err := sleep(tctx, 50*time.Millisecond); err != nil {
			state, _ := chromedp.Run(bctx, chromedp.Evaluate[any]("JSON.stringify(window.__state)"))
			return nil, fmt.Errorf("the page did not get done within %s (state %v)", cfg.Timeout, state)
		}
	}
	if cfg.Received != "" {
		n, err := chromedp.Run(tctx, chromedp.Evaluate[float64](cfg.Received))
		if err != nil {
			return nil, fmt.Errorf("evaluate %s: %w", cfg.Received, err)
		}
		for rec.received() < int(n) {
			if err := sleep(tctx, 20*time.Millisecond); err != nil {
				return nil, errors.New("the browser reported fewer frames than the page received")
			}
		}
	}
	rec.fetchBodies(tctx)
	return rec.har(ua, cfg.Sanitize)
}

// fetchBodies gets what "Export HAR (with content)" adds: the response
// body of every finished request that is not a socket, and request bodies
// Chrome did not put in the event. Errors leave the body out (an evicted
// resource), as DevTools does. Unlike DevTools, the bodies of scripts,
// styles, images and fonts are left out: captures stay small and hold no
// third-party code.
func (r *recorder) fetchBodies(ctx context.Context) {
	r.mu.Lock()
	var reqs []*request
	for _, req := range r.order {
		switch req.resourceType {
		case "websocket", "script", "stylesheet", "image", "font", "media":
			continue
		}
		if req.endTime != -1 {
			reqs = append(reqs, req)
		}
	}
	r.mu.Unlock()
	_ = chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, req := range reqs {
			id := network.RequestID(req.id)
			body, err := cdp.Call(ctx, t, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
			var post []byte
			r.mu.Lock()
			needPost := req.hasPost && len(req.postData) == 0
			r.mu.Unlock()
			if needPost {
				if p, err := cdp.Call(ctx, t, network.GetRequestPostData, network.GetRequestPostDataParams{RequestID: id}); err == nil {
					post = []byte(p.PostData)
				}
			}
			r.mu.Lock()
			if err == nil {
				req.body, req.bodyBase64 = body.Body, body.Base64encoded
			}
			if post != nil {
				req.postData = post
			}
			r.mu.Unlock()
		}
		return nil
	}))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

var webKitRE = regexp.MustCompile(`AppleWebKit/([^ ]+)`)

// har is Log.build: creator WebInspector with the WebKit version of the
// user agent, one page, the entries in the order they started.
func (r *recorder) har(ua string, sanitize bool) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l capture.HARLog
	l.Log.Version = "1.2"
	l.Log.Creator = capture.HARCreator{Name: "WebInspector", Version: "n/a"}
	if m := webKitRE.FindStringSubmatch(ua); m != nil {
		l.Log.Creator.Version = m[1]
	}
	l.Log.Pages = []capture.HARPage{}
	pageref := ""
	if r.pageURL != "" {
		var doc *request
		for _, req := range r.order {
			if req.url == r.pageURL {
				doc = req
				break
			}
		}
		p := capture.HARPage{ID: "page_1", Title: r.pageURL}
		pageref = p.ID
		if doc != nil {
			p.StartedDateTime = isoTime(doc.pseudoWallTime(r.pageLoad.start))
		}
		p.PageTimings.OnContentLoad, p.PageTimings.OnLoad = -1, -1
		if r.pageLoad.dom > 0 {
			p.PageTimings.OnContentLoad = toMilliseconds(r.pageLoad.dom - r.pageLoad.start)
		}
		if r.pageLoad.load > 0 {
			p.PageTimings.OnLoad = toMilliseconds(r.pageLoad.load - r.pageLoad.start)
		}
		l.Log.Pages = append(l.Log.Pages, p)
	}
	l.Log.Entries = []capture.HAREntry{}
	for _, req := range r.order {
		l.Log.Entries = append(l.Log.Entries, entry(req, sanitize, pageref))
	}
	// DevTools saves with JSON.stringify(log, null, 2): indented, no HTML escaping.
	var b bytes.Buffer
	if err := l.Encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Path finds Chromium: $CHROMIUM, then the usual Debian and Google
// paths; "" when none is installed.
func Path() string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return ""
}
