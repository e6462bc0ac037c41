package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// staticUpstreams serves a fixed symbol list for benchmarks that publish
// straight into the broker.
type staticUpstreams struct{ syms []string }

func (s staticUpstreams) Statuses() []relay.SymbolStatus {
	out := make([]relay.SymbolStatus, len(s.syms))
	for i, n := range s.syms {
		out[i] = relay.SymbolStatus{Symbol: n, Upstream: "bench", State: relay.StateLive, EverLive: true}
	}
	return out
}
func (s staticUpstreams) Status(n string) (relay.SymbolStatus, bool) {
	return relay.SymbolStatus{Symbol: n, State: relay.StateLive}, true
}
func (staticUpstreams) Add(string, relay.Symbol) (bool, error) { return false, relay.ErrClosed }
func (staticUpstreams) Remove(string) error                    { return relay.ErrClosed }
func (staticUpstreams) Upstreams() []string                    { return []string{"bench"} }

// BenchmarkSSEFanout publishes b.N quotes of 250 bytes into the broker and
// waits until each of N real HTTP SSE clients has read all of them. It
// reports delivered events per second and allocations per delivered event.
func BenchmarkSSEFanout(b *testing.B) {
	for _, clients := range []int{100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			br, _ := relay.NewBroker(relay.BrokerConfig{})
			defer br.Close()
			br.AddSymbol("A")
			s, err := New(Config{Broker: br, Upstreams: staticUpstreams{[]string{"A"}},
				SSE: SSEConfig{Queue: b.N + 16, MaxClients: clients + 1, Heartbeat: time.Minute}})
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			defer s.Shutdown(context.Background())
			tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: clients}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var ready, done sync.WaitGroup
			for range clients {
				ready.Add(1)
				done.Add(1)
				go func() {
					defer done.Done()
					req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/stream?symbols=A&snapshot=false", nil)
					resp, err := client.Do(req)
					if err != nil {
						ready.Done()
						b.Error(err)
						return
					}
					defer resp.Body.Close()
					br := bufio.NewReaderSize(resp.Body, 64<<10)
					br.ReadSlice('\n') // retry:
					ready.Done()
					got := 0
					for got < b.N {
						line, err := br.ReadSlice('\n')
						if err != nil {
							b.Error(err)
							return
						}
						if bytes.HasPrefix(line, []byte("id: ")) {
							got++
						}
					}
				}()
			}
			ready.Wait()
			data := []byte(`{"group":"QuoteBin5m:A","data":[{"low":"55.42","high":"55.63","open":"55.42","close":"55.59","last_price":"55.59","volume":"40078","timestamp":1551941701}]}`)
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				br.Publish("A", data, time.Now())
			}
			done.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			delivered := float64(b.N) * float64(clients)
			b.ReportMetric(delivered/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/delivered, "allocs/event")
			b.ReportMetric(float64(elapsed.Nanoseconds())/delivered, "ns/event")
		})
	}
}
