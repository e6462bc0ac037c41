package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsrelay/wsrelay/relay/relaytest"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// fixture: a NATS server embedded in the test process (JetStream, file
// storage), the simulated feed, a config file, and wsrelay processes.
type fixture struct {
	t        *testing.T
	dir      string
	natsPort int
	natsDir  string
	ns       *server.Server
	feed     *simfeed.Feed
	feedSrv  *httptest.Server
	config   string
	symbols  []string
	rate     float64
}

func newFixture(t *testing.T, rate float64, symbols ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), natsPort: freePort(t), symbols: symbols, rate: rate}
	f.natsDir = filepath.Join(f.dir, "nats")
	f.startNATS()
	f.feed = simfeed.New(simfeed.Config{Rate: rate})
	f.feedSrv = httptest.NewServer(f.feed)
	t.Cleanup(func() {
		f.feed.Close()
		f.feedSrv.Close()
	})
	f.config = filepath.Join(f.dir, "feeds.yaml")
	quoted := make([]string, len(symbols))
	for i, s := range symbols {
		quoted[i] = strconv.Quote(s)
	}
	cfg := fmt.Sprintf(`upstreams:
  - name: sim
    url: %s
    subscribe: '%s'
    unsubscribe: '%s'
    accept: %s
    symbols: [%s]
`, "ws"+strings.TrimPrefix(f.feedSrv.URL, "http"), simfeed.Subscribe, simfeed.Unsubscribe, simfeed.Accept, strings.Join(quoted, ", "))
	if err := os.WriteFile(f.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) natsURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", f.natsPort) }

func (f *fixture) startNATS() {
	f.t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: f.natsPort, JetStream: true, StoreDir: f.natsDir,
		JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 1 << 30, NoLog: true, NoSigs: true,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		f.t.Fatal("nats not ready")
	}
	f.ns = ns
	f.t.Cleanup(f.stopNATS)
}

func (f *fixture) stopNATS() {
	if f.ns != nil {
		f.ns.Shutdown()
		f.ns.WaitForShutdown()
		f.ns = nil
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one wsrelay process.
type proc struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	logs *relaytest.LogBuffer
	base string // http://127.0.0.1:port
	done chan struct{}
	err  error
}

// start runs `wsrelay serve -role role` against the fixture's NATS and
// feed on a free port (or port, when given) and waits until it listens.
func (f *fixture) start(role string, port int, extra ...string) *proc {
	f.t.Helper()
	if port == 0 {
		port = freePort(f.t)
	}
	args := append([]string{"serve", "-role", role, "-nats", f.natsURL(), "-listen", fmt.Sprintf("127.0.0.1:%d", port),
		"-config", f.config, "-log-format", "json", "-log-level", "debug"}, extra...)
	return startProc(f.t, fmt.Sprintf("http://127.0.0.1:%d", port), args...)
}

func startProc(t *testing.T, base string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, args: args, logs: &relaytest.LogBuffer{}, base: base, done: make(chan struct{})}
	p.cmd = exec.Command(wsrelayBinary(t), args...)
	p.cmd.Stderr = p.logs
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT)
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("logs of wsrelay %s:\n%s", strings.Join(args, " "), tail(p.logs.String(), 6000))
		}
	})
	waitFor(t, "wsrelay to listen", 20*time.Second, func() bool {
		select {
		case <-p.done:
			t.Fatalf("wsrelay exited: %v\n%s", p.err, p.logs)
		default:
		}
		return strings.Contains(p.logs.String(), `"msg":"listening"`)
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// stop ends the process with SIGTERM and waits for it.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Fatal("wsrelay did not exit after SIGTERM")
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) waitReady(d time.Duration) {
	p.t.Helper()
	waitFor(p.t, p.base+"/readyz", d, func() bool {
		code, _, _ := get(p.base + "/readyz")
		return code == 200
	})
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func get(url string) (int, http.Header, []byte) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// quote is a quote as the API serves it; N is the feed's own counter of
// the frame on its connection.
type quote struct {
	Symbol string `json:"symbol"`
	ID     string `json:"id"`
	Seq    uint64 `json:"seq"`
	Data   struct {
		Data []struct {
			N uint64 `json:"n"`
		} `json:"data"`
	} `json:"data"`
}

func (q quote) n() uint64 {
	if len(q.Data.Data) == 0 {
		return 0
	}
	return q.Data.Data[0].N
}

// idN returns the n of an ID <epoch>-<n>.
func idN(t *testing.T, id string) (int64, uint64) {
	t.Helper()
	e, n, ok := strings.Cut(id, "-")
	ep, err1 := strconv.ParseInt(e, 10, 64)
	nn, err2 := strconv.ParseUint(n, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("bad id %q", id)
	}
	return ep, nn
}

// sseEvent is one event of a stream.
type sseEvent struct {
	id, event, data string
}

// sseClient reads one SSE response into events until it ends or stop.
type sseClient struct {
	mu     sync.Mutex
	events []sseEvent
	done   chan struct{}
	cancel context.CancelFunc
	err    error
}

func openSSE(t *testing.T, url, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	c := &sseClient{done: make(chan struct{}), cancel: cancel}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("sse %s: %v", url, err)
	}
	if resp.StatusCode != 200 {
		cancel()
		resp.Body.Close()
		t.Fatalf("sse %s: %d", url, resp.StatusCode)
	}
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case line == "":
				if ev.data != "" {
					c.mu.Lock()
					c.events = append(c.events, ev)
					c.mu.Unlock()
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[6:]
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() {
	c.cancel()
	<-c.done
}

func (c *sseClient) snapshot() []sseEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sseEvent(nil), c.events...)
}

func (c *sseClient) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// quotes returns the quote events (parsed) and whether a reset came.
func quotesOf(t *testing.T, evs []sseEvent) (qs []quote, resets int) {
	t.Helper()
	for _, ev := range evs {
		switch ev.event {
		case "quote":
			var q quote
			if err := json.Unmarshal([]byte(ev.data), &q); err != nil {
				t.Fatalf("quote %s: %v", ev.data, err)
			}
			if q.ID != ev.id {
				t.Fatalf("id: line %q, data %q", ev.id, q.ID)
			}
			qs = append(qs, q)
		case "reset":
			resets++
		}
	}
	return qs, resets
}

func lastID(evs []sseEvent) string {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].id != "" {
			return evs[i].id
		}
	}
	return ""
}

// checkContiguous asserts that, per symbol, the quotes' seq and the feed's
// counter n each grow by exactly one (nothing lost, nothing twice), and
// that IDs strictly increase across symbols. It returns the last quote of
// each symbol.
func checkContiguous(t *testing.T, qs []quote) map[string]quote {
	t.Helper()
	last := map[string]quote{}
	var prevN uint64
	var prevEpoch int64
	for i, q := range qs {
		ep, n := idN(t, q.ID)
		if i > 0 && ep == prevEpoch && n <= prevN {
			t.Fatalf("quote %d: id %s not after the previous n %d", i, q.ID, prevN)
		}
		prevEpoch, prevN = ep, n
		if p, ok := last[q.Symbol]; ok {
			if q.Seq != p.Seq+1 || q.n() != p.n()+1 {
				t.Fatalf("%s: seq %d n %d (id %s) after seq %d n %d (id %s): lost or duplicated", q.Symbol, q.Seq, q.n(), q.ID, p.Seq, p.n(), p.ID)
			}
		}
		last[q.Symbol] = q
	}
	return last
}
