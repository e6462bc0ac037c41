package relay

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestGateCountsDialsInFlight: a handshake that takes longer than the
// window still counts until it ends, and counts from its end: the venue
// saw it arrive after it began.
func TestGateCountsDialsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(Rate{N: 1, Per: 100 * time.Millisecond}, 0)
		_, done1, _, err := g.acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // a slow handshake
		got := make(chan time.Duration, 1)
		go func() {
			start := time.Now()
			_, done2, _, _ := g.acquire(t.Context())
			done2()
			got <- time.Since(start)
		}()
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		select {
		case d := <-got:
			t.Fatalf("a second dial went after %s while the first was in flight", d)
		default:
		}
		done1() // the first handshake ends now: the next may go one window later
		if d := <-got; d != 150*time.Millisecond {
			t.Fatalf("second dial after %s, want 150ms (50ms in flight + the 100ms window)", d)
		}
	})
}

// TestGateSlidingWindowAndCap: N dials per window, at most max open.
func TestGateSlidingWindowAndCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(Rate{N: 3, Per: time.Second}, 4)
		start := time.Now()
		var releases []func()
		for i := range 4 {
			rel, done, _, err := g.acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			done()
			releases = append(releases, rel)
			if want := time.Duration(i/3) * time.Second; time.Since(start) != want {
				t.Fatalf("dial %d at %s, want %s", i, time.Since(start), want)
			}
		}
		waited := make(chan time.Duration, 1)
		go func() {
			s := time.Now()
			rel, done, _, _ := g.acquire(t.Context())
			done()
			rel()
			waited <- time.Since(s)
		}()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		select {
		case <-waited:
			t.Fatal("a fifth connection opened past max 4")
		default:
		}
		if _, _, ok, _ := g.tryAcquire(t.Context()); ok {
			t.Fatal("tryAcquire took a slot past max")
		}
		releases[0]()
		if d := <-waited; d != 5*time.Second {
			t.Fatalf("fifth dial after %s, want when a connection closed (5s)", d)
		}
		for _, r := range releases[1:] {
			r()
			r() // idempotent
		}
	})
}
