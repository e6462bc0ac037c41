package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/relay"
)

// A Server serves a broker's quotes over REST and Server-Sent Events. In
// wsrelay the relay's upstream connections publish to the broker; this
// relay has no upstream, and the example publishes itself. The epoch and
// receive time are fixed so that the output is.
func ExampleServer() {
	broker, _ := relay.NewBroker(relay.BrokerConfig{Epoch: 1732521600123})
	upstreams, _ := relay.New(relay.Config{}, broker)
	broker.AddSymbol("BTCUSDT")
	srv, err := api.New(api.Config{Broker: broker, Upstreams: upstreams})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv.Handler())
	client := hs.Client()
	defer func() { // the command's order: streams, HTTP, upstreams, broker
		srv.Shutdown(context.Background())
		client.CloseIdleConnections()
		hs.Close()
		upstreams.Close()
		broker.Close()
	}()

	at := time.Date(2026, 11, 25, 9, 35, 17, 0, time.UTC)
	broker.Publish("BTCUSDT", []byte(`{"close":"97000.5"}`), at)

	// The latest quote.
	resp, _ := client.Get(hs.URL + "/v1/quotes/BTCUSDT")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("ETag"))
	fmt.Print(string(body))

	// A stream: retry:, the snapshot (the latest quote), then live quotes.
	resp, _ = client.Get(hs.URL + "/v1/stream?symbols=BTCUSDT")
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"))
	r := bufio.NewReader(resp.Body)
	lines := func(n int) {
		for range n {
			l, _ := r.ReadString('\n')
			fmt.Println(strings.TrimSuffix(l, "\n"))
		}
	}
	lines(6) // retry, blank, the snapshot's three lines and its blank
	broker.Publish("BTCUSDT", []byte(`{"close":"97001"}`), at)
	lines(3)
	// Output:
	// 200 OK "1732521600123-1"
	// {"symbol":"BTCUSDT","id":"1732521600123-1","seq":1,"received_at":"2026-11-25T09:35:17Z","stale":false,"data":{"close":"97000.5"}}
	// text/event-stream
	// retry: 2000
	//
	// id: 1732521600123-1
	// event: quote
	// data: {"symbol":"BTCUSDT","id":"1732521600123-1","seq":1,"received_at":"2026-11-25T09:35:17Z","stale":false,"data":{"close":"97000.5"}}
	//
	// id: 1732521600123-2
	// event: quote
	// data: {"symbol":"BTCUSDT","id":"1732521600123-2","seq":2,"received_at":"2026-11-25T09:35:17Z","stale":false,"data":{"close":"97001"}}
}
