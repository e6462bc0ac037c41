package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay"
	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/faultnet"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

var _ Upstreams = (*relay.Relay)(nil)

// fixture is the whole stack over loopback: simulated feed → relay →
// broker → API server on httptest.
type fixture struct {
	feed    *simfeed.Feed
	feedSrv *httptest.Server
	broker  *relay.Broker
	relay   *relay.Relay
	proxy   *faultnet.Proxy
	api     *Server
	srv     *httptest.Server
	ln      *faultnet.Listener // cuts streams from the server side
	url     string
}

type opts struct {
	proxy            bool                        // route the relay through a faultnet.Proxy
	upstream         func(*relay.UpstreamConfig) // tweak the upstream
	smallSendBuffers bool                        // 16 KiB kernel send buffer per accepted connection
	rate             float64
	history          int
	syms             []string
	edit             func(*Config)
}

func newFixture(t testing.TB, o opts) *fixture {
	t.Helper()
	if o.rate == 0 {
		o.rate = 100
	}
	if len(o.syms) == 0 {
		o.syms = []string{"A", "B"}
	}
	f := &fixture{feed: simfeed.New(simfeed.Config{Rate: o.rate})}
	f.feedSrv = httptest.NewServer(f.feed)
	var err error
	f.broker, err = relay.NewBroker(relay.BrokerConfig{History: o.history, Encode: EncodeSSE, Queue: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	var syms []relay.Symbol
	for _, s := range o.syms {
		syms = append(syms, relay.Symbol{Name: s})
	}
	upURL := "ws" + strings.TrimPrefix(f.feedSrv.URL, "http")
	if o.proxy {
		if f.proxy, err = faultnet.NewProxy(f.feedSrv.Listener.Addr().String()); err != nil {
			t.Fatal(err)
		}
		upURL = "ws://" + f.proxy.Addr() + "/"
	}
	uc := relay.UpstreamConfig{
		Name: "sim", URL: upURL,
		Subscribe:   []string{`{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}`},
		Unsubscribe: []string{`{"action":"unsubscribe","args":["QuoteBin5m:{symbol}"]}`},
		Accept:      []relay.Matcher{relay.Exists("/data")}, Symbols: syms,
		Backoff: relay.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	}
	if o.upstream != nil {
		o.upstream(&uc)
	}
	f.relay, err = relay.New(relay.Config{Upstreams: []relay.UpstreamConfig{uc}}, f.broker)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Broker: f.broker, Upstreams: f.relay, OpenAPI: wsrelay.OpenAPI, CORSOrigins: []string{"*"},
		SSE: SSEConfig{Heartbeat: time.Second}}
	if o.edit != nil {
		o.edit(&cfg)
	}
	if f.api, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(f.api.Handler())
	f.ln = faultnet.NewListener(f.srv.Listener)
	if o.smallSendBuffers {
		f.ln.SendBuffer = 16 << 10
	}
	f.srv.Listener = f.ln
	f.srv.Start()
	f.url = f.srv.URL
	t.Cleanup(f.close)
	return f
}

func (f *fixture) close() {
	f.api.Shutdown()
	f.ln.CutAll()
	f.srv.CloseClientConnections()
	f.srv.Close()
	f.relay.Close()
	f.broker.Close()
	if f.proxy != nil {
		f.proxy.Close()
	}
	f.feed.Close()
	f.feedSrv.Close()
}

// waitQuotes waits until every symbol has at least n quotes.
func (f *fixture) waitQuotes(t testing.TB, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for _, st := range f.relay.Statuses() {
			ok = ok && st.Quotes >= n
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d quotes per symbol", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// sseEvent is one parsed SSE event (or a comment, or the retry field).
type sseEvent struct {
	ID, Event, Data, Comment, Retry string
}

// sseReader parses an SSE stream field by field, as a browser does.
type sseReader struct {
	resp *http.Response
	br   *bufio.Reader
}

func openSSE(t testing.TB, ctx context.Context, url string, hdr ...string) *sseReader {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return &sseReader{resp: resp, br: bufio.NewReader(resp.Body)}
}

func (r *sseReader) Close() { r.resp.Body.Close() }

// next returns the next event, comment or retry field; io.EOF at the end.
func (r *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	seen := false
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if !seen {
				continue
			}
			ev.Data = strings.Join(data, "\n")
			return ev, nil
		}
		seen = true
		if c, ok := strings.CutPrefix(line, ":"); ok {
			ev.Comment = strings.TrimSpace(c)
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "id":
			ev.ID = v
		case "event":
			ev.Event = v
		case "data":
			data = append(data, v)
		case "retry":
			ev.Retry = v
		}
	}
}

// nextQuote skips everything but quote events.
func (r *sseReader) nextQuote() (sseEvent, error) {
	for {
		ev, err := r.next()
		if err != nil || ev.Event == "quote" {
			return ev, err
		}
	}
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
