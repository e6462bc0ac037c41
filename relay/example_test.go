package relay_test

import (
	"context"
	"fmt"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// at is the receive time of the examples' quotes, so that their output is
// fixed.
var at = time.Date(2026, 11, 25, 9, 35, 17, 0, time.UTC)

// A broker keeps the latest quote and a history of every symbol, and gives
// each quote an event ID. The epoch is fixed here so that the IDs in the
// output are too; by default it is the broker's start time.
func ExampleBroker() {
	b, err := relay.NewBroker(relay.BrokerConfig{Epoch: 1732521600123})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	b.AddSymbol("BTCUSDT")

	ev, _ := b.Publish("BTCUSDT", []byte(`{"close":"97000.5"}`), at)
	fmt.Println(ev.ID, ev.Seq)
	fmt.Println(string(ev.JSON))

	latest, _ := b.Latest("BTCUSDT")
	fmt.Println(latest == ev)
	// Output:
	// 1732521600123-1 1
	// {"symbol":"BTCUSDT","id":"1732521600123-1","seq":1,"received_at":"2026-11-25T09:35:17Z","stale":false,"data":{"close":"97000.5"}}
	// true
}

// A subscription starts with a snapshot (the latest quote of each symbol)
// and then gets every quote and status change, oldest first.
func ExampleBroker_Subscribe() {
	b, _ := relay.NewBroker(relay.BrokerConfig{Epoch: 1})
	defer b.Close()
	b.AddSymbol("A")
	b.AddSymbol("B")
	b.Publish("A", []byte(`1`), at)
	b.Publish("A", []byte(`2`), at)

	sub, _ := b.Subscribe([]string{"A", "B"}, relay.SubscribeOptions{Snapshot: true})
	defer sub.Close()
	b.Publish("B", []byte(`3`), at)
	b.PublishStatus("A", relay.StateStale, "no quote for 30s", at)

	batch, _ := sub.Next(context.Background(), nil)
	for _, ev := range batch {
		switch ev.Kind {
		case relay.KindQuote:
			fmt.Println("quote", ev.Symbol, ev.ID, "seq", ev.Seq)
		case relay.KindStatus:
			fmt.Println("status", string(ev.JSON))
		}
	}
	// Output:
	// quote A 1-2 seq 2
	// quote B 1-3 seq 1
	// status {"symbol":"A","state":"stale","reason":"no quote for 30s","at":"2026-11-25T09:35:17Z"}
}

// A subscriber that lost its connection resumes after the last event ID it
// saw (SSE's Last-Event-ID): it gets exactly what it missed. An ID the
// broker cannot honour (another epoch, or older than the kept history)
// gives a reset event followed by the snapshot.
func ExampleBroker_Subscribe_resume() {
	b, _ := relay.NewBroker(relay.BrokerConfig{Epoch: 1})
	defer b.Close()
	b.AddSymbol("A")
	first, _ := b.Publish("A", []byte(`1`), at)
	b.Publish("A", []byte(`2`), at) // missed while disconnected
	b.Publish("A", []byte(`3`), at)

	sub, _ := b.Subscribe([]string{"A"}, relay.SubscribeOptions{After: first.ID.String()})
	batch, _ := sub.Next(context.Background(), nil)
	for _, ev := range batch {
		fmt.Println("missed", ev.ID)
	}
	sub.Close()

	sub, _ = b.Subscribe([]string{"A"}, relay.SubscribeOptions{After: "42-1"})
	defer sub.Close()
	batch, _ = sub.Next(context.Background(), nil)
	for _, ev := range batch {
		if ev.Kind == relay.KindReset {
			fmt.Println("reset", string(ev.JSON))
		} else {
			fmt.Println("snapshot", ev.ID)
		}
	}
	// Output:
	// missed 1-2
	// missed 1-3
	// reset {"reason":"foreign_epoch"}
	// snapshot 1-3
}
