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
	id   int
	conn net.Conn

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

// dialSSE opens the stream and reads up to the retry: field.
func dialSSE(ctx context.Context, addr, path string) (net.Conn, *bufio.Reader, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		conn.Close()
		return nil, nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	body := bufio.NewReaderSize(resp.Body, 8192)
	if _, err := body.ReadSlice('\n'); err != nil { // retry:
		conn.Close()
		return nil, nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, body, nil
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
			msg := err.Error()
			c.err.Store(&msg)
			return
		}
		if len(line) < 7 || line[0] != 'd' || !bytes.HasPrefix(line, []byte("data: ")) {
			continue
		}
		now := time.Now().UnixNano()
		seq := intAfter(line, seqKey)
		if seq <= 0 {
			continue // a status event
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
			continue
		default:
			c.ooo.Add(1)
			continue
		}
		c.lastSeq.Store(seq)
	}
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
