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

	"github.com/wsrelay/wsrelay/relay/simfeed"
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

// rulesOf builds the frame rules of an upstream config for a test.
func rulesOf(t testing.TB, u UpstreamConfig) *FrameRules {
	t.Helper()
	r, err := u.FrameRules()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func eq(ptr string, values ...any) Matcher { return Equals(ptr, values...) }

func TestFrameRules(t *testing.T) {
	quote := []byte(`{"group":"QuoteBin5m:14", "data":[{"close":"55.59"}]}`)
	bomb := gz(bytes.Repeat([]byte(" "), 4<<20))
	acceptData := []Matcher{Exists("/data")}
	huobi := UpstreamConfig{Accept: []Matcher{Exists("/tick")}, Pong: []PongRule{{Matcher: Exists("/ping"), Reply: `{"pong":{value}}`}}}
	okx := UpstreamConfig{Accept: []Matcher{Exists("/data/0/last")}, Extract: "/data/0",
		Heartbeat: []Matcher{eq("", "pong")}, Reject: []RejectRule{{Matcher: eq("/event", "error"), Message: "/msg"}},
		ReconnectOn: []Matcher{eq("/code", 64008)}}
	deribit := UpstreamConfig{Accept: []Matcher{eq("/method", "subscription")}, Extract: "/params/data",
		Pong:   []PongRule{{Matcher: eq("/params/type", "test_request"), Reply: `{"id":{id},"method":"public/test"}`}},
		Reject: []RejectRule{{Matcher: Matcher{Match: "/result", Equals: []json.RawMessage{json.RawMessage(`[]`)}}, ID: "/id"}},
		Route:  &Route{Match: "/params/channel", Value: "ticker.{symbol}.100ms"}, SymbolsPerConnection: 2}
	cases := []struct {
		name    string
		cfg     UpstreamConfig
		binary  bool
		in      []byte
		kind    FrameKind
		data    string
		reply   string
		wantErr error
	}{
		{"quote compacted", UpstreamConfig{Accept: acceptData}, false, quote, FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"extract", UpstreamConfig{Accept: acceptData, Extract: "/data/0"}, false, quote, FrameQuote, `{"close":"55.59"}`, "", nil},
		{"extract missing", UpstreamConfig{Extract: "/data/3"}, false, quote, FrameIgnored, "", "", nil},
		{"ack ignored", UpstreamConfig{Accept: acceptData}, false, []byte(`{"event":"subscribed"}`), FrameIgnored, "", "", nil},
		{"error frame", UpstreamConfig{Accept: acceptData}, false, []byte(`{"event":"error","msg":"bad channel"}`), FrameError, `{"event":"error","msg":"bad channel"}`, "", nil},
		{"error object", UpstreamConfig{Accept: acceptData}, false, []byte(`{"error":{"code":2}}`), FrameError, `{"error":{"code":2}}`, "", nil},
		{"null error is no error", UpstreamConfig{Accept: acceptData}, false, []byte(`{"error":null}`), FrameIgnored, "", "", nil},
		{"null is not there", UpstreamConfig{Accept: acceptData}, false, []byte(`{"data":null}`), FrameIgnored, "", "", nil},
		{"text is ignored, not an error", UpstreamConfig{Accept: acceptData}, false, []byte(`pong`), FrameIgnored, "", "", nil},
		{"truncated json", UpstreamConfig{}, false, []byte(`{"data":[1,2`), FrameIgnored, "", "", nil},
		{"no accept takes any json", UpstreamConfig{}, false, []byte(`[1, 2]`), FrameQuote, `[1,2]`, "", nil},
		{"gzip", UpstreamConfig{Accept: acceptData}, true, gz(quote), FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"zlib", UpstreamConfig{Accept: acceptData}, true, zl(quote), FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"raw deflate", UpstreamConfig{Accept: acceptData}, true, deflate(quote), FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"binary plain json", UpstreamConfig{Accept: acceptData}, true, quote, FrameQuote, `{"group":"QuoteBin5m:14","data":[{"close":"55.59"}]}`, "", nil},
		{"decompress none", UpstreamConfig{Accept: acceptData, Decompress: "none"}, true, gz(quote), FrameIgnored, "", "", ErrNotJSON},
		{"zip bomb", UpstreamConfig{ReadLimit: 1 << 20}, true, bomb, FrameIgnored, "", "", ErrInflatedTooLarge},
		{"binary garbage", UpstreamConfig{}, true, []byte{0xff, 0x00, 0x13, 0x37}, FrameIgnored, "", "", nil},
		{"huobi ping", huobi, true, gz([]byte(`{"ping":1492420473027}`)), FramePing, "", `{"pong":1492420473027}`, nil},
		{"huobi ids beyond 2^53 stay as written", huobi, true, gz([]byte(`{"ch":"x","tick":{"data":[{"id":1931506477151671992419320033,"amount":1.8E-4}]}}`)), FrameQuote,
			`{"ch":"x","tick":{"data":[{"id":1931506477151671992419320033,"amount":1.8E-4}]}}`, "", nil},
		{"okx text pong is a heartbeat", okx, false, []byte(`pong`), FrameHeartbeat, "", "", nil},
		{"okx quote", okx, false, []byte(`{"arg":{},"data":[{"last":"1"}]}`), FrameQuote, `{"last":"1"}`, "", nil},
		{"okx 64008 as a string", okx, false, []byte(`{"event":"notice","code":"64008","msg":"soon"}`), FrameReconnect, "", "", nil},
		{"okx reject", okx, false, []byte(`{"event":"error","code":"60018","msg":"instId:X doesn't exist"}`), FrameReject, "", "", nil},
		{"deribit test_request", deribit, false, []byte(`{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}`), FramePing, "", `{"id":0,"method":"public/test"}`, nil},
		{"deribit plain heartbeat is no ping", deribit, false, []byte(`{"method":"heartbeat","params":{"type":"heartbeat"}}`), FrameIgnored, "", "", nil},
		{"deribit empty result rejects", deribit, false, []byte(`{"jsonrpc":"2.0","id":4,"result":[]}`), FrameReject, "", "", nil},
		{"deribit ack is no reject", deribit, false, []byte(`{"jsonrpc":"2.0","id":4,"result":["ticker.X.100ms"]}`), FrameIgnored, "", "", nil},
		{"escaped key", UpstreamConfig{Accept: []Matcher{Exists("/a~1b/c~0d")}}, false, []byte(`{"a/b":{"c~d":1}}`), FrameQuote, `{"a/b":{"c~d":1}}`, "", nil},
		{"unicode escaped key", UpstreamConfig{Accept: []Matcher{Exists("/d\u00e9")}}, false, []byte(`{"d\u00e9":1}`), FrameQuote, `{"d\u00e9":1}`, "", nil},
		{"array index leading zero", UpstreamConfig{Accept: []Matcher{Exists("/data/00")}}, false, quote, FrameIgnored, "", "", nil},
		{"pointer through string", UpstreamConfig{Accept: []Matcher{Exists("/group/x")}}, false, quote, FrameIgnored, "", "", nil},
		{"strings with brackets", UpstreamConfig{Accept: []Matcher{Exists("/b")}}, false, []byte(`{"a":"}]\"{[","b":2}`), FrameQuote, `{"a":"}]\"{[","b":2}`, "", nil},
		{"accept by value", UpstreamConfig{Accept: []Matcher{eq("/type", "ticker", "match")}}, false, []byte(`{"type":"match","p":1}`), FrameQuote, `{"type":"match","p":1}`, "", nil},
		{"accept by value refuses others", UpstreamConfig{Accept: []Matcher{eq("/type", "ticker")}}, false, []byte(`{"type":"heartbeat"}`), FrameIgnored, "", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rulesOf(t, tc.cfg)
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

func TestFrameRulesRejectCarriesMessageIDAndRoute(t *testing.T) {
	r := rulesOf(t, UpstreamConfig{
		Reject: []RejectRule{{Matcher: Exists("/error"), Message: "/error/msg", ID: "/id"}},
		Route:  &Route{Match: "/stream", Value: "{symbol_lower}@ticker"}, SymbolsPerConnection: 2,
	})
	res, err := r.Handle(false, []byte(`{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":7,"stream":"x\u0040y"}`))
	if err != nil || res.Kind != FrameReject || res.Message != "Invalid request: invalid stream" || string(res.ID) != "7" || string(res.Route) != "x@y" {
		t.Fatalf("%+v %v", res, err)
	}
	res, _ = r.Handle(false, []byte(`{"error":"plain","id":null}`))
	if res.Kind != FrameReject || !strings.Contains(res.Message, "refused") {
		t.Fatalf("message without the pointer: %+v", res)
	}
}

func TestFrameRulesReady(t *testing.T) {
	r := rulesOf(t, UpstreamConfig{Ready: &ReadyRule{Matcher: eq("/type", "welcome")}})
	if res, _ := r.Handle(false, []byte(`{"id":"x","type":"welcome"}`)); !res.Ready {
		t.Fatal("welcome is not ready")
	}
	if res, _ := r.Handle(false, []byte(`{"type":"ack"}`)); res.Ready {
		t.Fatal("ack is ready")
	}
}

func TestUpstreamRuleErrorsNameTheirKey(t *testing.T) {
	for key, u := range map[string]UpstreamConfig{
		"accept":             {Accept: []Matcher{Exists("data")}},
		"extract":            {Extract: "/a~2"},
		"pong.reply":         {Pong: []PongRule{{Matcher: Exists("/ping")}}},
		"pong[1].match":      {Pong: []PongRule{{Matcher: Exists("/ping"), Reply: "x"}, {Matcher: Exists("ping"), Reply: "x"}}},
		"decompress":         {Decompress: "brotli"},
		"reject.message":     {Reject: []RejectRule{{Matcher: Exists("/e"), Message: "msg"}}},
		"heartbeat.equals":   {Heartbeat: []Matcher{{Match: "/t", Equals: []json.RawMessage{json.RawMessage(`{`)}}}},
		"route.match":        {Route: &Route{Match: "x", Value: "{symbol}"}},
		"reconnect_on.match": {ReconnectOn: []Matcher{Exists("code")}},
	} {
		_, err := u.FrameRules()
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Key, key) {
			t.Errorf("%s: err = %v", key, err)
		}
	}
}

func TestTemplatesEscapeRefs(t *testing.T) {
	tmpl := parseTemplate(simfeed.Subscribe)
	for _, ref := range []string{"BTC/USDT", `x"]}`, "a\\b", "new\nline", "\u2028", string([]byte{0xff})} {
		out := tmpl.render(nil, &tmplArgs{ref: ref}, escJSON)
		var v struct{ Args []string }
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("ref %q broke the frame: %s: %v", ref, out, err)
		}
		want := strings.ToValidUTF8(ref, "\ufffd")
		if len(v.Args) != 1 || v.Args[0] != "QuoteBin5m:"+want {
			t.Fatalf("ref %q: args = %q", ref, v.Args)
		}
	}
	if got := parseTemplate("wss://h/ws/{symbol_lower}@ticker").renderString("BTC/USD&x=1", escURL); got != "wss://h/ws/btc%2Fusd%26x%3D1@ticker" {
		t.Fatalf("url: %s", got)
	}
	ids := uint64(0)
	a := tmplArgs{ref: "Ab", nextID: func() uint64 { ids++; return ids }}
	if got := string(parseTemplate(`{"id":{id},"s":"{symbol_upper}","l":"{symbol_lower}","again":{id},"json":{"x":1}}`).render(nil, &a, escJSON)); got != `{"id":1,"s":"AB","l":"ab","again":1,"json":{"x":1}}` || a.id != 1 {
		t.Fatalf("vars: %s", got)
	}
}

func TestMatcherEquality(t *testing.T) {
	for _, tc := range []struct {
		m    Matcher
		doc  string
		want bool
	}{
		{eq("/c", 64008), `{"c":"64008"}`, true},
		{eq("/c", "64008"), `{"c":64008}`, true},
		{eq("/c", 64008), `{"c":64008.0}`, true},
		{eq("/c", 64008), `{"c":"64009"}`, false},
		{eq("/c", 1e30), `{"c":1000000000000000000000000000000}`, true},
		{eq("/c", "hb"), `{"c":"hb"}`, true},
		{eq("/c", false), `{"c":false}`, true},
		{eq("/c", false), `{"c":"false"}`, false},
		{eq("/c", map[string]int{"a": 1, "b": 2}), `{"c":{"b":2,"a":1}}`, true},
		{Matcher{Match: "/c", Equals: []json.RawMessage{json.RawMessage(`[]`)}}, `{"c":[]}`, true},
		{Matcher{Match: "/c", Equals: []json.RawMessage{json.RawMessage(`[]`)}}, `{"c":["x"]}`, false},
		{Exists("/c"), `{"c":null}`, false},
		{Exists("/c"), `{"c":0}`, true},
		{eq("/c", 20051, 20061), `{"c":20061}`, true},
	} {
		c, err := compileMatcher(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.matchDoc([]byte(tc.doc)); got != tc.want {
			t.Errorf("%+v on %s = %v", tc.m, tc.doc, got)
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
		if d := backoffDelay(min, max, n, lo); d != min {
			t.Fatalf("attempt %d low = %s", n, d)
		}
		if d := backoffDelay(min, max, n, hi); d != ceil {
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
	f.Add(false, []byte(`ping`))
	rules, _ := (&UpstreamConfig{
		Accept: []Matcher{Exists("/data")}, Extract: "/data/0", ReadLimit: 1 << 16,
		Pong:      []PongRule{{Matcher: Exists("/ping"), Reply: `{"pong":{value}}`}, {Matcher: Equals("", "ping"), Reply: `"pong"`}},
		Heartbeat: []Matcher{Equals("/type", "hb", 5)}, Reject: []RejectRule{{Matcher: Exists("/error"), Message: "/error"}},
		ReconnectOn: []Matcher{Equals("/code", 64008)},
	}).FrameRules()
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
