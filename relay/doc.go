// Package relay holds wsrelay's upstream side and its broker: one WebSocket
// connection per subscribed symbol (dial, subscribe, read, ping, reconnect),
// the pure frame rules that turn upstream frames into quotes, and the
// in-memory broker that keeps the latest quote, a history ring and the
// subscribers of every symbol.
//
// The package knows nothing of HTTP serving, SSE or flags; the api package
// and the command build on it.
package relay
