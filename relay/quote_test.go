package relay

import (
	"regexp"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"
)

// TestValidSymbolIsSymbolPattern: the hand-written check accepts exactly
// what the documented pattern matches.
func TestValidSymbolIsSymbolPattern(t *testing.T) {
	re := regexp.MustCompile(SymbolPattern)
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.OneOf(
			rapid.String(),
			rapid.StringMatching(`[A-Za-z0-9._:/ -]{0,70}`),
		).Draw(t, "name")
		if ValidSymbol(name) != re.MatchString(name) {
			t.Fatalf("%q: ValidSymbol %v, pattern %v", name, ValidSymbol(name), re.MatchString(name))
		}
	})
}

// TestEncodedBuildsOncePerEvent: however many goroutines ask for an event's
// encoding at once, they all get the same bytes, and encode runs at most
// once per caller that came before any result was kept.
func TestEncodedBuildsOncePerEvent(t *testing.T) {
	ev := &Event{Kind: KindQuote, JSON: []byte(`{"a":1}`)}
	var calls atomic.Int32
	encode := func(e *Event) []byte {
		calls.Add(1)
		return append([]byte("data: "), e.JSON...)
	}
	const readers = 32
	got := make([][]byte, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() { got[i] = ev.Encoded(encode) })
	}
	wg.Wait()
	for i, b := range got {
		if string(b) != `data: {"a":1}` || &b[0] != &got[0][0] {
			t.Fatalf("reader %d got %q, not the shared bytes", i, b)
		}
	}
	n := calls.Load()
	if n < 1 || n > readers {
		t.Fatalf("encode ran %d times", n)
	}
	ev.Encoded(encode)
	if calls.Load() != n {
		t.Fatal("encode ran again once the bytes were kept")
	}
}
