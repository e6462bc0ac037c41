// Package sitefake holds the test sites of wsrelay's framings: a real
// Socket.IO server (the npm package socket.io, run by Node from
// testdata/node) and a strict Go fake of an ASP.NET Core SignalR hub, proven
// against the official JavaScript client (@microsoft/signalr) in this
// package's tests. Both serve quotes with a per-symbol sequence number so
// that a test can prove nothing was lost. It is test infrastructure, like
// simfeed and faultnet: tests in other packages (the relay, import and
// probe) start these sites on 127.0.0.1.
//
// The Node parts need `npm ci --prefix relay/sitefake/testdata/node` (CI runs
// it in .ci/run); without it, RequireNode skips a test on a developer's
// machine and fails it when the CI environment variable is set.
package sitefake
