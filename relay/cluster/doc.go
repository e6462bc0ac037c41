// Package cluster runs wsrelay beyond one machine on NATS JetStream.
//
// An ingest holds the upstream sockets and publishes every quote into one
// JetStream stream (Publisher, Ingest); edges read that stream with one
// ordered consumer each and mirror it into their in-memory relay.Broker,
// which serves REST, SSE and the page as in a single process (Edge). An
// event ID is <epoch>-<n> everywhere: n is the stream sequence and the
// epoch is the stream's identity (its creation time in Unix milliseconds,
// or a later value written into the stream's metadata when data loss was
// detected), so an ID means the same quote on every edge and across
// restarts of any process while the stream keeps it.
//
// Layout in NATS, for a stream named S (default WSRELAY_QUOTES) and a root
// r (S in lower case without a trailing "_quotes": "wsrelay"):
//
//	stream S, subjects r.q.>        one subject per symbol, r.q.<token>;
//	                                MaxMsgsPerSubject = history
//	KV r_symbols                    the desired symbol set: key <token>,
//	                                value {"upstream","ref"}
//	KV r_status                     the leader ingest's reports: s.<token>
//	                                per symbol, meta.upstreams
//	KV r_lease                      key "ingest": the leader ingest (bucket TTL)
//
// A token is the symbol with "." written "=2E" and ":" written "=3A"
// (Token): symbols may hold both, subjects split on "." and KV keys refuse
// ":", and "=" never occurs in a symbol, so the mapping is reversible.
//
// Each quote message carries the upstream frame's published JSON as its
// payload and the headers Wsrelay-Seq (the symbol's seq), Wsrelay-Prev (the
// stream sequence of the symbol's previous message, also the publish's
// expected-last-sequence-per-subject), Wsrelay-Received (RFC 3339) and,
// after the ingest had to drop quotes, Wsrelay-Lost; Nats-Msg-Id makes a
// retry idempotent.
package cluster
