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
// Every venue type embeds *Server and satisfies Fake: ServeHTTP; WSURL
// (ws:// plus the venue's path, given the httptest URL); Close
// (idempotent, waits for every goroutine); the handshake counters
// Handshakes, Refused429, Open and MaxOpen; Announce (the venue's
// shutdown notice on every connection, then a close after a grace);
// Pushed, PushedOn and Subscribers; SetPushing and Push (freeze the
// automatic pushes, push by hand); Received (the client frames seen) and
// Closes (why the fake closed connections). Each venue type adds
// Seq(data), which reads the per-stream counter back from the part of a
// frame the relay publishes (its preset's extract) or from a whole frame,
// so a test can prove that nothing was lost or duplicated.
//
// Streams are keyed by a canonical channel name, the same for every venue:
// ChannelTicker, ChannelTrades and ChannelBBO. Each (channel, symbol)
// stream has its own counter, carried in a field the venue really has (a
// trade id, an update id, a sequence); a stream runs while at least one
// connection subscribes to it, and every subscriber receives the same
// events with the same counter, as on a real venue (two connections of a
// handover see the same events).
//
// # Adding a venue
//
// A venue is one file (binance.go, okx.go, …) and its test file:
//
//  1. XxxConfig embeds Config and adds the venue's own durations, each
//     documented with the sentence of the venue's docs it comes from.
//  2. type Xxx struct{ *Server } and NewXxx(cfg XxxConfig) *Xxx, which
//     resolves its durations with d := scaler(cfg.TimeScale) and fills a
//     settings value: path, default symbols, push interval, handshake
//     limit and window (hsBurst for a token bucket, hsBan for a ban past
//     it), connection cap (maxConns), announce grace, gzip, readLimit, and
//     the generic keepalive rules (wsPing/wsPongDeadline for server
//     WebSocket pings, idle with idleCode/idleReason for "nothing sent for
//     so long", subscribeBy, maxAge, inLimit/inWindow/inControl with
//     inCode/inReason for an inbound message rate); then calls
//     x.Server = newServer(name, x, cfg.Config, settings).
//  3. The venue interface (server.go) on *Xxx: handshake (check the path
//     and query, return the per-connection state), opened (greeting frames
//     and the venue's own keepalive with conn.every/conn.after), message
//     (one client frame: ack or error in the venue's shapes via
//     conn.sendJSON/conn.send, then Server.subscribe/unsubscribe; queue the
//     ack before subscribe so it precedes the data), render (one event as
//     the venue's data frame, for one connection; snapshot marks the copy
//     of the last event a new subscriber gets) and announce. A venue with
//     a plain HTTP endpoint beside its WebSocket (KuCoin's token) also
//     implements servePlain; it is asked first for requests that are not
//     upgrades, which are then not counted as handshakes.
//  4. Seq(data []byte) (uint64, bool) on *Xxx for each channel, and the
//     type added to the Fake checks in fake_test.go.
//  5. xxx_test.go proving each rule bites (helpers_test.go has the client
//     helpers: serve, dial, dialNoPong, dialStatus, read, readUntil,
//     seqRun, closedWithin).
//
// The base does the rest: the handshake limiter and connection cap
// (HTTP 429 before the upgrade), one writer goroutine per connection with
// a bounded queue (gzip when the venue compresses), the streams and their
// counters, the generic keepalive rules and Announce. A rule that only
// one venue has belongs in its file, with its source.
package venuefake
