package capture

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func readFixture(t *testing.T, name string) *Capture {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ReadHAR(f, ReadOptions{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func TestReadHARWriters(t *testing.T) {
	chrome := readFixture(t, "chrome.har")
	if chrome.Creator != "WebInspector 537.36" || chrome.Entries != 2 || len(chrome.Sessions) != 1 || !chrome.AnyCookie {
		t.Fatalf("chrome: %+v", chrome)
	}
	s := chrome.Sessions[0]
	if s.Entry != 1 || s.URL != "wss://api.bbxapp.vip/v1/ifcontract/realTime" || s.Status != 101 || s.NoFrames {
		t.Fatalf("chrome session: %+v", s)
	}
	if got, _ := header(s.Request, "origin"); got != "https://www.example.com" {
		t.Fatalf("origin %q", got)
	}
	if len(s.Cookies) != 2 || s.Cookies[0].Name != "session" {
		t.Fatalf("cookies %+v", s.Cookies)
	}
	if !s.Frames[0].Sent || string(s.Frames[0].Data) != `{"action":"subscribe","args":["QuoteBin5m:14"]}` || s.Frames[0].Binary {
		t.Fatalf("first frame %+v", s.Frames[0])
	}
	// Chrome's time is seconds since the epoch.
	if want := time.Date(2025, 11, 30, 9, 20, 1, 267e6, time.UTC); s.Frames[0].At.Sub(want).Abs() > time.Millisecond {
		t.Fatalf("first frame at %v, want %v", s.Frames[0].At.UTC(), want)
	}
	if want := time.Date(2025, 11, 30, 9, 20, 1, 217e6, time.UTC); !s.Started.Equal(want) {
		t.Fatalf("started %v", s.Started)
	}

	// Playwright writes milliseconds: the same instant comes out.
	pw := readFixture(t, "playwright-embed.har").Sessions[0]
	if want := time.Date(2025, 11, 30, 9, 20, 1, 247e6, time.UTC); pw.Frames[0].At.Sub(want).Abs() > time.Millisecond {
		t.Fatalf("playwright first frame at %v, want %v", pw.Frames[0].At.UTC(), want)
	}

	// mitmproxy writes https:// for the socket; binary frames are base64.
	mitm := readFixture(t, "mitmproxy.har").Sessions[0]
	if !strings.HasPrefix(mitm.URL, "wss://api.huobi.pro/ws?") {
		t.Fatalf("mitmproxy URL %q", mitm.URL)
	}
	if f := mitm.Frames[1]; !f.Binary || !bytes.HasPrefix(f.Data, []byte{0x1f, 0x8b}) {
		t.Fatalf("mitmproxy binary frame %+v", f)
	}

	// Firefox exports the socket without frames.
	ff := readFixture(t, "firefox.har")
	if len(ff.Sessions) != 1 || !ff.Sessions[0].NoFrames || len(ff.Sessions[0].Frames) != 0 {
		t.Fatalf("firefox %+v", ff.Sessions)
	}

	// A BOM is skipped.
	if bom := readFixture(t, "bom.har"); len(bom.Sessions) != 1 || len(bom.Sessions[0].Frames) == 0 {
		t.Fatalf("bom %+v", bom)
	}

	// No opcode: base64 of gzip becomes binary; ISO times are read.
	no := readFixture(t, "no-opcode.har").Sessions[0]
	if no.Frames[0].Binary || !no.Frames[1].Binary || no.Frames[1].At.IsZero() {
		t.Fatalf("no-opcode frames %+v %+v", no.Frames[0], no.Frames[1])
	}

	// HTTP/2: pseudo-headers dropped, status 200 kept.
	h2 := readFixture(t, "h2.har").Sessions[0]
	if h2.Status != 200 || strings.HasPrefix(h2.Request[0].Name, ":") {
		t.Fatalf("h2 %+v", h2)
	}

	// An old export: no method, no headers, frames kept.
	old := readFixture(t, "legacy-empty.har").Sessions[0]
	if len(old.Request) != 0 || len(old.Frames) == 0 || old.URL != "ws://127.0.0.1:9001/" {
		t.Fatalf("legacy %+v", old)
	}

	// Socket.IO's long-polling requests are kept (POST bodies, GET
	// responses), with their sid.
	sio := readFixture(t, "socketio-polling.har")
	if len(sio.Polling) != 5 || !sio.Polling[3].Sent || sio.Polling[3].SID != "Qm2vX8kL4pN7rT1wAAAB" ||
		sio.Polling[3].Payload != "42[\"subscribe\",\"AAPL\"]\x1e42[\"subscribe\",\"MSFT\"]" {
		t.Fatalf("polling %+v", sio.Polling)
	}

	// Several sockets, a reconnect among them.
	if multi := readFixture(t, "multi-socket.har"); len(multi.Sessions) != 3 || multi.Entries != 4 {
		t.Fatalf("multi: %d sessions, %d entries", len(multi.Sessions), multi.Entries)
	}
}

func TestReadHARBadInput(t *testing.T) {
	chrome, err := os.ReadFile(filepath.Join("testdata", "chrome.har"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"not JSON", "<html><body>Export failed</body></html>", "not JSON"},
		{"not an object", `[{"log":{}}]`, "not a JSON object"},
		{"no log", `{"version":"1.2","entries":[]}`, `no "log"`},
		{"log not an object", `{"log":[]}`, `"log" is not an object`},
		{"no entries", `{"log":{"version":"1.2","creator":{"name":"x"}}}`, `no "entries"`},
		{"entries not a list", `{"log":{"entries":{}}}`, `not a list`},
		{"truncated", string(chrome[:len(chrome)*2/3]), "truncated"},
		{"truncated header", `{"log":{"ent`, "truncated"},
		{"broken entry", `{"log":{"entries":[{"request":{"url":"wss://a/"}},{"request":}]}}`, "broken JSON in entry 2"},
		{"utf-16", "\xff\xfe{\x00", "UTF-16"},
		{"zip", "PK\x03\x04\x14\x00", "a zip file"},
		{"broken gzip", "\x1f\x8b\x08\x00", "broken gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadHAR(strings.NewReader(tc.in), ReadOptions{})
			if !errors.Is(err, ErrBadHAR) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, tc.want)
			}
		})
	}
	// A gzipped HAR is read through.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(chrome)
	_ = zw.Close()
	if c, err := ReadHAR(&gz, ReadOptions{}); err != nil || len(c.Sessions) != 1 {
		t.Fatalf("gzip: %v", err)
	}
	// A field of an unexpected type skips that entry only.
	c, err := ReadHAR(strings.NewReader(`{"log":{"entries":[{"request":"x"},{"request":{"url":"ws://h/"},"_webSocketMessages":[]}]}}`), ReadOptions{})
	if err != nil || c.Skipped != 1 || len(c.Sessions) != 1 {
		t.Fatalf("skip: %+v %v", c, err)
	}
}

// bigHAR streams a HAR of n page entries with a body of size bytes each
// and one WebSocket entry, without holding it in memory.
func bigHAR(n, size int) io.Reader {
	body := strings.Repeat("x", size)
	var parts []io.Reader
	parts = append(parts, strings.NewReader(`{"log":{"version":"1.2","creator":{"name":"WebInspector","version":"537.36"},"entries":[`))
	entry := fmt.Sprintf(`{"request":{"method":"GET","url":"https://www.example.com/a.js","headers":[]},"response":{"status":200,"content":{"size":%d,"mimeType":"text/javascript","text":"%s"}}},`, size, body)
	for range n {
		parts = append(parts, strings.NewReader(entry))
	}
	parts = append(parts, strings.NewReader(`{"_resourceType":"websocket","request":{"method":"GET","url":"wss://h/ws","headers":[]},"response":{"status":101},"_webSocketMessages":[{"type":"receive","time":1764494401.5,"opcode":1,"data":"{\"a\":1}"}]}]}}`))
	return io.MultiReader(parts...)
}

// peakReader samples the heap while the HAR is read.
type peakReader struct {
	r     io.Reader
	n     int
	peak  uint64
	every int
}

func (p *peakReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += n
	if p.n >= p.every {
		p.n = 0
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		p.peak = max(p.peak, ms.HeapInuse)
	}
	return n, err
}

// TestReadHARStreams: a 96 MB HAR is read with a heap far below its size
// (entries are decoded one at a time), and MaxBytes refuses larger input.
func TestReadHARStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 96 MB")
	}
	const n, size = 384, 256 << 10
	pr := &peakReader{r: bigHAR(n, size), every: 4 << 20}
	c, err := ReadHAR(pr, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Entries != n+1 || len(c.Sessions) != 1 || len(c.Sessions[0].Frames) != 1 {
		t.Fatalf("entries %d, sessions %d", c.Entries, len(c.Sessions))
	}
	if pr.peak > 48<<20 {
		t.Fatalf("heap in use reached %d MiB reading a %d MiB HAR: not streaming", pr.peak>>20, n*size>>20)
	}
	_, err = ReadHAR(bigHAR(8, 1<<20), ReadOptions{MaxBytes: 4 << 20})
	if !errors.Is(err, ErrBadHAR) || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Fatalf("MaxBytes: %v", err)
	}
}

// TestReadHARLimits: frames past MaxFrames are counted, not kept.
func TestReadHARLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"log":{"entries":[{"request":{"url":"ws://h/"},"_webSocketMessages":[`)
	for i := range 50 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"receive","time":%d,"opcode":1,"data":"{\"n\":%d}"}`, 1764494401+i, i)
	}
	b.WriteString(`,{"type":"receive","time":1,"opcode":9,"data":""},{"type":"error","time":2,"opcode":-1,"data":"net::ERR_CONNECTION_RESET"}]}]}}`)
	c, err := ReadHAR(strings.NewReader(b.String()), ReadOptions{MaxFrames: 20})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sessions[0]
	if len(s.Frames) != 20 || s.Dropped != 31 || s.Control != 1 {
		t.Fatalf("frames %d dropped %d control %d", len(s.Frames), s.Dropped, s.Control)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2025, 11, 30, 9, 20, 1, 500e6, time.UTC)
	for in, ok := range map[string]bool{
		`1764494401.5`: true, `1764494401500`: true, `"2025-11-30T09:20:01.5Z"`: true, `"1764494401.5"`: true,
		`-1`: false, `null`: false, `"soon"`: false, ``: false,
	} {
		got := parseTime([]byte(in))
		if ok && !got.Equal(want) || !ok && !got.IsZero() {
			t.Errorf("parseTime(%s) = %v", in, got)
		}
	}
}
