package relay

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/simfeed"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTLSVerification: wss:// to an upstream whose certificate is not
// trusted is refused by default, and works only when explicitly allowed.
func TestTLSVerification(t *testing.T) {
	feed := simfeed.New(simfeed.Config{Rate: 50})
	srv := httptest.NewTLSServer(feed) // self-signed
	defer func() { feed.Close(); srv.Close() }()
	wss := "wss" + strings.TrimPrefix(srv.URL, "https") + "/?token=s3cret-in-url"
	for _, insecure := range []bool{false, true} {
		b, _ := NewBroker(BrokerConfig{})
		logs := &lockedBuf{}
		r, err := New(Config{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Upstreams: []UpstreamConfig{{
			Name: "tls", URL: wss, Subscribe: []string{seedSub}, Accept: []Matcher{Exists("/data")}, Symbols: []Symbol{{Name: "A"}},
			InsecureSkipVerify: insecure, Headers: map[string]string{"Cookie": "session=cookie-secret"},
			Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		}}}, b)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, _ := r.Status("A")
			if !insecure && st.Drops == 0 && strings.Contains(st.LastError, "certificate") {
				break
			}
			if insecure && st.State == StateLive {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("insecure=%v: %+v", insecure, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
		st, _ := r.Status("A")
		r.Close()
		b.Close()
		for _, secret := range []string{"s3cret-in-url", "cookie-secret"} {
			if strings.Contains(st.LastError, secret) || strings.Contains(logs.String(), secret) {
				t.Fatalf("insecure=%v: %q leaked: %s\n%s", insecure, secret, st.LastError, logs)
			}
		}
		if !insecure && !strings.Contains(st.LastError, "token=REDACTED") {
			t.Fatalf("error does not name the redacted URL: %s", st.LastError)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"wss://u:pw@h.example/ws?token=x&a=b": "wss://REDACTED@h.example/ws?a=REDACTED&token=REDACTED",
		"ws://127.0.0.1:9001/":                "ws://127.0.0.1:9001/",
		"%zz":                                 "(unparsable URL)",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("%s: %s", in, got)
		}
	}
}
