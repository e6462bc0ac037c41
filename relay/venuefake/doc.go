// Package venuefake holds strict fakes of real exchanges' public
// market-data WebSockets, for tests: each fake speaks its venue's protocol
// (subscribe shapes, acks, error frames, keepalive, compression, handshake
// limits, shutdown notices) as documented, and refuses what the venue
// refuses in the venue's own words. Every rule carries a comment citing its
// source: the section of shared/research/EXCHANGES.md and the document or
// SDK that section cites. It is test infrastructure like relay/faultnet and
// relay/simfeed: nothing in the relay's serving path imports it.
//
// # Using a fake
//
// Each venue has a constructor taking its config, e.g.
//
//	f := venuefake.NewBinance(venuefake.BinanceConfig{Config: venuefake.Config{TimeScale: 0.01}})
//	srv := httptest.NewServer(f)
//	defer srv.Close()
//	defer f.Close() // before srv.Close: it ends the WebSockets srv.Close would wait for
//
// A zero config field means the venue's documented default. TimeScale
// multiplies every default duration (ping period, pong deadline, idle cut,
// subscribe deadline, connection age, push interval, handshake window,
// announce grace), so a test runs the venue's rules at a hundredth of the
// speed without naming each one; a duration set explicitly is used as is.
//
// Every venue type embeds *Server, which gives: ServeHTTP; Close
// (idempotent, waits for every goroutine); the handshake counters
// Handshakes, Refused429, Open and MaxOpen; Announce (the venue's shutdown
// notice on every connection, then a close after a grace); Pushed and
// PushedOn (how many events a stream produced); SetPushing and Push (freeze
// the automatic pushes, push by hand); Received (the client frames seen)
// and Closes (why the fake closed connections). Each venue type adds
// Seq(data), which reads the per-stream counter back from the part of a
// frame the relay publishes (its preset's extract), so a test can prove
// that nothing was lost or duplicated.
//
// Streams are keyed by a canonical channel name, the same for every venue:
// ChannelTicker, ChannelTrades and ChannelBBO. Each (channel, symbol)
// stream has its own counter, carried in a field the venue really has (a
// trade id, an update id, a sequence); a stream runs while at least one
// connection subscribes to it, and every subscriber receives the same
// events with the same counter, as on a real venue.
//
// # Adding a venue
//
// A venue is one file (binance.go, okx.go, …) with:
//
//  1. a XxxConfig struct embedding Config, plus the venue's own durations;
//  2. a type Xxx struct embedding *Server, and NewXxx(cfg) *Xxx that fills
//     the venue's defaults into a settings value (default symbol list, push
//     interval, handshake limit and window, connection cap, announce grace,
//     gzip, server WebSocket pings, idle cut, subscribe deadline, maximum
//     age, inbound message rate) and calls newServer(name, x, cfg.Config,
//     settings);
//  3. the venue interface's methods on *Xxx: handshake (check the path and
//     query before the upgrade), opened (greeting frames, the venue's own
//     keepalive goroutines via conn.every/conn.after), message (parse one
//     client frame: ack or error in the venue's shapes, then
//     Server.subscribe/unsubscribe), render (one event as the venue's data
//     frame, per connection), announce (the shutdown notice);
//  4. Seq(data []byte) (uint64, bool) on *Xxx, for each channel;
//  5. a test file xxx_test.go proving every rule bites (see the helpers in
//     helpers_test.go).
//
// The base does the rest: the handshake limiter and connection cap
// (HTTP 429 before the upgrade), one writer goroutine per connection with
// a bounded queue (gzip when the venue compresses), the streams and their
// counters, the generic keepalive rules and Announce. Rules that only one
// venue has belong in its file, with their source.
package venuefake
