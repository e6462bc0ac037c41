package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsrelay/wsrelay/relay/relaytest"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("os/signal.loop"), goleak.IgnoreAnyFunction("os/signal.signal_recv"))
}

type relayProc struct {
	addr string
	logs *relaytest.LogBuffer
	done chan error
}

// startRelay calls run like main does, on a random loopback port, and
// returns once it logs its address.
func startRelay(t *testing.T, ctx context.Context, args ...string) *relayProc {
	t.Helper()
	p := &relayProc{logs: &relaytest.LogBuffer{}, done: make(chan error, 1)}
	go func() {
		p.done <- run(ctx, append([]string{"serve", "-listen", "127.0.0.1:0", "-log-format", "json"}, args...), env(), io.Discard, p.logs)
	}()
	relaytest.Eventually(t, "the listening log line", func() bool {
		for _, l := range p.logs.Lines() {
			var e struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "listening" {
				p.addr = e.Addr
				return true
			}
		}
		return false
	})
	return p
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestEndToEndDemo: the demo through run, REST and SSE, then a real
// SIGTERM: exit 0 and no goroutine left (goleak in TestMain).
func TestEndToEndDemo(t *testing.T) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	p := startRelay(t, ctx)
	base := "http://" + p.addr
	relaytest.Eventually(t, "/readyz", func() bool { code, _ := httpGet(t, base+"/readyz"); return code == 200 })
	relaytest.Eventually(t, "a BTCUSDT quote", func() bool { code, _ := httpGet(t, base+"/v1/quotes/BTCUSDT"); return code == 200 })
	_, body := httpGet(t, base+"/v1/quotes/BTCUSDT")
	var q struct {
		Symbol string
		Seq    uint64
		Data   struct {
			Data []struct {
				LastPrice string `json:"last_price"`
			}
		}
	}
	if err := json.Unmarshal(body, &q); err != nil || q.Symbol != "BTCUSDT" || q.Seq == 0 || q.Data.Data[0].LastPrice == "" {
		t.Fatalf("quote %s", body)
	}
	if code, body := httpGet(t, base+"/"); code != 200 || !strings.Contains(string(body), "wsrelay") {
		t.Fatalf("page: %d", code)
	}
	// SSE: three symbols multiplexed, ids increasing.
	resp, err := http.Get(base + "/v1/stream?symbols=BTCUSDT,ETHUSDT,LTCUSDT")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	ids := 0
	syms := map[string]bool{}
	for ids < 8 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "id: ") {
			ids++
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			var q struct{ Symbol string }
			json.Unmarshal([]byte(d), &q)
			syms[q.Symbol] = true
		}
	}
	if len(syms) != 3 {
		t.Fatalf("symbols on the stream: %v", syms)
	}
	if !strings.Contains(p.logs.String(), "open the live board at http://localhost:") || !strings.Contains(p.logs.String(), "curl localhost:") {
		t.Fatalf("no demo hint in the logs:\n%s", p.logs)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	// The open stream ended cleanly (the client reconnects elsewhere).
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("stream ended with %v", err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
}

// TestShutdownWith1000Streams: SIGTERM with 1 000 open SSE streams exits
// 0 within 5 seconds and every stream ends cleanly.
func TestShutdownWith1000Streams(t *testing.T) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	p := startRelay(t, ctx)
	base := "http://" + p.addr
	tr := &http.Transport{MaxIdleConnsPerHost: -1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const n = 1000
	var opened, ended sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for range n {
		opened.Add(1)
		ended.Add(1)
		go func() {
			defer ended.Done()
			resp, err := client.Get(base + "/v1/stream?symbols=BTCUSDT&snapshot=false")
			if err != nil {
				opened.Done()
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			br.ReadString('\n') // retry:
			opened.Done()
			if _, err := io.Copy(io.Discard, br); err != nil {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			}
		}()
	}
	opened.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d streams failed to open: %v", len(failures), failures[0])
	}
	start := time.Now()
	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	var took time.Duration
	select {
	case err := <-p.done:
		took = time.Since(start)
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not stopped within 5 s of SIGTERM with 1000 open streams")
	}
	ended.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d streams ended uncleanly: %v", len(failures), failures[0])
	}
	t.Logf("SIGTERM with %d open streams: run returned after %s", n, took.Round(time.Millisecond))
}

// cutProxy forwards TCP to target and can cut every connection at once.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestTailResumesAcrossDrops: tail -json keeps going across dropped
// connections, and every quote arrives exactly once.
func TestTailResumesAcrossDrops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := startRelay(t, ctx)
	proxy := newCutProxy(t, p.addr)
	out, errOut := &relaytest.LogBuffer{}, &relaytest.LogBuffer{}
	tctx, tcancel := context.WithCancel(t.Context())
	tailDone := make(chan error, 1)
	go func() {
		tailDone <- run(tctx, []string{"tail", "-server", "http://" + proxy.ln.Addr().String(), "-json", "BTCUSDT", "ETHUSDT"}, env(), out, errOut)
	}()
	count := func() int { return len(strings.Fields(out.String())) }
	relaytest.Eventually(t, "quotes from tail", func() bool { return count() >= 6 })
	proxy.cut()
	n := count()
	relaytest.Eventually(t, "quotes after the cut", func() bool { return count() >= n+10 })
	tcancel()
	if err := <-tailDone; err != nil {
		t.Fatalf("tail: %v", err)
	}
	last := map[string]uint64{}
	for _, l := range out.Lines() {
		var q struct {
			Symbol string
			Seq    uint64
		}
		if err := json.Unmarshal([]byte(l), &q); err != nil {
			t.Fatalf("not a JSON quote: %q", l)
		}
		if s, ok := last[q.Symbol]; ok && q.Seq != s+1 {
			t.Fatalf("%s seq %d after %d (lost or duplicated across the drop)", q.Symbol, q.Seq, s)
		}
		last[q.Symbol] = q.Seq
	}
	if !strings.Contains(errOut.String(), "#") {
		t.Fatalf("tail said nothing about the dropped connection: %q", errOut)
	}
	// The plain format: symbol, seq, fields, latency.
	line := formatQuote([]byte(`{"symbol":"X","seq":7,"received_at":"2026-01-01T00:00:00Z","stale":false,"data":{"data":[{"close":"1.5","sent_ns":1767225600000000000}]}}`), nil, time.Date(2026, 1, 1, 0, 0, 0, int(3*time.Millisecond), time.UTC))
	if !strings.Contains(line, "seq=7") || !strings.Contains(line, "last=1.5") || !strings.Contains(line, "relay+3ms") || !strings.Contains(line, "e2e=3ms") {
		t.Fatalf("line %q", line)
	}
	// An unknown symbol is an error, not an endless retry.
	err := run(context.Background(), []string{"tail", "-server", "http://" + p.addr, "NOPE"}, env(), io.Discard, io.Discard)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "NOPE") {
		t.Fatalf("unknown symbol: %v", err)
	}
	// healthcheck answers for the running relay.
	if err := run(context.Background(), []string{"healthcheck", "-url", "http://" + p.addr + "/healthz"}, env(), io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	cancel()
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"healthcheck", "-url", "http://" + p.addr + "/healthz"}, env(), io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck passed against a stopped relay")
	} else if code := exitCode(err, io.Discard); code != 1 {
		t.Fatalf("healthcheck exit %d", code)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestHelpListsEveryCommand: wsrelay -h, --help and help list every
// command and serve's flags; each command's -h prints its own usage.
func TestHelpListsEveryCommand(t *testing.T) {
	for _, cmd := range commands() {
		if cmd.name == "help" || cmd.name == "version" {
			continue
		}
		var out strings.Builder
		if err := run(context.Background(), []string{cmd.name, "-h"}, env(), &out, io.Discard); err != nil {
			t.Fatalf("%s -h: %v", cmd.name, err)
		}
		if !strings.Contains(out.String(), "Usage: wsrelay "+cmd.name) {
			t.Fatalf("%s -h printed %q", cmd.name, out.String())
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out strings.Builder
		if err := run(context.Background(), args, env(), &out, io.Discard); err != nil {
			t.Fatalf("wsrelay %v: %v", args, err)
		}
		for _, cmd := range commands() {
			if !strings.Contains(out.String(), "wsrelay "+cmd.synopsis) {
				t.Errorf("wsrelay %v does not list %s:\n%s", args, cmd.name, out.String())
			}
		}
		if !strings.Contains(out.String(), "-listen") {
			t.Errorf("wsrelay %v does not show serve's flags", args)
		}
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"version"}, env(), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "wsrelay ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
	err := run(context.Background(), []string{"nope"}, env(), io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 2 || !strings.Contains(err.Error(), "healthcheck") {
		t.Fatalf("unknown command: exit %d, %v", code, err)
	}
}

func TestRuntimeFailureExits1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"-listen", ln.Addr().String()}, env(), io.Discard, io.Discard)
	if err == nil || exitCode(err, io.Discard) != 1 || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("port taken: %v", err)
	}
}

// TestSlowlorisAndLimits: a client that never finishes its headers is
// closed by http.read_header_timeout; oversized headers get 431; the
// admin token and upstream cookies never reach the logs.
func TestSlowlorisAndLimits(t *testing.T) {
	cfg := writeConfig(t, `
admin_token: "an-admin-token-0123456789"
http: {read_header_timeout: 300ms, max_header_bytes: 4KiB}
upstreams:
  - name: sim
    url: ws://127.0.0.1:1/?apikey=upstream-secret
    headers: {Cookie: "session=cookie-secret"}
    subscribe: '`+simfeed.Subscribe+`'
    symbols: [A]
    backoff: {min: 10ms, max: 50ms}
`)
	ctx, cancel := context.WithCancel(t.Context())
	p := startRelay(t, ctx, "-config", cfg, "-log-level", "debug")
	defer func() { cancel(); <-p.done }()

	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and never the blank line
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, c)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("slowloris connection held for %s", took)
	}

	req, _ := http.NewRequest("GET", "http://"+p.addr+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 8<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("8 KiB header: %d", resp.StatusCode)
	}
	// Admin with the token works; the logs never show secrets.
	req, _ = http.NewRequest("PUT", "http://"+p.addr+"/v1/symbols/B", nil)
	req.Header.Set("Authorization", "Bearer an-admin-token-0123456789")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("admin add: %v %v", err, resp)
	}
	resp.Body.Close()
	relaytest.Eventually(t, "dial errors in the logs", func() bool { return strings.Contains(p.logs.String(), "reconnecting") })
	_, body := httpGet(t, "http://"+p.addr+"/v1/symbols")
	for _, secret := range []string{"an-admin-token-0123456789", "upstream-secret", "cookie-secret"} {
		if strings.Contains(p.logs.String(), secret) || strings.Contains(string(body), secret) {
			t.Fatalf("%q leaked into the logs or /v1/symbols", secret)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}
