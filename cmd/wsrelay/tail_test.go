package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay"
	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/faultnet"
	"github.com/wsrelay/wsrelay/relay/relaytest"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// TestTailFields runs tail against a relay whose upstreams differ: one
// with fields (the simulated feed has no bid and ask, so its low and high
// stand in), one without. A symbol that is removed and added back on the
// other upstream is read from /v1/symbols again.
func TestTailFields(t *testing.T) {
	feed := simfeed.New(simfeed.Config{Rate: 20})
	feedSrv := httptest.NewServer(feed)
	broker, err := relay.NewBroker(relay.BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	up := func(name string, fields relay.Fields, syms ...string) relay.UpstreamConfig {
		u := relay.UpstreamConfig{Name: name, URL: "ws" + strings.TrimPrefix(feedSrv.URL, "http"),
			Subscribe:   []string{simfeed.Subscribe},
			Unsubscribe: []string{simfeed.Unsubscribe},
			Accept:      []relay.Matcher{relay.Exists(simfeed.Accept)}, Fields: fields}
		for _, s := range syms {
			u.Symbols = append(u.Symbols, relay.Symbol{Name: s})
		}
		return u
	}
	rl, err := relay.New(relay.Config{Upstreams: []relay.UpstreamConfig{
		up("fielded", relay.Fields{Last: "/data/0/close", Bid: "/data/0/low", Ask: "/data/0/high"}, "AAA"),
		up("plain", relay.Fields{}, "BBB"),
	}}, broker)
	if err != nil {
		t.Fatal(err)
	}
	srvAPI, err := api.New(api.Config{Broker: broker, Upstreams: rl, OpenAPI: wsrelay.OpenAPI, AdminToken: "tok",
		SSE: api.SSEConfig{Retry: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(srvAPI.Handler())
	ln := faultnet.NewListener(srv.Listener)
	srv.Listener = ln
	srv.Start()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srvAPI.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ln.CutAll()
		srv.Close()
		rl.Close()
		broker.Close()
		feed.Close()
		feedSrv.Close()
		http.DefaultClient.CloseIdleConnections()
	}()

	out, errOut := &relaytest.LogBuffer{}, &relaytest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"tail", "-server", srv.URL, "AAA", "BBB"}, env(), out, errOut) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tail: %v", err)
		}
	}()

	withFields := regexp.MustCompile(`^(\S+) +seq=\d+ +last=(\S+)  bid=(\S+)  ask=(\S+)  relay\+\S+(  e2e=\S+)?$`)
	guessed := regexp.MustCompile(`^(\S+) +seq=\d+ +last=(\S+)  relay\+\S+(  e2e=\S+)?$`)
	// lines returns how many lines of sym match re; each one matching
	// withFields must have bid ≤ last ≤ ask (low ≤ close ≤ high).
	lines := func(sym string, re *regexp.Regexp) int {
		n := 0
		for _, l := range out.Lines() {
			m := re.FindStringSubmatch(l)
			if m == nil || m[1] != sym {
				continue
			}
			if re == withFields {
				last, _ := strconv.ParseFloat(m[2], 64)
				bid, _ := strconv.ParseFloat(m[3], 64)
				ask, _ := strconv.ParseFloat(m[4], 64)
				if !(bid <= last && last <= ask && bid > 0) {
					t.Fatalf("bid %s, last %s, ask %s out of order: %q", m[3], m[2], m[4], l)
				}
			}
			n++
		}
		return n
	}
	defer func() {
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
		}
	}()
	relaytest.Eventually(t, "lines of both symbols", func() bool {
		return lines("AAA", withFields) >= 5 && lines("BBB", guessed) >= 5
	})
	if n := lines("BBB", withFields); n > 0 {
		t.Fatalf("BBB has no fields but %d lines show bid and ask", n)
	}
	for _, l := range out.Lines() {
		if !withFields.MatchString(l) && !guessed.MatchString(l) {
			t.Fatalf("unexpected line %q", l)
		}
	}

	// BBB moves to the upstream with fields: tail forgets it on removal
	// and reads the list again when it comes back.
	admin := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	admin(http.MethodDelete, "/v1/symbols/BBB", "", http.StatusNoContent)
	relaytest.Eventually(t, "the removal on stderr", func() bool { return strings.Contains(errOut.String(), "# BBB is removed") })
	admin(http.MethodPut, "/v1/symbols/BBB", `{"upstream":"fielded"}`, http.StatusCreated)
	// The open stream no longer carries BBB (the server dropped it on
	// removal): cut it, and tail resumes with both symbols.
	a := lines("AAA", withFields)
	relaytest.Eventually(t, "AAA goes on", func() bool { return lines("AAA", withFields) >= a+3 })
	ln.CutAll()
	relaytest.Eventually(t, "BBB with bid and ask", func() bool { return lines("BBB", withFields) >= 3 })
}
