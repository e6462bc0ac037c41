package relay

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

var benchFrame = []byte(`{"group":"QuoteBin5m:A","data":[{"low":"55.42","high":"55.63","open":"55.42","close":"55.59","last_price":"55.59","volume":"40078","timestamp":1551941701,"n":1,"sent_ns":1551941701000000000}]}`)

// BenchmarkFramePath is the per-frame work without the network: rules
// (inflate, compact, accept, extract) and publish (encode, ring). Fan-out
// is BenchmarkBrokerFanout's.
func BenchmarkFramePath(b *testing.B) {
	for _, tc := range []struct {
		name  string
		bin   bool
		frame []byte
	}{{"text", false, benchFrame}, {"gzip", true, gz(benchFrame)}} {
		b.Run(tc.name, func(b *testing.B) {
			br, _ := NewBroker(BrokerConfig{})
			defer br.Close()
			br.AddSymbol("A")
			rules, _ := (&UpstreamConfig{Accept: []Matcher{Exists("/data")}, Extract: "/data/0"}).FrameRules()
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.frame)))
			now := time.Now()
			for range b.N {
				res, err := rules.Handle(tc.bin, tc.frame)
				if err != nil || res.Kind != FrameQuote {
					b.Fatal(err)
				}
				if _, err := br.Publish("A", res.Data, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkIngestWebSocket: one real upstream connection over loopback. A
// server writes b.N frames as fast as it can; the relay reads, decodes and
// publishes them. Reports frames per second through the whole path.
func BenchmarkIngestWebSocket(b *testing.B) {
	start := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		if _, _, err := c.Read(context.Background()); err != nil { // the subscribe frame
			return
		}
		ctx := c.CloseRead(context.Background())
		<-start
		for i := 0; i < b.N; i++ {
			if err := c.Write(ctx, websocket.MessageText, benchFrame); err != nil {
				return
			}
		}
		<-ctx.Done()
	}))
	defer srv.Close()
	br, _ := NewBroker(BrokerConfig{History: 1024})
	defer br.Close()
	r, err := New(Config{Upstreams: []UpstreamConfig{{
		Name: "bench", URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Subscribe: []string{`{"sub":"{symbol}"}`},
		Accept: []Matcher{Exists("/data")}, Symbols: []Symbol{{Name: "A"}}, StaleAfter: time.Hour,
	}}}, br)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for {
		if st, _ := r.Status("A"); st.Connected {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	deadline := time.Now().Add(time.Minute)
	for {
		st, _ := r.Status("A")
		if st.Quotes >= uint64(b.N) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal(fmt.Sprintf("only %d of %d frames in a minute", st.Quotes, b.N))
		}
		time.Sleep(200 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
