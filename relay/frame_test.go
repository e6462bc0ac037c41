package relay

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zl(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestFrameRules(t *testing.T) {
	quote := []byte(`{"group":"QuoteBin5m:14", "data":[{"close":"55.59"}]}`)
	bomb := gz(bytes.Repeat([]byte(" "), 4<<20))
	cases := []struct {
		name    string
		cfg     FrameConfig
		binary  bool
		in      []byte
		kind    FrameKind
		data    string
		reply   string
		wantErr error
	}{
		{"quote compacted", FrameConfig{Accept: "/data"}, false, quote, FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"extract", FrameConfig{Accept: "/data", Extract: "/data/0"}, false, quote, FrameQuote, `{"close":"55.59"}`, "", nil},
		{"extract missing", FrameConfig{Extract: "/data/3"}, false, quote, FrameIgnored, "", "", nil},
		{"ack ignored", FrameConfig{Accept: "/data"}, false, []byte(`{"event":"subscribed"}`), FrameIgnored, "", "", nil},
		{"error frame", FrameConfig{Accept: "/data"}, false, []byte(`{"event":"error","msg":"bad channel"}`), FrameError, `{"event":"error","msg":"bad channel"}`, "", nil},
		{"error object", FrameConfig{Accept: "/data"}, false, []byte(`{"error":{"code":2}}`), FrameError, `{"error":{"code":2}}`, "", nil},
		{"null error is no error", FrameConfig{Accept: "/data"}, false, []byte(`{"error":null}`), FrameIgnored, "", "", nil},
		{"not json", FrameConfig{Accept: "/data"}, false, []byte(`pong`), FrameIgnored, "", "", ErrNotJSON},
		{"truncated json", FrameConfig{}, false, []byte(`{"data":[1,2`), FrameIgnored, "", "", ErrNotJSON},
		{"no accept takes any json", FrameConfig{}, false, []byte(`[1, 2]`), FrameQuote, `[1,2]`, "", nil},
		{"gzip", FrameConfig{Accept: "/data"}, true, gz(quote), FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"zlib", FrameConfig{Accept: "/data"}, true, zl(quote), FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"raw deflate", FrameConfig{Accept: "/data"}, true, deflate(quote), FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"binary plain json", FrameConfig{Accept: "/data"}, true, quote, FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"decompress none", FrameConfig{Accept: "/data", Decompress: "none"}, true, gz(quote), FrameIgnored, "", "", ErrNotJSON},
		{"zip bomb", FrameConfig{MaxSize: 1 << 20}, true, bomb, FrameIgnored, "", "", ErrInflatedTooLarge},
		{"binary garbage", FrameConfig{}, true, []byte{0xff, 0x00, 0x13, 0x37}, FrameIgnored, "", "", nil},
		{"huobi ping", FrameConfig{Accept: "/tick", PongMatch: "/ping", PongReply: `{"pong":{value}}`}, true, gz([]byte(`{"ping":1492420473027}`)), FramePing, "", `{"pong":1492420473027}`, nil},
		{"escaped key", FrameConfig{Accept: "/a~1b/c~0d"}, false, []byte(`{"a/b":{"c~d":1}}`), FrameQuote, `{"a/b":{"c~d":1}}`, "", nil},
		{"unicode escaped key", FrameConfig{Accept: "/d\u00e9"}, false, []byte(`{"d\u00e9":1}`), FrameQuote, `{"d\u00e9":1}`, "", nil},
		{"array index leading zero", FrameConfig{Accept: "/data/00"}, false, quote, FrameIgnored, "", "", nil},
		{"pointer through string", FrameConfig{Accept: "/group/x"}, false, quote, FrameIgnored, "", "", nil},
		{"strings with brackets", FrameConfig{Accept: "/b"}, false, []byte(`{"a":"}]\"{[","b":2}`), FrameQuote, `{"a":"}]\"{[","b":2}`, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewFrameRules(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Handle(tc.binary, tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			} else if err != nil && tc.kind != FrameIgnored {
				t.Fatalf("unexpected err %v", err)
			}
			if res.Kind != tc.kind {
				t.Fatalf("kind = %d, want %d", res.Kind, tc.kind)
			}
			if tc.data != "" && string(res.Data) != tc.data {
				t.Fatalf("data = %s, want %s", res.Data, tc.data)
			}
			if string(res.Reply) != tc.reply {
				t.Fatalf("reply = %s, want %s", res.Reply, tc.reply)
			}
		})
	}
}

func TestFrameConfigErrors(t *testing.T) {
	for _, cfg := range []FrameConfig{
		{Accept: "data"}, {Extract: "/a~2"}, {PongMatch: "/ping"}, {Decompress: "brotli"},
	} {
		if _, err := NewFrameRules(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestExpandTemplateEscapes(t *testing.T) {
	tmpl := `{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}`
	for _, ref := range []string{"BTC/USDT", `x"]}`, "a\\b", "new\nline", "\u2028", string([]byte{0xff})} {
		out := ExpandTemplate(tmpl, ref)
		var v struct{ Args []string }
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("ref %q broke the frame: %s: %v", ref, out, err)
		}
		want := strings.ToValidUTF8(ref, "\ufffd")
		if len(v.Args) != 1 || v.Args[0] != "QuoteBin5m:"+want {
			t.Fatalf("ref %q: args = %q", ref, v.Args)
		}
	}
}

func TestBackoffDelayBounds(t *testing.T) {
	min, max := 250*time.Millisecond, 30*time.Second
	lo := func(int64) int64 { return 0 }
	hi := func(n int64) int64 { return n - 1 }
	for n := 0; n < 100; n++ {
		ceil := max
		if n < 7 {
			ceil = min << n
		}
		if d := BackoffDelay(min, max, n, lo); d != min {
			t.Fatalf("attempt %d low = %s", n, d)
		}
		if d := BackoffDelay(min, max, n, hi); d != ceil {
			t.Fatalf("attempt %d high = %s, want %s", n, d, ceil)
		}
	}
}

func FuzzFrameRules(f *testing.F) {
	f.Add(false, []byte(`{"data":[{"close":"1"}]}`))
	f.Add(true, gz([]byte(`{"data":1}`)))
	f.Add(true, zl([]byte(`{"ping":5}`)))
	f.Add(true, deflate([]byte(`[{"data":"x"}]`)))
	f.Add(false, []byte(`{"a":"\"}","data":{"0":[]}}`))
	f.Add(true, []byte{0x78, 0x9c, 0xff})
	rules, _ := NewFrameRules(FrameConfig{Accept: "/data", Extract: "/data/0", PongMatch: "/ping", PongReply: `{"pong":{value}}`, MaxSize: 1 << 16})
	f.Fuzz(func(t *testing.T, binary bool, in []byte) {
		res, err := rules.Handle(binary, in)
		if err != nil {
			return
		}
		switch res.Kind {
		case FrameQuote:
			if !json.Valid(res.Data) {
				t.Fatalf("published invalid JSON %q", res.Data)
			}
			if bytes.ContainsAny(res.Data, "\r\n") {
				t.Fatalf("published data with a newline %q", res.Data)
			}
		case FramePing:
			if !json.Valid(res.Reply) {
				t.Fatalf("reply not JSON %q", res.Reply)
			}
		}
	})
}

func FuzzParseEventID(f *testing.F) {
	f.Add("1732521600123-42")
	f.Add("-1")
	f.Add("1-")
	f.Add("+1-2")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseEventID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("round trip %q -> %q", s, id.String())
		}
	})
}
