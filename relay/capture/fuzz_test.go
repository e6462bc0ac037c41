package capture

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzImport: no input makes the reader or the inference panic or hang,
// and whatever config comes out renders.
func FuzzImport(f *testing.F) {
	for _, name := range []string{"chrome.har", "mitmproxy.har", "playwright-embed.har", "socketio.har", "signalr.har", "no-opcode.har", "secrets.har"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"log":{"entries":[{"request":{"url":"ws://h/"},"_webSocketMessages":[{"type":"send","data":"{\"a\":[\"x1\"]}"},{"type":"send","data":"{\"a\":[\"x2\"]}"},{"type":"receive","data":"{\"b\":1}"},{"type":"receive","data":"{\"b\":2,\"x\":\"x1\"}"}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ReadHAR(bytes.NewReader(b), ReadOptions{MaxBytes: 1 << 20, MaxFrames: 2000})
		if err != nil {
			return
		}
		res, err := Infer(c, Options{})
		if err != nil {
			return
		}
		_ = res.YAML()
		res.Report(&bytes.Buffer{})
	})
}
