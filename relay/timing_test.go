package relay

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// pipeNet is an in-memory network for synctest bubbles: an http.Server
// accepts the server ends of net.Pipe pairs whose client ends the relay's
// HTTP client dials. Blocking on it is durable, so fake time advances.
type pipeNet struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
	refuse atomic.Bool
}

func newPipeNet() *pipeNet {
	return &pipeNet{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.ch:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *pipeNet) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func (p *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if p.refuse.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	a, b := net.Pipe()
	select {
	case p.ch <- a:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closed:
		return nil, syscall.ECONNREFUSED
	}
}

type bubble struct {
	feed *simfeed.Feed
	net  *pipeNet
	b    *Broker
	r    *Relay
	tr   *http.Transport
	stop func()
}

// newBubble must be called inside synctest.Test.
func newBubble(t *testing.T, edit func(*UpstreamConfig)) *bubble {
	x := &bubble{feed: simfeed.New(simfeed.Config{Rate: 10}), net: newPipeNet()}
	srv := &http.Server{Handler: x.feed}
	go srv.Serve(x.net)
	x.tr = &http.Transport{DialContext: x.net.dial}
	uc := UpstreamConfig{
		Name: "sim", URL: "ws://sim.test/ws", Subscribe: []string{seedSub}, Accept: []Matcher{Exists("/data")},
		Symbols: []Symbol{{Name: "A"}}, HTTPClient: &http.Client{Transport: x.tr},
		PingInterval: 5 * time.Second, PingTimeout: 2 * time.Second,
		StaleAfter: 3 * time.Second,
		Backoff:    Backoff{Min: 100 * time.Millisecond, Max: 3 * time.Second},
	}
	if edit != nil {
		edit(&uc)
	}
	x.b, _ = NewBroker(BrokerConfig{})
	var err error
	if x.r, err = New(Config{Upstreams: []UpstreamConfig{uc}}, x.b); err != nil {
		t.Fatal(err)
	}
	x.stop = func() {
		x.r.Close()
		x.b.Close()
		x.feed.Close()
		srv.Close()
		x.net.Close()
		x.tr.CloseIdleConnections()
	}
	return x
}

func (x *bubble) statuses(t *testing.T) (func() []stateAt, func()) {
	return watchStates(t, x.b, "A")
}

// TestBackoffScheduleSynctest: with the upstream refusing connections, each
// reconnect waits within [min, min(max, min·2ⁿ)], and the delay resets once a
// connection has been stable for a minute.
func TestBackoffScheduleSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newBubble(t, nil)
		defer x.stop()
		x.net.refuse.Store(true)
		states, stop := x.statuses(t)
		defer stop()
		time.Sleep(40 * time.Second)
		synctest.Wait()
		var attempts []time.Duration
		var backoffAt time.Time
		for _, s := range states() {
			switch s.State {
			case "backoff":
				backoffAt = s.At
			case "connecting":
				if !backoffAt.IsZero() {
					attempts = append(attempts, s.At.Sub(backoffAt))
				}
			}
		}
		if len(attempts) < 8 {
			t.Fatalf("only %d attempts in 40s", len(attempts))
		}
		for n, d := range attempts {
			ceil := min(3*time.Second, 100*time.Millisecond<<n)
			if d < 100*time.Millisecond || d > ceil {
				t.Fatalf("attempt %d waited %s, outside [100ms, %s]", n, d, ceil)
			}
		}
		// Once the upstream accepts and the connection lasts a minute, the
		// next drop reconnects from the minimum again.
		x.net.refuse.Store(false)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if st, _ := x.r.Status("A"); st.State != StateLive {
			t.Fatalf("state %s", st.State)
		}
		time.Sleep(61 * time.Second)
		n0 := len(states())
		x.feed.Drop("A")
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		var sawConnecting bool
		for _, s := range states()[n0:] {
			sawConnecting = sawConnecting || s.State == "connecting"
		}
		if !sawConnecting {
			t.Fatalf("no reconnect within 150ms after a stable minute: %v", states()[n0:])
		}
	})
}

// TestPingTimeoutSynctest: a stalled upstream is detected one ping interval
// plus one ping timeout after it went silent.
func TestPingTimeoutSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newBubble(t, func(u *UpstreamConfig) { u.StaleAfter = time.Hour })
		defer x.stop()
		time.Sleep(time.Second)
		synctest.Wait()
		if st, _ := x.r.Status("A"); st.State != StateLive {
			t.Fatalf("state %s", st.State)
		}
		// Stall right after the first ping (sent at 5s) was answered.
		time.Sleep(4500 * time.Millisecond)
		x.feed.SetStalled(true)
		stalledAt := time.Now()
		for {
			time.Sleep(50 * time.Millisecond)
			synctest.Wait()
			if st, _ := x.r.Status("A"); st.State == StateBackoff {
				break
			}
			if time.Since(stalledAt) > time.Minute {
				t.Fatal("stall never detected")
			}
		}
		// Stalled at 5.5s; the next ping goes at 10s and times out at 12s.
		if got := time.Since(stalledAt); got < 6500*time.Millisecond || got > 6600*time.Millisecond {
			t.Fatalf("stall detected after %s, want 6.5s", got)
		}
		if st, _ := x.r.Status("A"); st.LastError != "no pong within 2s" {
			t.Fatalf("last error %q", st.LastError)
		}
		x.feed.SetStalled(false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st, _ := x.r.Status("A"); st.State != StateLive {
			t.Fatalf("not live after the stall ended: %s", st.State)
		}
	})
}

// TestStaleSynctest: stale exactly after stale_after without a quote.
func TestStaleSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newBubble(t, nil)
		defer x.stop()
		time.Sleep(time.Second)
		synctest.Wait()
		x.feed.SetPaused(true)
		if st, _ := x.r.Status("A"); st.State != StateLive {
			t.Fatalf("state %s", st.State)
		}
		for {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
			if st, _ := x.r.Status("A"); st.State == StateStale {
				quiet := time.Since(st.LastQuoteAt)
				if quiet < 3*time.Second || quiet > 3400*time.Millisecond {
					t.Fatalf("stale after %s of quiet, want 3s-3.4s", quiet)
				}
				break
			}
		}
	})
}
