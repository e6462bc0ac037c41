package venuefake

import "net/http"

// Fake is what every venue fake offers, so that a test can drive them
// from one table (one row per preset). *Binance, *OKX, *Bybit,
// *Coinbase, *Kraken, *HTX, *Bitfinex, *Deribit, *Gate, *KuCoin and
// *Bitstamp implement it; all methods are safe for concurrent use.
type Fake interface {
	http.Handler
	// Close ends every connection and waits for every goroutine; it is
	// idempotent. Call it before the httptest server's Close.
	Close()
	// WSURL is the fake's WebSocket URL given the httptest server's URL.
	WSURL(base string) string
	// Handshakes, Refused429, Open and MaxOpen count the handshakes.
	Handshakes() uint64
	Refused429() uint64
	Open() int
	MaxOpen() int
	// Announce sends the venue's shutdown notice (if it has one) on every
	// connection and closes them after the grace.
	Announce()
	// Pushed, PushedOn and Subscribers describe the streams.
	Pushed(symbol string) uint64
	PushedOn(channel, symbol string) uint64
	Subscribers(channel, symbol string) int
	// SetPushing and Push control the pushes.
	SetPushing(on bool)
	Push(channel, symbol string) bool
	// Seq reads the stream counter back from a published quote's data.
	Seq(data []byte) (uint64, bool)
	// Received and Closes are the client frames seen and the reasons of
	// the closes the fake made.
	Received() []string
	Closes() []string
}
