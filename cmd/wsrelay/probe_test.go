package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/simfeed"
	"github.com/wsrelay/wsrelay/relay/sitefake"
)

func startSimfeed(t *testing.T) (*simfeed.Feed, string) {
	t.Helper()
	feed := simfeed.New(simfeed.Config{Rate: 20})
	srv := httptest.NewServer(feed)
	t.Cleanup(func() {
		feed.Close()
		srv.Close()
	})
	return feed, "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
}

// TestProbeDemoFeed: probe the simulated feed with two subscribes; the
// summary lists the frame kinds, the config relays the feed, and the HAR
// it saves imports to the same config. Both configs serve quotes over
// REST and SSE unchanged.
func TestProbeDemoFeed(t *testing.T) {
	_, url := startSimfeed(t)
	har := filepath.Join(t.TempDir(), "probe.har")
	out, errOut, code := runCmd(t, context.Background(), "probe", "-for", "1s", "-har", har,
		"-send", `{"action":"subscribe","args":["QuoteBin5m:BTCUSDT"]}`,
		"-send", `{"action":"subscribe","args":["QuoteBin5m:ETHUSDT"]}`, url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"handshake 101, sent 2", "json {group,data}", "quote", `json {channel,event}`, "self-check"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("summary lacks %q:\n%s", want, errOut)
		}
	}
	for _, want := range []string{`subscribe: '{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}'`, "symbols: [BTCUSDT, ETHUSDT]", "accept: /data"} {
		if !strings.Contains(out, want) {
			t.Errorf("config lacks %q:\n%s", want, out)
		}
	}
	if st, err := os.Stat(har); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("har: %v %v", st, err)
	}
	imported, errOut, code := runCmd(t, context.Background(), "import", har)
	if code != 0 {
		t.Fatalf("import of the probe's HAR: exit %d: %s", code, errOut)
	}
	if body(imported) != body(out) {
		t.Errorf("import of the probe's HAR differs:\n%s\nvs\n%s", imported, out)
	}
	serveAndCheck(t, out, nil)
}

// body drops comments: the configs of probe and import differ only there.
func body(cfg string) string {
	var keep []string
	for _, l := range strings.Split(cfg, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestProbeSecrets: a Cookie given with -header reaches the server but not
// the output or the HAR, unless -keep-secrets.
func TestProbeSecrets(t *testing.T) {
	feed, url := startSimfeed(t)
	const secret = "Qz7Lm2Xp9Rt4Vb8Nc3Wd6Yf1"
	har := filepath.Join(t.TempDir(), "probe.har")
	out, errOut, code := runCmd(t, context.Background(), "probe", "-for", "1s", "-har", har, "-header", "Cookie: sid="+secret,
		"-header", "Origin: https://www.example.com", "-send", `{"action":"subscribe","args":["QuoteBin5m:14"]}`,
		"-send", `{"action":"subscribe","args":["QuoteBin5m:15"]}`, url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := feed.Headers().Get("Cookie"); got != "sid="+secret {
		t.Fatalf("the server got Cookie %q", got)
	}
	b, _ := os.ReadFile(har)
	for where, s := range map[string]string{"stdout": out, "stderr": errOut, "har": string(b)} {
		if strings.Contains(s, secret) {
			t.Errorf("the cookie is in %s", where)
		}
	}
	if !strings.Contains(out, "Origin: https://www.example.com") || !strings.Contains(out, "left out: Cookie (1 cookie)") {
		t.Errorf("config:\n%s", out)
	}
	out, _, code = runCmd(t, context.Background(), "probe", "-keep-secrets", "-for", "1s", "-header", "Cookie: sid="+secret,
		"-send", `{"action":"subscribe","args":["QuoteBin5m:14"]}`, "-send", `{"action":"subscribe","args":["QuoteBin5m:15"]}`, url)
	if code != 0 || !strings.Contains(out, "Cookie: sid="+secret) {
		t.Errorf("-keep-secrets: exit %d\n%s", code, out)
	}
}

// TestProbeBadInput: usage errors exit 2, a refused handshake exits 1 with
// what the server said, nothing relayable exits 2 after the summary.
func TestProbeBadInput(t *testing.T) {
	_, url := startSimfeed(t)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no session", http.StatusForbidden)
	}))
	defer refuse.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ftp://example.com/"}, 2, "is not a ws:// or wss:// URL"},
		{[]string{"-header", "NoColon", url}, 2, "-header"},
		{[]string{"-for", "-1s", url}, 2, "-for"},
		{[]string{}, 2, "give one URL"},
		{[]string{"-har", "-", url}, 2, "-har"},
		{[]string{"-for", "200ms", "ws" + strings.TrimPrefix(refuse.URL, "http") + "/?token=Zk8sJ3nQ5vX2mL9pR4tW7yB1"}, 1, "handshake refused: 403 Forbidden (the server wants credentials"},
		{[]string{"-for", "300ms", url}, 2, "the server sent nothing: most feeds wait for a subscribe (give it with -send)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			out, errOut, code := runCmd(t, context.Background(), append([]string{"probe"}, tc.args...)...)
			if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "Zk8sJ3nQ5vX2mL9pR4tW7yB1") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d with %q", code, out, errOut, tc.code, tc.want)
			}
		})
	}
}

// TestProbeSocketIO: probe speaks raw WebSocket, so the Socket.IO packets
// are sent as they go on the wire ("40", then 42[…] events); it answers
// the server's pings, and the config it prints uses framing socketio.
func TestProbeSocketIO(t *testing.T) {
	sitefake.RequireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	site, err := sitefake.StartSocketIO(ctx, sitefake.SocketIOConfig{Interval: 50 * time.Millisecond, PingInterval: 300 * time.Millisecond, PingTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	out, errOut, code := runCmd(t, ctx, "probe", "-for", "1500ms", "-send", "40", "-send", `42["subscribe","BTC-USD"]`,
		"-send", `42["subscribe","ETH-USD"]`, site.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"framing: socketio", `subscribe: '["subscribe","{symbol}"]'`, "symbols: [BTC-USD, ETH-USD]", "accept: {match: /0, equals: quote}"} {
		if !strings.Contains(out, want) {
			t.Errorf("config lacks %q:\n%s\n%s", want, out, errOut)
		}
	}
	// The server pinged every 300 ms with a 300 ms timeout: probe's
	// answers kept the session for the whole 1.5 s.
	if !strings.Contains(errOut, "engine.io ping") || strings.Contains(errOut, "ended early") {
		t.Errorf("summary:\n%s", errOut)
	}
}
