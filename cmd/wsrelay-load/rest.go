package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type restResult struct {
	Concurrency     int     `json:"concurrency"`
	Requests        int64   `json:"requests"`
	Errors          int64   `json:"errors"`
	RequestsPerSec  float64 `json:"requests_per_sec"`
	P50ms           float64 `json:"p50_ms"`
	P90ms           float64 `json:"p90_ms"`
	P99ms           float64 `json:"p99_ms"`
	P999ms          float64 `json:"p999_ms"`
	Maxms           float64 `json:"max_ms"`
	RelayCPUPercent float64 `json:"relay_cpu_percent"`
	Pass            bool    `json:"pass"`
}

// restLoad hammers GET /v1/quotes/{symbol} over keep-alive connections
// with a lean HTTP/1.1 client, so that the relay, not the client, is
// measured.
func restLoad(ctx context.Context, o options, addr string, pid int, stdout io.Writer) error {
	req := []byte(fmt.Sprintf("GET /v1/quotes/%s HTTP/1.1\r\nHost: %s\r\n\r\n", o.symbol, addr))
	var lat sharded
	var reqs, errs atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	p0 := readProc(pid)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			for ctx.Err() == nil {
				if conn == nil {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						errs.Add(1)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					conn, br = c, bufio.NewReaderSize(c, 4096)
				}
				t0 := time.Now()
				conn.SetDeadline(t0.Add(5 * time.Second))
				_, err := conn.Write(req)
				status := 0
				if err == nil {
					status, err = readResponse(br)
				}
				if err != nil || status != 200 {
					errs.Add(1)
					conn.Close()
					conn = nil
					continue
				}
				lat.add(w, time.Since(t0).Nanoseconds())
				reqs.Add(1)
			}
			if conn != nil {
				conn.Close()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	p1 := readProc(pid)
	_, q, mx := lat.summary(0.5, 0.9, 0.99, 0.999)
	r := restResult{Concurrency: o.concurrency, Requests: reqs.Load(), Errors: errs.Load(),
		RequestsPerSec: float64(reqs.Load()) / elapsed.Seconds(),
		P50ms:          ms(q[0]), P90ms: ms(q[1]), P99ms: ms(q[2]), P999ms: ms(q[3]), Maxms: ms(mx)}
	if p0.ok && p1.ok {
		r.RelayCPUPercent = float64(p1.cpuTicks-p0.cpuTicks) / clkTck / elapsed.Seconds() * 100
	}
	r.Pass = r.Errors == 0 && r.P99ms < ms(o.restP99)
	if o.jsonOut {
		b, _ := json.Marshal(r)
		fmt.Fprintln(stdout, string(b))
	} else {
		verdict := "PASS"
		if !r.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(stdout, "GET /v1/quotes/%s  conns=%d  %.0f req/s  p50=%.3fms p90=%.3fms p99=%.3fms p99.9=%.3fms max=%.2fms  errors=%d  relay cpu=%.0f%%  %s (p99 < %s)\n",
			o.symbol, r.Concurrency, r.RequestsPerSec, r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.Maxms, r.Errors, r.RelayCPUPercent, verdict, o.restP99)
	}
	if !r.Pass {
		return &failedError{steps: 1}
	}
	return nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length body and
// returns its status, allocating nothing in the common case.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status := int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && (h[0] == 'C' || h[0] == 'c') && bytes.EqualFold(h[:15], []byte("Content-Length:")) {
			length = 0
			for _, c := range bytes.TrimSpace(h[15:]) {
				length = length*10 + int(c-'0')
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := br.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}
