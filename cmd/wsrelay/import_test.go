package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/wsrelay/wsrelay/relay/relaytest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"
	"go.yaml.in/yaml/v3"
	"gopkg.in/cenkalti/backoff.v1"
)

// fixture is a hand-kept HAR of relay/capture/testdata.
func fixture(name string) string {
	return filepath.Join("..", "..", "relay", "capture", "testdata", name)
}

// runCmd runs the program as main does and returns stdout, stderr (with
// the error line main prints) and the exit code.
func runCmd(t *testing.T, ctx context.Context, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(ctx, args, env(), &out, &errb)
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

// TestImportBadInput: every unusable input exits 2 with one line that says
// what was found, and prints no config.
func TestImportBadInput(t *testing.T) {
	dir := t.TempDir()
	chrome, err := os.ReadFile(fixture("chrome.har"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"notjson.har":   "<!doctype html><title>Export failed</title>",
		"notahar.har":   `{"version":"1.2","pages":[]}`,
		"truncated.har": string(chrome[:len(chrome)/2]),
		"empty.har":     "",
		"nows.har":      `{"log":{"version":"1.2","entries":[{"request":{"method":"GET","url":"https://www.example.com/"},"response":{"status":200}}]}}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(dir, "notjson.har")}, "not JSON"},
		{[]string{filepath.Join(dir, "notahar.har")}, `no "log"`},
		{[]string{filepath.Join(dir, "truncated.har")}, "truncated"},
		{[]string{filepath.Join(dir, "empty.har")}, "empty"},
		{[]string{filepath.Join(dir, "nows.har")}, "no WebSocket among the HAR's 1 entry"},
		{[]string{filepath.Join(dir, "missing.har")}, "no such file"},
		{[]string{fixture("firefox.har")}, "none of its frames"},
		{[]string{fixture("protobuf.har")}, "binary and not (compressed) JSON"},
		{[]string{fixture("sfs2x.har")}, "a 3-byte header and then zlib"},
		{[]string{fixture("chrome.har"), fixture("bom.har")}, "give one HAR file"},
		{[]string{}, "give one HAR file"},
		{[]string{"-socket", "5", fixture("chrome.har")}, "-socket 5"},
		{[]string{"-nope", fixture("chrome.har")}, "flag provided but not defined"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			out, errOut, code := runCmd(t, context.Background(), append([]string{"import"}, tc.args...)...)
			if code != 2 || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and one line with %q", code, out, errOut, tc.want)
			}
		})
	}
}

// TestImportNoSecrets: no secret of a capture reaches stdout or stderr
// unless -keep-secrets is given; with it, the config carries them.
func TestImportNoSecrets(t *testing.T) {
	secrets := map[string][]string{
		"chrome.har":    {"Fk39sLq0ZpV7mW2xR8nT4yQ", "Zx81kQ0pLmN3vB7tR2yW9sD4"},
		"mitmproxy.har": {"VqL9mXw2Rt7yZp3KsB8nJd4F", "qW8eR7tY6uI5oP4aS3dF2gH1", "GA1.1.6360132.1764494000"},
		"secrets.har": {"Zk8sJ3nQ5vX2mL9pR4tW7yB1", "Pq4Lm8Nx2Vb6Rt0Ws3Yz9Kd1", "eyJhbGciOiJIUzI1NiJ9", "c2VjcmV0c2lnbmF0dXJlMTIz",
			"Xk7Yq2Wm9Pl4Rn8Ts1Vb6Zc3", "ak-3f9c2e71b8d44a0e", "Hunter2Passw0rd!", "Wm9vTGFuZDk4N2R1Y2tzMTIzNDU2Nzg5MGFiY2RlZg",
			"tK7pQ2wE9rT4yU1iO8aS5dF3gH6j", "Fk39sLq0ZpV7mW2xR8nT4yQ"},
		"sfs2x.har":            {"7Hq2Lm9Xv4Rt8Yp1Zs6Kw3Nb", "Jd8Fk2Lq7Wm4Xz9Rv3Tb6Ny1", "9c1e5a77b2d04f0e8a6b3c21d9f47e10"},
		"signalr.har":          {"Mk3nB8vC2xZ7lQ9wE4rT1yU6"},
		"socketio.har":         {"Qm2vX8kL4pN7rT1wAAAB"},
		"protobuf.har":         {},
		"firefox.har":          {},
		"playwright-embed.har": {},
	}
	for name, vals := range secrets {
		out, errOut, _ := runCmd(t, context.Background(), "import", fixture(name))
		for _, v := range vals {
			if strings.Contains(out, v) || strings.Contains(errOut, v) {
				t.Errorf("%s: the secret %q was printed", name, v)
			}
		}
	}
	// Kept on request: the Cookie header, the URL token and the frame token.
	out, _, code := runCmd(t, context.Background(), "import", "-keep-secrets", fixture("secrets.har"))
	for _, v := range []string{"Pq4Lm8Nx2Vb6Rt0Ws3Yz9Kd1", "Zk8sJ3nQ5vX2mL9pR4tW7yB1", "tK7pQ2wE9rT4yU1iO8aS5dF3gH6j", "Bearer eyJhbGciOiJIUzI1NiJ9"} {
		if code != 0 || !strings.Contains(out, v) {
			t.Errorf("-keep-secrets: %q missing (exit %d)", v, code)
		}
	}
}

// TestImportOutputFile: -o writes the config with mode 0600, the report
// goes to stderr, stdout stays empty; flags may follow the file.
func TestImportOutputFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feed.yaml")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCmd(t, context.Background(), "import", fixture("chrome.har"), "-o", path, "-symbol", "16")
	if code != 0 || out != "" || !strings.Contains(errOut, "self-check") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `symbols: ["14", "15", "16"]`) {
		t.Fatalf("config:\n%s", b)
	}
}

// TestImportConfigAccepted: every config import writes passes serve's
// strict config loader as it is.
func TestImportConfigAccepted(t *testing.T) {
	for _, name := range []string{"chrome.har", "chrome-sanitized.har", "bom.har", "h2.har", "legacy-empty.har", "multi-socket.har",
		"mitmproxy.har", "no-opcode.har", "secrets.har", "single-subscribe.har", "playwright-embed.har", "socketio.har", "signalr.har",
		"socketio-polling.har"} {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runCmd(t, context.Background(), "import", fixture(name))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			c, err := parseConfig([]byte(out))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if _, err := resolve(c, overrides{}); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// symbolsOf returns the symbol names of an imported config.
func symbolsOf(t *testing.T, cfg string) []string {
	t.Helper()
	var c struct {
		Upstreams []struct {
			Symbols []yaml.Node `yaml:"symbols"`
		} `yaml:"upstreams"`
	}
	if err := yaml.Unmarshal([]byte(cfg), &c); err != nil || len(c.Upstreams) != 1 {
		t.Fatalf("config: %v\n%s", err, cfg)
	}
	var out []string
	for _, n := range c.Upstreams[0].Symbols {
		if n.Kind == yaml.ScalarNode {
			out = append(out, n.Value)
			continue
		}
		var e struct{ Name string }
		_ = n.Decode(&e)
		out = append(out, e.Name)
	}
	return out
}

// serveAndCheck serves cfg unchanged and waits for quotes of every symbol
// over REST and over one SSE stream, then runs hold (if any) while the
// relay still runs; it stops the relay before returning.
func serveAndCheck(t *testing.T, cfg string, hold func()) {
	t.Helper()
	syms := symbolsOf(t, cfg)
	path := filepath.Join(t.TempDir(), "feed.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := startRelay(t, ctx, "-config", path)
	defer func() {
		cancel()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	base := "http://" + p.addr
	for _, s := range syms {
		relaytest.Eventually(t, "a quote of "+s+" over REST", func() bool {
			code, body := httpGet(t, base+"/v1/quotes/"+s)
			return code == 200 && bytes.Contains(body, []byte(`"data":`))
		})
	}
	// SSE: one stream, a live quote of every symbol.
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	c := sse.NewClient(base+"/v1/stream?snapshot=false&symbols="+strings.Join(syms, ","), sse.ClientMaxBufferSize(1<<20))
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 20*time.Millisecond, 200*time.Millisecond, 0
	c.ReconnectStrategy = backoff.WithContext(b, sctx)
	seen := map[string]bool{}
	for sctx.Err() == nil && len(seen) < len(syms) {
		_ = c.SubscribeRawWithContext(sctx, func(m *sse.Event) {
			if string(m.Event) != "quote" || len(m.Data) == 0 {
				return
			}
			var q struct {
				Symbol string          `json:"symbol"`
				Data   json.RawMessage `json:"data"`
			}
			if json.Unmarshal(m.Data, &q) == nil && len(q.Data) > 0 {
				seen[q.Symbol] = true
				if len(seen) == len(syms) {
					scancel()
				}
			}
		})
	}
	if len(seen) < len(syms) {
		t.Fatalf("SSE: quotes of %v only, want %v", seen, syms)
	}
	if hold != nil {
		hold()
	}
	if code, body := httpGet(t, base+"/v1/symbols"); code != 200 || strings.Contains(string(body), `"state":"backoff"`) {
		t.Errorf("symbols: %d %s", code, body)
	}
}
