package api

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// The SSE wire format: what a stream's bytes are.
//
//	retry: 2000                    (first, once)
//
//	id: <id>                       (quotes only)
//	event: quote|status|reset
//	data: <json>
//
//	: keepalive                    (idle streams)

// keepalive is the comment sent on idle streams.
var keepalive = []byte(": keepalive\n\n")

// sseFrame builds the SSE frame of an event. Event data never holds a line
// break (the broker compacts upstream JSON); should one appear anyway, each
// line becomes its own data: field, so no input can break the framing.
func sseFrame(e *relay.Event) []byte {
	b := make([]byte, 0, len(e.JSON)+64)
	switch e.Kind {
	case relay.KindQuote:
		b = append(b, "id: "...)
		b = e.ID.Append(b)
		b = append(b, "\nevent: quote\n"...)
	case relay.KindStatus:
		b = append(b, "event: status\n"...)
	case relay.KindReset:
		b = append(b, "event: reset\n"...)
	}
	return appendData(b, e.JSON)
}

// appendData writes data as one data: line per line of data.
func appendData(b, data []byte) []byte {
	for {
		i := bytes.IndexAny(data, "\r\n")
		b = append(b, "data: "...)
		if i < 0 {
			b = append(b, data...)
			return append(b, "\n\n"...)
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// appendFrames appends the SSE frames of batch to dst. Each event's frame
// is built once, by the first stream that sends it, and kept with the
// event for every other stream (relay.Event.Encoded).
func appendFrames(dst []byte, batch []*relay.Event) []byte {
	for _, ev := range batch {
		dst = append(dst, ev.Encoded(sseFrame)...)
	}
	return dst
}

// retryField is the first thing a stream sends: how long EventSource
// waits before it reconnects.
func retryField(retry time.Duration) []byte {
	b := append(make([]byte, 0, 32), "retry: "...)
	b = strconv.AppendInt(b, retry.Milliseconds(), 10)
	return append(b, "\n\n"...)
}

// setStreamHeaders sets the headers of every stream response.
func setStreamHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}

// appendResponseHead writes the status line and headers of a hijacked
// stream, whose body then lasts until the connection closes.
func appendResponseHead(b []byte, h http.Header) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}
