// Package api serves wsrelay's HTTP surface on top of the relay package:
// REST quotes and history, multiplexed Server-Sent Events with exact
// resume, admin endpoints, health, Prometheus metrics and the OpenAPI
// document.
//
// Server (server.go) is wiring: config.go holds its Config and defaults,
// routes.go the whole surface. Requests: rest.go (quotes, history, with
// quotecache.go building each quote's REST response once), symbols.go,
// admin.go, health.go; cors.go, clientaddr.go (the address the limits
// count, computed once per request), middleware.go, params.go, and
// errors.go, which maps every error to a status and a stable code.
//
// Streams: stream.go checks a request, admits it (admission.go), subscribes
// to the broker and hands the stream to the writer pool (pool.go), which
// delivers every stream from a few goroutines: poolstream.go runs one
// stream, ssewire.go frames its events, streamconn.go writes them to a
// hijacked socket or an HTTP/2 response, disconnect.go says why a stream
// ended.
package api
