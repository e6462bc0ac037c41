package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsrelay/wsrelay/relay"
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

func newTestEdge(t *testing.T, cfg Config) (*Edge, *lockedBuf) {
	t.Helper()
	logs := &lockedBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := relay.NewBroker(relay.BrokerConfig{History: cmpOr(cfg.History, relay.DefaultHistory)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	e, err := NewEdge(EdgeConfig{NATS: cfg, Broker: b, CheckEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, logs
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func waitReadyErr(t *testing.T, e *Edge, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := e.Ready()
		if err != nil && strings.Contains(err.Error(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready() = %v, want an error naming %q", err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Bad input: the problem is named by Ready (so /readyz is 503 with it),
// and the edge keeps trying by itself.
func TestEdgeNamesTheProblem(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		e, _ := newTestEdge(t, Config{URL: "nats://127.0.0.1:1"})
		waitReadyErr(t, e, "NATS not reachable")
	})
	t.Run("no_jetstream", func(t *testing.T) {
		ns := runNATS(t, false)
		e, _ := newTestEdge(t, Config{URL: ns.ClientURL()})
		waitReadyErr(t, e, "JetStream")
	})
	t.Run("no_stream_yet", func(t *testing.T) {
		ns := runNATS(t, true)
		e, _ := newTestEdge(t, Config{URL: ns.ClientURL()})
		waitReadyErr(t, e, "no ingest has created it yet")
	})
	t.Run("history_conflict", func(t *testing.T) {
		ns := runNATS(t, true)
		newJSEnv(t, ns, 10)
		e, _ := newTestEdge(t, Config{URL: ns.ClientURL(), History: 1024})
		waitReadyErr(t, e, "keeps 10 quotes per symbol but history is 1024")
	})
	t.Run("bad_config", func(t *testing.T) {
		for _, c := range []Config{{}, {URL: "http://x"}, {URL: "nats://x", Storage: "disk"}, {URL: "nats://x", Stream: "a.b"},
			{URL: "nats://x", TLS: TLSFiles{Cert: "c"}}, {URL: "nats://x", Creds: "/nonexistent"}} {
			if err := c.Validate(); err == nil {
				t.Fatalf("%+v accepted", c)
			}
		}
	})
}

// Credentials in the URL never reach the log, the readiness text or the
// symbol statuses, whether the server accepts them or not.
func TestSecretsStayOutOfLogs(t *testing.T) {
	const user, pass = "relay", "s3cret-Pa55word"
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		Username: user, Password: pass, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("not ready")
	}
	addr := ns.Addr().String()
	wrong, wlogs := newTestEdge(t, Config{URL: fmt.Sprintf("nats://%s:wrong-%s@%s", user, pass, addr)})
	waitReadyErr(t, wrong, "NATS not reachable")
	right, rlogs := newTestEdge(t, Config{URL: fmt.Sprintf("nats://%s:%s@%s", user, pass, addr)})
	waitReadyErr(t, right, "no ingest has created it yet")
	time.Sleep(200 * time.Millisecond)
	for name, text := range map[string]string{"wrong logs": wlogs.String(), "right logs": rlogs.String(),
		"readiness": fmt.Sprint(wrong.Ready(), right.Ready()), "statuses": fmt.Sprint(right.Statuses()), "redacted": RedactURL("nats://a:" + pass + "@h:1,nats://" + pass + "@h:2")} {
		if strings.Contains(text, pass) {
			t.Fatalf("%s carry the password:\n%s", name, text)
		}
	}
	if !strings.Contains(wlogs.String(), "nats") {
		t.Fatalf("nothing logged about the failing connection:\n%s", wlogs.String())
	}
}
