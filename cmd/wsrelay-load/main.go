// Command wsrelay-load measures wsrelay under load. It plays the exchange
// (the simulated feed, holding an exact rate of padded quotes that carry
// their send time), starts the relay as a separate process or targets a
// running one, and for each step of a ladder opens N SSE clients and
// reports deliveries per second, end-to-end latency percentiles, lost,
// duplicated and out-of-order deliveries, disconnects, and the relay's CPU,
// RSS per client and write syscalls per delivery, with PASS or FAIL.
//
//	wsrelay-load -relay-bin ./wsrelay -steps 1000:400:30ms,5000:40:100ms,10000:10:100ms
//	wsrelay-load -relay-bin ./wsrelay -mode rest -concurrency 64 -duration 10s
//	wsrelay-load -relay-bin ./wsrelay -mode soak -duration 10m
//	wsrelay-load -relay-bin ./wsrelay -mode cluster -steps 1000:400:30ms -edge-cpus "0;1"
//
// It talks to loopback addresses only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsrelay/wsrelay/relay/faultnet"
	"github.com/wsrelay/wsrelay/relay/simfeed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsrelay-load:", err)
		var f *failedError
		if errors.As(err, &f) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

// failedError means the run completed but a step failed its bounds.
type failedError struct{ steps int }

func (e *failedError) Error() string { return fmt.Sprintf("%d step(s) FAILED", e.steps) }

type options struct {
	mode        string
	relayBin    string
	target      string
	pid         int
	steps       []step
	duration    time.Duration
	settle      time.Duration
	size        int
	symbol      string
	concurrency int
	restP99     time.Duration
	jsonOut     bool
	relayCPUs   string
	loadCPUs    string
	relayProcs  int
	goReaders   bool
	listen      string
	// soak
	soakClients int
	soakSymbols int
	soakRate    float64
	sample      time.Duration
	debugListen string
	history     int
	// cluster (cluster.go)
	clusterParts string
	edgeCPUs     string
	ingestCPUs   string
	natsCPUs     string
	natsStore    string
	warmupSizes  []int
	stormClients int
	failovers    int
	relayArgs    []string // extra serve arguments of a started relay
}

type step struct {
	clients int
	rate    float64
	p99     time.Duration
}

func parseSteps(s string) ([]step, error) {
	var out []step
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("-steps: %q is not CLIENTS:RATE:P99 (e.g. 1000:400:30ms)", part)
		}
		n, err1 := strconv.Atoi(f[0])
		r, err2 := strconv.ParseFloat(f[1], 64)
		p, err3 := time.ParseDuration(f[2])
		if err1 != nil || err2 != nil || err3 != nil || n < 1 || n > 50000 || r <= 0 || r > 100000 || p <= 0 {
			return nil, fmt.Errorf("-steps: %q is not CLIENTS(1-50000):RATE(>0):P99", part)
		}
		out = append(out, step{clients: n, rate: r, p99: p})
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsrelay-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var steps string
	fs.StringVar(&o.mode, "mode", "fanout", "fanout (SSE rate ladder), cluster (roles on NATS: -cluster parts), floor (the same ladder against a bare socket writer, no relay), rest-floor (serve a bare net/http quote endpoint on -listen for -duration, for wrk), rest (GET /v1/quotes/{symbol}) or soak (long mixed run with faults)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8090", "rest-floor: loopback address to serve on")
	fs.StringVar(&o.relayBin, "relay-bin", "", "start this wsrelay binary against the tool's feed")
	fs.StringVar(&o.target, "target", "", "or measure a running relay at this loopback URL (configured with -feed-addr as its upstream)")
	fs.IntVar(&o.pid, "pid", 0, "with -target: the relay's pid, for CPU, RSS and syscall figures")
	fs.StringVar(&steps, "steps", "1000:400:30ms,5000:40:100ms,10000:10:100ms", "fanout ladder: CLIENTS:RATE:P99,...")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each step (or of the rest run, or of the soak)")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait after each step for deliveries in flight")
	fs.IntVar(&o.size, "size", 250, "bytes per upstream quote frame")
	fs.StringVar(&o.symbol, "symbol", "LOAD", "symbol to publish")
	fs.IntVar(&o.concurrency, "concurrency", 64, "rest: connections")
	fs.DurationVar(&o.restP99, "rest-p99", 5*time.Millisecond, "rest: p99 bound")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object per step")
	fs.StringVar(&o.relayCPUs, "relay-cpus", "", "pin the started relay to these CPUs (e.g. 0)")
	fs.StringVar(&o.loadCPUs, "load-cpus", "", "pin this tool to these CPUs (e.g. 1)")
	fs.IntVar(&o.relayProcs, "relay-procs", 0, "GOMAXPROCS of the started relay (0: Go's default)")
	fs.BoolVar(&o.goReaders, "go-readers", false, "fanout: read each client with a goroutine instead of epoll loops")
	fs.IntVar(&o.soakClients, "soak-clients", 2000, "soak: SSE clients")
	fs.IntVar(&o.soakSymbols, "soak-symbols", 20, "soak: symbols")
	fs.Float64Var(&o.soakRate, "soak-rate", 10, "soak: quotes per second per symbol")
	fs.IntVar(&o.history, "relay-history", 1024, "started relay: history per symbol")
	fs.StringVar(&o.debugListen, "relay-pprof", "", "started relay: serve pprof on this loopback address")
	fs.DurationVar(&o.sample, "sample", 10*time.Second, "soak: sampling interval")
	fs.StringVar(&o.clusterParts, "cluster", strings.Join(clusterParts, ","), "cluster: the parts to run ("+strings.Join(clusterParts, ",")+")")
	fs.StringVar(&o.edgeCPUs, "edge-cpus", "", `cluster: CPU lists of edge A and B, ";"-separated (e.g. "0;1")`)
	fs.StringVar(&o.ingestCPUs, "ingest-cpus", "", "cluster: pin the ingests to these CPUs")
	fs.StringVar(&o.natsCPUs, "nats-cpus", "", "cluster: pin the NATS server to these CPUs")
	fs.StringVar(&o.natsStore, "nats-store", "", "nats-serve: the JetStream store folder")
	warmup := fs.String("warmup-sizes", "10000,100000", "cluster warmup: stream sizes (quotes)")
	fs.IntVar(&o.stormClients, "storm-clients", 10000, "cluster storm: SSE clients moved from a killed edge")
	fs.IntVar(&o.failovers, "failovers", 3, "cluster failover: leader kills")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var err error
	if o.steps, err = parseSteps(steps); err != nil {
		return err
	}
	for _, w := range strings.Split(*warmup, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 || n > 10_000_000 {
			return fmt.Errorf("-warmup-sizes: %q is not a count of quotes", w)
		}
		o.warmupSizes = append(o.warmupSizes, n)
	}
	if o.stormClients < 1 || o.stormClients > 50000 || o.failovers < 1 {
		return errors.New("-storm-clients: 1 to 50000; -failovers: at least 1")
	}
	if o.size < 100 || o.size > 1<<20 {
		return errors.New("-size: 100 bytes to 1 MiB")
	}
	switch o.mode {
	case "floor-serve": // the floor mode's server process
		return floorServe(o.size, os.Stdin, stdout)
	case "floor":
		return floorLadder(ctx, o, stdout, stderr)
	case "rest-floor":
		return restFloor(ctx, o, stderr)
	case "nats-serve": // the cluster mode's NATS server process
		return natsServe(o.listen, o.natsStore, os.Stdin)
	}
	if (o.relayBin == "") == (o.target == "") {
		return errors.New("give either -relay-bin (start a relay) or -target (a running one)")
	}
	if o.target != "" {
		u, err := url.Parse(o.target)
		if err != nil || !isLoopback(u.Hostname()) {
			return fmt.Errorf("-target: %q is not a loopback http URL", o.target)
		}
	}
	if o.duration <= 0 || o.duration > 24*time.Hour {
		return errors.New("-duration: above 0 and at most 24h")
	}
	raiseNoFile()
	if o.loadCPUs != "" {
		if err := pin(0, o.loadCPUs); err != nil {
			return fmt.Errorf("-load-cpus: %w", err)
		}
	}

	feed := simfeed.New(simfeed.Config{Rate: 20, Pad: o.size})
	defer feed.Close()
	feedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	feedSrv := &http.Server{Handler: feed, ReadHeaderTimeout: 5 * time.Second}
	go feedSrv.Serve(feedLn)
	defer feedSrv.Close()
	feedURL := "ws://" + feedLn.Addr().String() + "/"
	var proxy *faultnet.Proxy
	if o.mode == "soak" {
		// Upstream faults are injected between the relay and the feed.
		if proxy, err = faultnet.NewProxy(feedLn.Addr().String()); err != nil {
			return err
		}
		defer proxy.Close()
		feedURL = "ws://" + proxy.Addr() + "/"
	}

	symbols := []string{o.symbol}
	if o.mode == "soak" {
		symbols = nil
		for i := range o.soakSymbols {
			symbols = append(symbols, fmt.Sprintf("%s%02d", o.symbol, i))
		}
	}
	maxClients := 100
	for _, s := range o.steps {
		maxClients = max(maxClients, s.clients+100)
	}
	maxClients = max(maxClients, o.soakClients+100)

	if o.mode == "cluster" {
		if o.relayBin == "" {
			return errors.New("-mode cluster needs -relay-bin")
		}
		return clusterRun(ctx, o, feed, feedURL, stdout, stderr)
	}
	target, pid := o.target, o.pid
	if o.relayBin != "" {
		r, err := startRelay(ctx, o, feedURL, symbols, maxClients, stderr)
		if err != nil {
			return err
		}
		defer r.stop()
		target, pid = r.url, r.cmd.Process.Pid
	}
	base, _ := url.Parse(target)
	if err := waitLive(ctx, target, symbols); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "feed %s, relay %s (pid %d)\n", feedURL, target, pid)

	switch o.mode {
	case "fanout":
		return fanout(ctx, o, feed, func() { waitNoStreams(base.Host, 30*time.Second) }, base.Host, pid, stdout, stderr)
	case "rest":
		feed.SetRate(10)
		return restLoad(ctx, o, base.Host, pid, stdout)
	case "soak":
		return soak(ctx, o, feed, proxy, base.Host, pid, symbols, stdout, stderr)
	}
	return fmt.Errorf("-mode: %q is not fanout, floor, rest or soak", o.mode)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// raiseNoFile lifts the open-file limit to its hard maximum (10 000
// clients need it, here and in the relay, which inherits it).
func raiseNoFile() {
	var l unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &l)
	}
}

func pin(pid int, cpus string) error {
	var set unix.CPUSet
	for _, c := range strings.Split(cpus, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("%q is not a CPU list", cpus)
		}
		set.Set(n)
	}
	return unix.SchedSetaffinity(pid, &set)
}

type relayProc struct {
	cmd      *exec.Cmd
	url      string
	done     chan error
	stopOnce sync.Once
}

// startRelay runs the wsrelay binary on a free loopback port with a config
// pointing at the feed.
func startRelay(ctx context.Context, o options, feedURL string, symbols []string, maxClients int, stderr io.Writer) (*relayProc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "wsrelay-load")
	if err != nil {
		return nil, err
	}
	quoted := make([]string, len(symbols))
	for i, s := range symbols {
		quoted[i] = strconv.Quote(s)
	}
	debug := ""
	if o.debugListen != "" {
		debug = fmt.Sprintf("debug_listen: %q\n", o.debugListen)
	}
	cfg := debug + fmt.Sprintf(`listen: %q
history: %d
log_level: warn
log_format: json
sse: {queue: 4096, max_clients: %d, heartbeat: 15s, write_timeout: 10s}
upstreams:
  - name: load
    url: %q
    subscribe: '{"action":"subscribe","args":["QuoteBin5m:{symbol}"]}'
    unsubscribe: '{"action":"unsubscribe","args":["QuoteBin5m:{symbol}"]}'
    accept: /data
    symbols: [%s]
    stale_after: 1h
    ping_interval: 2s
    ping_timeout: 2s
    backoff: {min: 50ms, max: 1s}
`, addr, o.history, maxClients, feedURL, strings.Join(quoted, ", "))
	path := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.relayBin, append([]string{"serve", "-config", path}, o.relayArgs...)...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Env = os.Environ()
	if o.relayProcs > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", o.relayProcs))
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.relayBin, err)
	}
	if o.relayCPUs != "" {
		if err := pin(cmd.Process.Pid, o.relayCPUs); err != nil {
			cmd.Process.Kill()
			return nil, fmt.Errorf("-relay-cpus: %w", err)
		}
	}
	r := &relayProc{cmd: cmd, url: "http://" + addr, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait(); os.RemoveAll(dir) }()
	return r, nil
}

// stop ends the relay with SIGTERM (SIGKILL after 10 s); idempotent.
func (r *relayProc) stop() {
	r.stopOnce.Do(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
	})
}

// waitLive waits until every symbol has a quote.
func waitLive(ctx context.Context, target string, symbols []string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, s := range symbols {
			resp, err := http.Get(target + "/v1/quotes/" + s)
			if err != nil || resp.StatusCode != 200 {
				ok = false
			}
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if !ok {
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the relay at %s has no quotes after 20s", target)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
