package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// sseClient is one raw SSE reader: HTTP/1.1 over a plain TCP connection,
// with nothing per event but a scan for seq and sent_ns.
type sseClient struct {
	id    int
	conn  net.Conn
	fd    int    // with the epoll reader: the socket
	carry []byte // with the epoll reader: a line not yet complete

	// Counters of the current step, reset between steps.
	received atomic.Int64
	firstSeq atomic.Int64
	lastSeq  atomic.Int64
	gaps     atomic.Int64 // quotes missing between two received ones
	dups     atomic.Int64
	ooo      atomic.Int64
	ended    atomic.Bool // the stream ended or failed
	err      atomic.Pointer[string]
}

func (c *sseClient) resetStep() {
	c.received.Store(0)
	c.firstSeq.Store(0)
	c.lastSeq.Store(0)
	c.gaps.Store(0)
	c.dups.Store(0)
	c.ooo.Store(0)
}

// dialSSE opens the stream and reads up to the retry: field. When the body
// is simply the rest of the connection (no chunking, no length: how wsrelay
// serves HTTP/1 streams), raw is true and body reads the connection
// directly, so the epoll reader may take the socket over.
func dialSSE(ctx context.Context, addr, path string) (conn net.Conn, body *bufio.Reader, raw bool, err error) {
	var d net.Dialer
	conn, err = d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, false, err
	}
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr); err != nil {
		conn.Close()
		return nil, nil, false, err
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, false, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		conn.Close()
		return nil, nil, false, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	raw = resp.ContentLength < 0 && len(resp.TransferEncoding) == 0
	if raw {
		body = br
	} else {
		body = bufio.NewReaderSize(resp.Body, 8192)
	}
	if _, err := body.ReadSlice('\n'); err != nil { // retry:
		conn.Close()
		return nil, nil, false, err
	}
	conn.SetDeadline(time.Time{})
	return conn, body, raw, nil
}

var (
	seqKey  = []byte(`"seq":`)
	sentKey = []byte(`"sent_ns":`)
)

// read consumes the stream until it ends, recording every quote.
func (c *sseClient) read(body *bufio.Reader, lat *sharded) {
	defer c.ended.Store(true)
	for {
		line, err := body.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				continue // a long line: only its head matters, and it is read on
			}
			c.fail(err)
			return
		}
		c.line(line, lat)
	}
}

func (c *sseClient) fail(err error) {
	msg := err.Error()
	c.err.Store(&msg)
}

// feed hands the complete lines of b (after what is carried over from the
// last call) to line, and carries the incomplete rest.
func (c *sseClient) feed(b []byte, lat *sharded) {
	if len(c.carry) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.carry = append(c.carry, b...)
			return
		}
		c.carry = append(c.carry, b[:i+1]...)
		c.line(c.carry, lat)
		c.carry = c.carry[:0]
		b = b[i+1:]
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.carry = append(c.carry, b...)
			return
		}
		c.line(b[:i+1], lat)
		b = b[i+1:]
	}
}

// line records the quote a data: line carries, if any.
func (c *sseClient) line(line []byte, lat *sharded) {
	if len(line) < 7 || line[0] != 'd' || !bytes.HasPrefix(line, []byte("data: ")) {
		return
	}
	now := time.Now().UnixNano()
	seq := intAfter(line, seqKey)
	if seq <= 0 {
		return // a status event
	}
	if sent := intAfter(line, sentKey); sent > 0 {
		lat.add(c.id, now-sent)
	}
	c.received.Add(1)
	last := c.lastSeq.Load()
	switch {
	case last == 0:
		c.firstSeq.Store(seq)
	case seq == last+1:
	case seq > last+1:
		c.gaps.Add(seq - last - 1)
	case seq == last:
		c.dups.Add(1)
		return
	default:
		c.ooo.Add(1)
		return
	}
	c.lastSeq.Store(seq)
}

// intAfter parses the decimal integer that follows key in b (0 if none).
func intAfter(b, key []byte) int64 {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0
	}
	var n int64
	for _, ch := range b[i+len(key):] {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int64(ch-'0')
	}
	return n
}
