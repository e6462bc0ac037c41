package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// The cluster mode's fault measurements: a resume storm from a killed
// edge and the fail-over gap of the ingests.

// measureStorm: N clients on edge A, A killed, every client resumes on B
// with its Last-Event-ID; time until all have an event from B, resets
// counted, and the CPU of NATS and B meanwhile (resume is served from B's
// memory: NATS should stay flat).
func measureStorm(ctx context.Context, c *cluster, feed *simfeed.Feed, stdout io.Writer) error {
	feed.SetRate(0)
	if err := c.startNATS(); err != nil {
		return err
	}
	if _, err := c.start(ctx, "ingest", c.o.ingestCPUs); err != nil {
		return err
	}
	a, err := c.start(ctx, "edge", firstCPUs(c.o.edgeCPUs, 0))
	if err != nil {
		return err
	}
	b, err := c.start(ctx, "edge", firstCPUs(c.o.edgeCPUs, 1))
	if err != nil {
		return err
	}
	for _, e := range []*relayProc{a, b} {
		if err := liveAt(ctx, feed, e.url, c.symbols); err != nil {
			return err
		}
	}
	feed.SetRate(c.o.steps[0].rate)
	defer feed.SetRate(0)
	n := c.o.stormClients
	type client struct {
		lastID  atomic.Pointer[string]
		resumed atomic.Int64 // unix ns of the first event from B
		reset   atomic.Bool
	}
	clients := make([]*client, n)
	var connected, done sync.WaitGroup
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, 256)
	path := "/v1/stream?symbols=" + c.o.symbol
	for i := range clients {
		cl := &client{}
		clients[i] = cl
		connected.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			sem <- struct{}{}
			readUntil(sctx, hostOf(a.url), path, "", func(id string) bool { cl.lastID.Store(&id); return true }, func() { <-sem; connected.Done() }, nil)
			// A is gone: resume on B.
			last := ""
			if p := cl.lastID.Load(); p != nil {
				last = *p
			}
			readUntil(sctx, hostOf(b.url), path, last, func(string) bool {
				cl.resumed.CompareAndSwap(0, time.Now().UnixNano())
				return false
			}, nil, func() { cl.reset.Store(true) })
		}()
	}
	connected.Wait()
	time.Sleep(time.Second) // every client has an ID
	nb, bb := readProc(c.nats.pid), readProc(b.cmd.Process.Pid)
	killed := time.Now()
	a.cmd.Process.Signal(syscall.SIGKILL)
	allDone := make(chan struct{})
	go func() { done.Wait(); close(allDone) }()
	select {
	case <-allDone:
	case <-time.After(2 * time.Minute):
		cancel()
		<-allDone
	}
	elapsed := time.Since(killed)
	var last int64
	resumed, resets := 0, 0
	for _, cl := range clients {
		if t := cl.resumed.Load(); t != 0 {
			resumed++
			last = max(last, t)
		}
		if cl.reset.Load() {
			resets++
		}
	}
	cpu := func(a, b procStat) float64 { return float64(b.cpuTicks-a.cpuTicks) / clkTck / elapsed.Seconds() * 100 }
	fmt.Fprintf(stdout, "storm %d clients moved from a killed edge: %d resumed (%d with reset) in %d ms; CPU meanwhile: nats %.0f%%, edge B %.0f%%; rss edge B %.1f MiB, nats %.1f MiB\n",
		n, resumed, resets, time.Duration(last-killed.UnixNano()).Milliseconds(), cpu(nb, readProc(c.nats.pid)), cpu(bb, readProc(b.cmd.Process.Pid)),
		mib(readProc(b.cmd.Process.Pid)), mib(readProc(c.nats.pid)))
	return nil
}

// readUntil reads one SSE stream: onID gets each quote's ID and says
// whether to go on; connected runs once the response has begun; onReset
// when a reset event comes. It returns when the stream ends or onID says
// stop.
func readUntil(ctx context.Context, addr, path, lastID string, onID func(string) bool, connected, onReset func()) {
	once := sync.Once{}
	defer once.Do(func() {
		if connected != nil {
			connected()
		}
	})
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	hdr := ""
	if lastID != "" {
		hdr = "Last-Event-ID: " + lastID + "\r\n"
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s\r\n", path, addr, hdr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		return
	}
	once.Do(func() {
		if connected != nil {
			connected()
		}
	})
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		switch {
		case strings.HasPrefix(line, "event: reset") && onReset != nil:
			onReset()
		case strings.HasPrefix(line, "id: "):
			if !onID(strings.TrimSpace(line[4:])) {
				return
			}
		}
	}
}

// measureFailover: two ingests, an edge and one client; the leader is
// killed -failovers times; each time, the ms from the kill to the next
// quote on the client.
func measureFailover(ctx context.Context, c *cluster, feed *simfeed.Feed, stdout io.Writer) error {
	feed.SetRate(0)
	if err := c.startNATS(); err != nil {
		return err
	}
	var ingests []*relayProc
	for range 2 {
		in, err := c.start(ctx, "ingest", c.o.ingestCPUs)
		if err != nil {
			return err
		}
		if err := waitReady(ctx, in.url, 30*time.Second); err != nil {
			return err
		}
		ingests = append(ingests, in)
	}
	e, err := c.start(ctx, "edge", firstCPUs(c.o.edgeCPUs, 0))
	if err != nil {
		return err
	}
	if err := liveAt(ctx, feed, e.url, c.symbols); err != nil {
		return err
	}
	feed.SetRate(max(c.o.steps[0].rate, 50))
	defer feed.SetRate(0)
	var lastQuote atomic.Int64
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go readUntil(sctx, hostOf(e.url), "/v1/stream?symbols="+c.o.symbol, "", func(string) bool {
		lastQuote.Store(time.Now().UnixNano())
		return true
	}, nil, nil)
	for round := range c.o.failovers {
		time.Sleep(2 * time.Second)
		var leader *relayProc
		for _, in := range ingests {
			if resp, err := http.Get(in.url + "/readyz"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), `"leader"`) {
					leader = in
				}
			}
		}
		if leader == nil {
			return errors.New("failover: no leader ingest")
		}
		killed := time.Now()
		leader.cmd.Process.Signal(syscall.SIGKILL)
		for lastQuote.Load() < killed.UnixNano()+int64(time.Millisecond) {
			if time.Since(killed) > time.Minute {
				return errors.New("failover: no quote within a minute")
			}
			time.Sleep(time.Millisecond)
		}
		gap := time.Duration(lastQuote.Load() - killed.UnixNano())
		fmt.Fprintf(stdout, "failover %d: next quote %d ms after the SIGKILL of the leader ingest\n", round+1, gap.Milliseconds())
		// Replace the killed ingest (it becomes the standby).
		for i, in := range ingests {
			if in == leader {
				n, err := c.start(ctx, "ingest", c.o.ingestCPUs)
				if err != nil {
					return err
				}
				ingests[i] = n
			}
		}
	}
	return nil
}
