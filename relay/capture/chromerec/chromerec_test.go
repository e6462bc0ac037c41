package chromerec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsrelay/wsrelay/relay/capture"
	"github.com/wsrelay/wsrelay/relay/capture/chromerec"
	"github.com/wsrelay/wsrelay/relay/capture/testsite"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func chromium(t *testing.T) string {
	p := chromerec.Path()
	if p == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Chromium is missing; .ci/run installs Debian's chromium package")
		}
		t.Skip("Chromium not found")
	}
	return p
}

// TestRecordSeedPage: a page on the seed protocol, recorded in Chromium,
// gives a HAR in Log.ts's shape that ReadHAR reads: the document and the
// socket, frames in seconds, sent and received.
func TestRecordSeedPage(t *testing.T) {
	exe := chromium(t)
	feed := simfeed.New(simfeed.Config{Rate: 20})
	feedSrv := httptest.NewServer(feed)
	defer feedSrv.Close()
	defer feed.Close()
	site := httptest.NewServer(testsite.Page())
	defer site.Close()
	page := testsite.PageConfig{Proto: "seed", WS: "ws" + strings.TrimPrefix(feedSrv.URL, "http") + "/", Symbols: []string{"14", "15"}, Quotes: 4}
	har, err := chromerec.Record(context.Background(), chromerec.Config{Chromium: exe, URL: page.URL(site.URL), Received: "window.__state.recv", Sanitize: true})
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Log struct {
			Creator struct{ Name, Version string }
			Pages   []map[string]any
			Entries []json.RawMessage
		}
	}
	if err := json.Unmarshal(har, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Log.Creator.Name != "WebInspector" || raw.Log.Creator.Version == "n/a" || len(raw.Log.Pages) != 1 || len(raw.Log.Entries) < 2 {
		t.Fatalf("log: %+v", raw.Log)
	}
	var ws json.RawMessage
	for _, e := range raw.Log.Entries {
		if bytes.Contains(e, []byte(`"_resourceType": "websocket"`)) {
			ws = e
		}
	}
	// Log.ts's key order, as Chrome writes it.
	want := []string{"_initiator", "_priority", "_resourceType", "_webSocketMessages", "cache", "pageref", "request", "response", "serverIPAddress", "startedDateTime", "time", "timings"}
	if got := objectKeys(t, ws); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("entry keys %q, want Log.ts's %q", got, want)
	}
	if !bytes.Contains(ws, []byte(`"_priority": null`)) {
		t.Fatal("a socket's _priority is null in Chrome's HAR")
	}
	c, err := capture.ReadHAR(bytes.NewReader(har), capture.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sessions) != 1 || c.Entries < 2 {
		t.Fatalf("sessions %d entries %d", len(c.Sessions), c.Entries)
	}
	s := c.Sessions[0]
	if s.Status != 101 || len(s.Frames) < 10 || !s.Frames[0].Sent || s.Frames[0].At.IsZero() {
		t.Fatalf("session: status %d, %d frames, first %+v", s.Status, len(s.Frames), s.Frames[0])
	}
	if o, _ := headerValue(s.Request, "Origin"); o != strings.TrimSuffix(site.URL, "/") {
		t.Fatalf("origin %q", o)
	}
}

func headerValue(hs []capture.Header, name string) (string, bool) {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// objectKeys returns the top-level keys of a JSON object in file order.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
