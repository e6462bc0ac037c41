package cluster

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

func runNATS(t *testing.T, js bool) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: js,
		StoreDir: t.TempDir(), JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 1 << 30, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

type jsEnv struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	names  names
}

func newJSEnv(t *testing.T, ns *server.Server, history int) *jsEnv {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	n, _ := newNames("")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := ensureStream(ctx, js, n, Config{History: history}.withDefaults(), true)
	if err != nil {
		t.Fatal(err)
	}
	return &jsEnv{nc: nc, js: js, stream: s, names: n}
}

func (env *jsEnv) publisher(writer string, buffer int, fenced chan string) (*Publisher, *ingestMetrics) {
	m := &ingestMetrics{}
	p := newPublisher(publisherConfig{js: env.js, stream: env.stream, names: env.names, buffer: buffer, writer: writer,
		log: slog.New(slog.DiscardHandler), metrics: m, onFenced: func(sym string, _ error) {
			if fenced != nil {
				fenced <- sym
			}
		}})
	return p, m
}

// messages returns the subject's messages in order.
func (env *jsEnv) messages(t *testing.T, symbol string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; seq++ {
		m, err := env.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(env.names.subject(symbol)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
		seq = m.Sequence
	}
}

func hdr(m *jetstream.RawStreamMsg, k string) uint64 {
	v, _ := strconv.ParseUint(m.Header.Get(k), 10, 64)
	return v
}

// Two publishers on one symbol: the second continues the first's seq; the
// first, still believing it leads, is fenced off by the expected
// sequence and never interleaves.
func TestPublisherFencing(t *testing.T) {
	env := newJSEnv(t, runNATS(t, true), 100)
	fenced := make(chan string, 1)
	p1, _ := env.publisher("one", 100, fenced)
	defer p1.Close()
	p1.setActive(true)
	p1.AddSymbol("S.1")
	for i := range 3 {
		p1.Publish("S.1", []byte(`{"i":`+strconv.Itoa(i)+`}`), time.Now())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p1.flush(ctx); err != nil {
		t.Fatal(err)
	}
	p2, _ := env.publisher("two", 100, nil)
	defer p2.Close()
	p2.setActive(true)
	p2.AddSymbol("S.1")
	p2.Publish("S.1", []byte(`{"i":3}`), time.Now())
	if err := p2.flush(ctx); err != nil {
		t.Fatal(err)
	}
	p1.Publish("S.1", []byte(`{"i":99}`), time.Now())
	select {
	case sym := <-fenced:
		if sym != "S.1" {
			t.Fatalf("fenced on %q", sym)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the old writer was not fenced")
	}
	msgs := env.messages(t, "S.1")
	if len(msgs) != 4 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if hdr(m, HeaderSeq) != uint64(i+1) || (i > 0 && hdr(m, HeaderPrev) != msgs[i-1].Sequence) || string(m.Data) == `{"i":99}` {
			t.Fatalf("message %d: seq %d prev %d data %s", i, hdr(m, HeaderSeq), hdr(m, HeaderPrev), m.Data)
		}
	}
	if !strings.HasPrefix(env.names.subject("S.1"), "wsrelay.q.S=2E1") {
		t.Fatalf("subject %s", env.names.subject("S.1"))
	}
}

// A publish whose ack was lost is retried with the same ID and expected
// sequence; the expected-sequence check runs before deduplication, so
// the retry fails with "wrong last sequence" and the lane must recognise
// its own message: stored once, and the lane goes on.
func TestPublisherLostAck(t *testing.T) {
	env := newJSEnv(t, runNATS(t, true), 100)
	p, _ := env.publisher("w", 100, nil)
	defer p.Close()
	p.AddSymbol("A")
	p.mu.Lock()
	l := p.lanes["A"]
	p.mu.Unlock()
	// The first attempt reaches the stream, its ack does not: store the
	// lane's next message ourselves, exactly as the lane would send it.
	if err := l.init(); err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(l.subject)
	msg.Data = []byte(`{"x":1}`)
	msg.Header.Set(HeaderSeq, "1")
	msg.Header.Set(HeaderPrev, "0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := env.js.PublishMsg(ctx, msg, jetstream.WithMsgID(l.idPrefix+"1"), jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
		t.Fatal(err)
	}
	it := item{data: []byte(`{"x":1}`), at: time.Now()}
	if err := l.publish(&it); err != nil {
		t.Fatalf("retry of a stored message: %v", err)
	}
	it2 := item{data: []byte(`{"x":2}`), at: time.Now()}
	if err := l.publish(&it2); err != nil {
		t.Fatal(err)
	}
	msgs := env.messages(t, "A")
	if len(msgs) != 2 || hdr(msgs[1], HeaderSeq) != 2 || hdr(msgs[1], HeaderPrev) != msgs[0].Sequence {
		t.Fatalf("%d messages", len(msgs))
	}
}

// While inactive (no lease, NATS away) quotes wait in order; past the
// buffer the oldest are dropped and the next stored quote says how many
// were lost, so edges reset their clients (tested in relay) rather than
// show a silent gap.
func TestPublisherBufferOverflow(t *testing.T) {
	env := newJSEnv(t, runNATS(t, true), 100)
	p, m := env.publisher("w", 3, nil)
	defer p.Close()
	p.AddSymbol("A")
	for i := range 5 {
		p.Publish("A", []byte(strconv.Itoa(i)), time.Now())
	}
	if got := m.buffered.Load(); got != 3 {
		t.Fatalf("buffered %d, want 3", got)
	}
	if m.dropped.Load() != 2 {
		t.Fatalf("dropped %d", m.dropped.Load())
	}
	p.setActive(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := env.messages(t, "A")
	if len(msgs) != 3 || string(msgs[0].Data) != "2" || hdr(msgs[0], HeaderLost) != 2 || msgs[1].Header.Get(HeaderLost) != "" {
		t.Fatalf("%d messages, first %s lost %s", len(msgs), msgs[0].Data, msgs[0].Header.Get(HeaderLost))
	}
	if _, err := p.Publish("B", []byte("1"), time.Now()); !errors.Is(err, relay.ErrUnknownSymbol) {
		t.Fatalf("unknown symbol: %v", err)
	}
}

func TestTokens(t *testing.T) {
	for _, sym := range []string{"BTCUSDT", "BTC.USD", "a:b.c", "x_y-z", "..::"} {
		tok := Token(sym)
		if strings.ContainsAny(tok, ".:*> ") {
			t.Fatalf("%q → %q", sym, tok)
		}
		back, err := Symbol(tok)
		if err != nil || back != sym {
			t.Fatalf("%q → %q → %q, %v", sym, tok, back, err)
		}
	}
	for _, bad := range []string{"a=2", "a=41", "a b", ""} {
		if _, err := Symbol(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}
