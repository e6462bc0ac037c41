package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wsrelay/wsrelay"
	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/relaytest"
)

var (
	_ Upstreams        = (*relay.Relay)(nil)
	_ relaytest.Server = (*Server)(nil)
)

// fixture is the whole stack over loopback (relaytest.Stack: simulated
// feed → relay → broker) with this package's Server in front of it.
type fixture struct {
	*relaytest.Stack
	api *Server
}

// opts shape a fixture; the zero value is two symbols at 100 quotes/s.
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
	so := relaytest.Options{Symbols: o.syms, Rate: o.rate, History: o.history, Proxy: o.proxy, Upstream: o.upstream}
	if o.smallSendBuffers {
		so.SendBuffer = 16 << 10
	}
	f := &fixture{Stack: relaytest.Start(t, so)}
	cfg := Config{Broker: f.Broker, Upstreams: f.Relay, OpenAPI: wsrelay.OpenAPI, CORSOrigins: []string{"*"},
		SSE: SSEConfig{Heartbeat: time.Second}}
	if o.edit != nil {
		o.edit(&cfg)
	}
	var err error
	if f.api, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.Serve(t, f.api)
	return f
}

// cut returns the count of streams ended for reason.
func (f *fixture) cut(reason disconnectReason) float64 {
	return testutil.ToFloat64(f.api.metrics.cuts[reason])
}

// logCuts logs every disconnect count, to explain a failure.
func (f *fixture) logCuts(t testing.TB) {
	t.Helper()
	for _, r := range disconnectReasons {
		t.Logf("%s=%v", r, f.cut(r))
	}
}

// get does a GET with the given header pairs and returns the response and
// its body.
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

// openSSE opens a stream and fails the test unless it answers 200.
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
