package api

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// TestSSEFrameKeepsFramingWhateverTheData: whatever an event's data holds
// (line breaks of every kind, colons, NULs, bad UTF-8), its frame is one
// event of its type, as a browser parses it.
func TestSSEFrameKeepsFramingWhateverTheData(t *testing.T) {
	t.Parallel()
	for _, data := range []string{`{"a":1}`, "a\nb", "a\r\nb\rc", "\n", "", ":colon", "nul\x00byte", "bad\xffutf8"} {
		ev := &relay.Event{Kind: relay.KindStatus, JSON: []byte(data)}
		checkFraming(t, sseFrame(ev), "status", data)
	}
	q := &relay.Event{Kind: relay.KindQuote, ID: relay.EventID{Epoch: 5, N: 9}, JSON: []byte(`{}`)}
	if got := string(sseFrame(q)); got != "id: 5-9\nevent: quote\ndata: {}\n\n" {
		t.Fatalf("quote frame %q", got)
	}
}

// checkFraming parses frame as a browser would: it must be exactly one
// event of the given type whose data is the input with line breaks
// normalised to \n.
func checkFraming(t *testing.T, frame []byte, event, data string) {
	t.Helper()
	if !bytes.HasSuffix(frame, []byte("\n\n")) || bytes.Contains(frame[:len(frame)-2], []byte("\n\n")) {
		t.Fatalf("frame %q is not exactly one event", frame)
	}
	r := &sseReader{br: bufio.NewReader(bytes.NewReader(frame))}
	ev, err := r.next()
	if err != nil {
		t.Fatalf("frame %q: %v", frame, err)
	}
	want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)
	if ev.Event != event || ev.Data != want {
		t.Fatalf("frame %q parsed as %+v, want data %q", frame, ev, want)
	}
}

func FuzzSSEFrame(f *testing.F) {
	for _, s := range []string{`{"a":1}`, "a\nb", "a\r\nb\rc", "\r", ":x", "\x00", "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFraming(t, sseFrame(&relay.Event{Kind: relay.KindReset, JSON: data}), "reset", string(data))
	})
}

// TestAppendFramesBuildsEachFrameOnce: every stream that sends an event
// appends the same bytes, built by the first one: a batch written to a
// thousand streams frames each event once.
func TestAppendFramesBuildsEachFrameOnce(t *testing.T) {
	b, err := relay.NewBroker(relay.BrokerConfig{Epoch: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.AddSymbol("A")
	ev, _ := b.Publish("A", []byte(`{"close":"1.5"}`), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	first := appendFrames(nil, []*relay.Event{ev})
	want := "id: 5-1\nevent: quote\ndata: " + string(ev.JSON) + "\n\n"
	if string(first) != want {
		t.Fatalf("frame %q, want %q", first, want)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		var buf [256]byte
		appendFrames(buf[:0], []*relay.Event{ev})
	})
	if allocs != 0 {
		t.Fatalf("appending an event's frame again allocated %v times", allocs)
	}
}
