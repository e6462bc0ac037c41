package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// The cluster mode measures wsrelay on NATS (issue 14): each part starts
// its own processes (a NATS server, run by this tool re-executing itself
// with -mode nats-serve so that its CPU and memory are its own, an
// ingest, edges), on loopback.
//
//	latency   p50/p99 upstream frame → SSE client, role all vs ingest → NATS → edge (first -steps step)
//	edges     deliveries/s of one edge vs two edges on separate CPUs (-edge-cpus "0;1"), RSS per process
//	warmup    time from an edge's start to /readyz 200 against streams of -warmup-sizes quotes
//	storm     -storm-clients SSE clients on edge A; A killed; time until all resumed on B; NATS and B CPU
//	failover  the leader ingest killed while a second runs: ms from the kill to the next quote on a client

// clusterParts are the parts of -cluster.
var clusterParts = []string{"latency", "edges", "warmup", "storm", "failover"}

type natsProc struct {
	cmd *exec.Cmd
	url string
	pid int
}

// startNATSProc runs a JetStream server in a child process (this binary
// with -mode nats-serve) with file storage in a temporary folder.
func startNATSProc(o options, stderr io.Writer) (*natsProc, func(), error) {
	dir, err := os.MkdirTemp("", "wsrelay-load-nats")
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(self, "-mode", "nats-serve", "-listen", addr, "-nats-store", dir)
	cmd.Stderr = stderr
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	if o.natsCPUs != "" {
		if err := pin(cmd.Process.Pid, o.natsCPUs); err != nil {
			cmd.Process.Kill()
			return nil, nil, err
		}
	}
	p := &natsProc{cmd: cmd, url: "nats://" + addr, pid: cmd.Process.Pid}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, errors.New("nats-serve did not listen within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// natsServe is the child process: a JetStream server until stdin closes.
func natsServe(addr, store string, stdin io.Reader) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(p)
	ns, err := server.NewServer(&server.Options{Host: host, Port: port, JetStream: true, StoreDir: store,
		JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 8 << 30, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats not ready")
	}
	io.Copy(io.Discard, stdin)
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

// cluster holds the processes of one measurement.
type cluster struct {
	o       options
	feedURL string
	symbols []string
	max     int
	stderr  io.Writer
	nats    *natsProc
	stops   []func()
}

func (c *cluster) close() {
	for i := len(c.stops) - 1; i >= 0; i-- {
		c.stops[i]()
	}
	c.stops = nil
}

func (c *cluster) startNATS() error {
	n, stop, err := startNATSProc(c.o, c.stderr)
	if err != nil {
		return err
	}
	c.nats = n
	c.stops = append(c.stops, stop)
	return nil
}

// start runs wsrelay with a role against the cluster's NATS, pinned to cpus.
func (c *cluster) start(ctx context.Context, role, cpus string) (*relayProc, error) {
	o := c.o
	o.relayCPUs = cpus
	o.relayArgs = []string{"-role", role, "-nats", c.nats.url}
	r, err := startRelay(ctx, o, c.feedURL, c.symbols, c.max, c.stderr)
	if err != nil {
		return nil, err
	}
	c.stops = append(c.stops, r.stop)
	return r, nil
}

func waitReady(ctx context.Context, base string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v", base, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func hostOf(base string) string { return strings.TrimPrefix(base, "http://") }

// sharedSource lets steps that run at once on several edges share the
// feed: the first SetRate(r>0) starts it, the last SetRate(0) stops it.
type sharedSource struct {
	mu  sync.Mutex
	src source
	on  int
}

func (s *sharedSource) SetRate(r float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r > 0 {
		if s.on == 0 {
			s.src.SetRate(r)
		}
		s.on++
		return
	}
	if s.on--; s.on <= 0 {
		s.on = 0
		s.src.SetRate(0)
	}
}
func (s *sharedSource) Sent() int64 { return s.src.Sent() }

func clusterRun(ctx context.Context, o options, feed *simfeed.Feed, feedURL string, stdout, stderr io.Writer) error {
	parts := map[string]bool{}
	for _, p := range strings.Split(o.clusterParts, ",") {
		p = strings.TrimSpace(p)
		if !contains(clusterParts, p) {
			return fmt.Errorf("-cluster: %q is not one of %s", p, strings.Join(clusterParts, ","))
		}
		parts[p] = true
	}
	c := &cluster{o: o, feedURL: feedURL, symbols: []string{o.symbol}, max: max(o.steps[0].clients, o.stormClients) + 200, stderr: stderr}
	defer c.close()
	st := o.steps[0]
	if parts["latency"] {
		feed.SetRate(0)
		r, err := startRelay(ctx, o, feedURL, c.symbols, c.max, stderr)
		if err != nil {
			return err
		}
		if err := liveAt(ctx, feed, r.url, c.symbols); err != nil {
			r.stop()
			return err
		}
		all := runStep(ctx, o, st, feed, func() { waitNoStreams(hostOf(r.url), 30*time.Second) }, hostOf(r.url), r.cmd.Process.Pid, readProc(r.cmd.Process.Pid), stderr)
		r.stop()
		if err := c.startNATS(); err != nil {
			return err
		}
		in, err := c.start(ctx, "ingest", o.ingestCPUs)
		if err != nil {
			return err
		}
		e, err := c.start(ctx, "edge", firstCPUs(o.edgeCPUs, 0))
		if err != nil {
			return err
		}
		if err := liveAt(ctx, feed, e.url, c.symbols); err != nil {
			return err
		}
		nb := readProc(c.nats.pid)
		ib := readProc(in.cmd.Process.Pid)
		nat := runStep(ctx, o, st, feed, func() { waitNoStreams(hostOf(e.url), 30*time.Second) }, hostOf(e.url), e.cmd.Process.Pid, readProc(e.cmd.Process.Pid), stderr)
		cpu := func(a, b procStat, d time.Duration) float64 {
			return float64(b.cpuTicks-a.cpuTicks) / clkTck / d.Seconds() * 100
		}
		fmt.Fprintf(stdout, "latency %d clients × %g/s: all p50 %.3f ms p99 %.3f ms | ingest→NATS→edge p50 %.3f ms p99 %.3f ms (hop +%.3f ms p50); lost %d/%d; CPU during the run: nats %.0f%%, ingest %.0f%%\n",
			st.clients, st.rate, all.P50ms, all.P99ms, nat.P50ms, nat.P99ms, nat.P50ms-all.P50ms, all.Lost, nat.Lost,
			cpu(nb, readProc(c.nats.pid), o.duration+o.settle), cpu(ib, readProc(in.cmd.Process.Pid), o.duration+o.settle))
		c.close()
	}
	if parts["edges"] {
		if err := measureEdges(ctx, c, feed, st, stdout); err != nil {
			return err
		}
		c.close()
	}
	if parts["warmup"] {
		if err := measureWarmup(ctx, c, stdout); err != nil {
			return err
		}
		c.close()
	}
	if parts["storm"] {
		if err := measureStorm(ctx, c, feed, stdout); err != nil {
			return err
		}
		c.close()
	}
	if parts["failover"] {
		if err := measureFailover(ctx, c, feed, stdout); err != nil {
			return err
		}
		c.close()
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// firstCPUs returns the i-th ";"-separated CPU list of s ("" when none).
func firstCPUs(s string, i int) string {
	parts := strings.Split(s, ";")
	if i < len(parts) {
		return strings.TrimSpace(parts[i])
	}
	return ""
}

// measureEdges: one edge with all clients, then two edges (separate CPUs)
// with half each, at the same rate: deliveries/s and RSS per process.
func measureEdges(ctx context.Context, c *cluster, feed *simfeed.Feed, st step, stdout io.Writer) error {
	feed.SetRate(0)
	if err := c.startNATS(); err != nil {
		return err
	}
	in, err := c.start(ctx, "ingest", c.o.ingestCPUs)
	if err != nil {
		return err
	}
	var edges []*relayProc
	for i := range 2 {
		e, err := c.start(ctx, "edge", firstCPUs(c.o.edgeCPUs, i))
		if err != nil {
			return err
		}
		if err := liveAt(ctx, feed, e.url, c.symbols); err != nil {
			return err
		}
		edges = append(edges, e)
	}
	one := runStep(ctx, c.o, st, feed, func() { waitNoStreams(hostOf(edges[0].url), 30*time.Second) }, hostOf(edges[0].url), edges[0].cmd.Process.Pid, readProc(edges[0].cmd.Process.Pid), c.stderr)
	shared := &sharedSource{src: feed}
	half := step{clients: max(1, st.clients/2), rate: st.rate, p99: st.p99}
	res := make([]stepResult, 2)
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = runStep(ctx, c.o, half, shared, func() { waitNoStreams(hostOf(e.url), 30*time.Second) }, hostOf(e.url), e.cmd.Process.Pid, readProc(e.cmd.Process.Pid), c.stderr)
		}()
	}
	wg.Wait()
	fmt.Fprintf(stdout, "edges %d clients × %g/s: one edge %.0f deliveries/s (p99 %.2f ms, lost %d) | two edges %.0f + %.0f = %.0f deliveries/s (p99 %.2f / %.2f ms, lost %d)\n",
		st.clients, st.rate, one.DeliveriesPerSec, one.P99ms, one.Lost, res[0].DeliveriesPerSec, res[1].DeliveriesPerSec,
		res[0].DeliveriesPerSec+res[1].DeliveriesPerSec, res[0].P99ms, res[1].P99ms, res[0].Lost+res[1].Lost)
	fmt.Fprintf(stdout, "rss MiB: nats %.1f, ingest %.1f, edge A %.1f, edge B %.1f\n", mib(readProc(c.nats.pid)), mib(readProc(in.cmd.Process.Pid)),
		mib(readProc(edges[0].cmd.Process.Pid)), mib(readProc(edges[1].cmd.Process.Pid)))
	return nil
}

func mib(p procStat) float64 { return float64(p.rssKiB) / 1024 }

// measureWarmup fills a stream with each size of quotes (spread over
// symbols of -relay-history quotes each) and times a new edge from its
// start to /readyz 200.
func measureWarmup(ctx context.Context, c *cluster, stdout io.Writer) error {
	for _, size := range c.o.warmupSizes {
		nsym := max(1, size/c.o.history)
		syms := make([]string, nsym)
		for i := range syms {
			syms[i] = fmt.Sprintf("%s%03d", c.o.symbol, i)
		}
		cc := *c
		cc.symbols, cc.stops = syms, nil
		if err := cc.startNATS(); err != nil {
			return err
		}
		in, err := cc.start(ctx, "ingest", c.o.ingestCPUs)
		if err != nil {
			cc.close()
			return err
		}
		if err := waitReady(ctx, in.url, 30*time.Second); err != nil {
			cc.close()
			return err
		}
		in.stop() // the tool writes the stream itself, as the ingest would
		start := time.Now()
		if err := fillStream(ctx, cc.nats.url, syms, size); err != nil {
			cc.close()
			return err
		}
		fill := time.Since(start)
		t0 := time.Now()
		e, err := cc.start(ctx, "edge", firstCPUs(c.o.edgeCPUs, 0))
		if err != nil {
			cc.close()
			return err
		}
		if err := waitReady(ctx, e.url, 5*time.Minute); err != nil {
			cc.close()
			return err
		}
		warm := time.Since(t0)
		fmt.Fprintf(stdout, "warmup %d quotes (%d symbols × %d): edge ready in %d ms (process start included); edge rss %.1f MiB; stream filled in %d ms\n",
			size, nsym, size/nsym, warm.Milliseconds(), mib(readProc(e.cmd.Process.Pid)), fill.Milliseconds())
		cc.close()
	}
	return nil
}

// fillStream publishes size quotes, in order per symbol, with the headers
// an ingest writes (seq, prev, received), as several writers at once.
func fillStream(ctx context.Context, url string, syms []string, size int) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	per := size / len(syms)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	data := []byte(`{"group":"QuoteBin5m:X","data":[{"close":"55.59","last_price":"55.59","volume":"40078","timestamp":1551941701,"n":1,"sent_ns":0}]}`)
	for _, sym := range syms {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var prev uint64
			for seq := 1; seq <= per; seq++ {
				m := nats.NewMsg("wsrelay.q." + sym)
				m.Data = data
				m.Header.Set("Wsrelay-Seq", strconv.Itoa(seq))
				m.Header.Set("Wsrelay-Prev", strconv.FormatUint(prev, 10))
				m.Header.Set("Wsrelay-Received", time.Now().UTC().Format(time.RFC3339Nano))
				ack, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(prev))
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				prev = ack.Sequence
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// liveAt feeds at a low rate until the relay at url has every symbol's
// quote, then stops the feed (a step starts from a quiet feed).
func liveAt(ctx context.Context, feed *simfeed.Feed, url string, symbols []string) error {
	feed.SetRate(20)
	defer feed.SetRate(0)
	return waitLive(ctx, url, symbols)
}
