// Package relaytest runs wsrelay's whole stack over loopback for tests, the
// way the command wires it: the simulated exchange feed, a Relay subscribed
// to it, the Broker it publishes to and, in front of them, the HTTP server
// a test builds on the broker (the api package's), served on a listener
// that can cut every connection from the server side. Everything it starts
// stops when the test ends. It also holds the one polling helper of the
// tests, Eventually.
//
// It is test infrastructure, like faultnet and simfeed: nothing in the
// relay's serving path imports it.
package relaytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/faultnet"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// Options shape a Stack. A zero field means its default.
type Options struct {
	// Symbols are the relay's symbols on its one upstream; default A, B.
	Symbols []string
	// Rate is the feed's frames per second per symbol; default 100. A
	// negative rate sends nothing until Feed.Push.
	Rate float64
	// History is the broker's history per symbol; default
	// relay.DefaultHistory.
	History int
	// Proxy routes the relay's upstream connections through a
	// faultnet.Proxy (Stack.Proxy).
	Proxy bool
	// Upstream edits the upstream config before the relay starts.
	Upstream func(*relay.UpstreamConfig)
	// SendBuffer, when positive, is the kernel send buffer of every
	// connection the HTTP server accepts, so that a client that stops
	// reading blocks the server's writes within kilobytes.
	SendBuffer int
}

// Stack is the running stack. Its fields are set by Start, except the
// HTTP ones, which Serve sets.
type Stack struct {
	Feed   *simfeed.Feed
	Broker *relay.Broker
	Relay  *relay.Relay
	Proxy  *faultnet.Proxy // nil without Options.Proxy

	// Set by Serve.
	URL      string             // the HTTP server's base URL
	Addr     string             // its host:port, for raw TCP clients
	Listener *faultnet.Listener // CutAll cuts every accepted connection
	HTTP     *httptest.Server

	sendBuffer int
}

// Server is what Serve serves: a handler that must be shut down before its
// listener closes, so that its streams end first (*api.Server).
type Server interface {
	Handler() http.Handler
	Shutdown(ctx context.Context) error
}

// Start starts the feed, the broker and the relay; they stop when the test
// ends.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	if o.Rate == 0 {
		o.Rate = 100
	}
	if len(o.Symbols) == 0 {
		o.Symbols = []string{"A", "B"}
	}
	s := &Stack{Feed: simfeed.New(simfeed.Config{Rate: o.Rate}), sendBuffer: o.SendBuffer}
	feedSrv := httptest.NewServer(s.Feed)
	t.Cleanup(func() {
		s.Feed.Close()
		feedSrv.Close()
	})
	upURL := "ws" + strings.TrimPrefix(feedSrv.URL, "http") + "/"
	if o.Proxy {
		p, err := faultnet.NewProxy(feedSrv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s.Proxy = p
		t.Cleanup(func() { p.Close() })
		upURL = "ws://" + p.Addr() + "/"
	}
	b, err := relay.NewBroker(relay.BrokerConfig{History: o.History})
	if err != nil {
		t.Fatal(err)
	}
	s.Broker = b
	t.Cleanup(b.Close)
	uc := relay.UpstreamConfig{
		Name: "sim", URL: upURL,
		Subscribe: []string{simfeed.Subscribe}, Unsubscribe: []string{simfeed.Unsubscribe},
		Accept:  []relay.Matcher{relay.Exists(simfeed.Accept)},
		Backoff: relay.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	}
	for _, name := range o.Symbols {
		uc.Symbols = append(uc.Symbols, relay.Symbol{Name: name})
	}
	if o.Upstream != nil {
		o.Upstream(&uc)
	}
	if s.Relay, err = relay.New(relay.Config{Upstreams: []relay.UpstreamConfig{uc}}, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Relay.Close)
	return s
}

// Serve serves srv's handler over loopback HTTP/1.1. When the test ends,
// srv is shut down first, then every connection is cut and the server
// closed.
func (s *Stack) Serve(t testing.TB, srv Server) {
	t.Helper()
	hs := httptest.NewUnstartedServer(srv.Handler())
	s.Listener = faultnet.NewListener(hs.Listener)
	s.Listener.SendBuffer = s.sendBuffer
	hs.Listener = s.Listener
	hs.Start()
	s.HTTP, s.URL, s.Addr = hs, hs.URL, hs.Listener.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		s.Listener.CutAll()
		hs.CloseClientConnections()
		hs.Close()
	})
}

// WaitQuotes waits until every symbol has had at least n quotes.
func (s *Stack) WaitQuotes(t testing.TB, n uint64) {
	t.Helper()
	Eventually(t, "quotes for every symbol", func() bool {
		for _, st := range s.Relay.Statuses() {
			if st.Quotes < n {
				return false
			}
		}
		return true
	})
}

// Eventually calls cond every 5 ms until it reports true, and fails the
// test if that takes more than 15 s: with what (what was awaited) and the
// text of each explain (the state it was in).
func Eventually(t testing.TB, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			msg := "timed out waiting for " + what
			for _, e := range explain {
				msg += "; " + e()
			}
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
