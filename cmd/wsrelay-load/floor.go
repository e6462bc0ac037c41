package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The floor mode answers "is the relay the limit, or the machine?". It runs
// the same ladder, with the same clients and accounting, against a bare SSE
// server in its own process that does nothing but write each quote frame
// to every connection: one writer goroutine per CPU, a non-blocking write
// syscall per connection (a blocking write only when a socket is full), no
// broker, no queue, no HTTP, no parsing. What the relay adds on top of that floor
// is what the relay costs.

// floorFrameOverhead is what the relay's SSE frame adds to an upstream
// quote frame (id and event lines, data: prefix, the relay's own fields).
const floorFrameOverhead = 160

// floorSource drives the floor server (a child process) over its stdin:
// "rate R", "sent" and "streams", one line each, one answer line each.
type floorSource struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	mu   sync.Mutex
	addr string
}

func startFloor(ctx context.Context, o options, stderr io.Writer) (*floorSource, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-mode", "floor-serve", "-size", strconv.Itoa(o.size))
	cmd.Stderr = stderr
	if o.relayProcs > 0 {
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", o.relayProcs))
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if o.relayCPUs != "" {
		if err := pin(cmd.Process.Pid, o.relayCPUs); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("-relay-cpus: %w", err)
		}
	}
	f := &floorSource{cmd: cmd, in: in, out: bufio.NewReader(out)}
	line, err := f.out.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr ")
	if err != nil || !ok {
		f.stop()
		return nil, fmt.Errorf("floor server: %q, %v", line, err)
	}
	f.addr = addr
	return f, nil
}

func (f *floorSource) ask(cmd string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := fmt.Fprintln(f.in, cmd); err != nil {
		return -1
	}
	line, err := f.out.ReadString('\n')
	if err != nil {
		return -1
	}
	f2 := strings.Fields(line)
	if len(f2) != 2 {
		return -1
	}
	n, err := strconv.ParseInt(f2[1], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (f *floorSource) SetRate(r float64) { f.ask("rate " + strconv.FormatFloat(r, 'g', -1, 64)) }
func (f *floorSource) Sent() int64       { return f.ask("sent") }

// waitIdle waits until the floor server has let go of every stream.
func (f *floorSource) waitIdle(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && f.ask("streams") > 0 {
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *floorSource) stop() {
	f.in.Close() // the server exits at the end of its input
	done := make(chan struct{})
	go func() { f.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		f.cmd.Process.Kill()
		<-done
	}
}

// floorLadder runs the fanout ladder against the floor server.
func floorLadder(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if o.duration <= 0 || o.duration > 24*time.Hour {
		return errors.New("-duration: above 0 and at most 24h")
	}
	raiseNoFile()
	if o.loadCPUs != "" {
		if err := pin(0, o.loadCPUs); err != nil {
			return fmt.Errorf("-load-cpus: %w", err)
		}
	}
	f, err := startFloor(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer f.stop()
	fmt.Fprintf(stderr, "floor server %s (pid %d)\n", f.addr, f.cmd.Process.Pid)
	return fanout(ctx, o, f, func() { f.waitIdle(30 * time.Second) }, f.addr, f.cmd.Process.Pid, stdout, stderr)
}

// floorServe is the floor server (-mode floor-serve, started by -mode
// floor): it prints "addr HOST:PORT", then answers commands on stdin until
// it ends.
func floorServe(size int, stdin io.Reader, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fs := &floorServer{pad: strings.Repeat("x", max(0, size+floorFrameOverhead-110))}
	go fs.accept(ln)
	ctx, cancel := context.WithCancel(context.Background())
	var publisher sync.WaitGroup
	publisher.Add(1)
	go func() {
		defer publisher.Done()
		fs.publish(ctx)
	}()
	defer func() {
		cancel()
		publisher.Wait()
		fs.closeAll()
	}()
	fmt.Fprintf(stdout, "addr %s\n", ln.Addr())
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "rate":
			r, err := strconv.ParseFloat(arg, 64)
			if err != nil || r < 0 {
				return fmt.Errorf("floor server: bad rate %q", arg)
			}
			fs.rate.Store(r)
			fmt.Fprintln(stdout, "ok 0")
		case "sent":
			fmt.Fprintf(stdout, "sent %d\n", fs.sent.Load())
		case "streams":
			fs.mu.Lock()
			n := len(fs.conns)
			fs.mu.Unlock()
			fmt.Fprintf(stdout, "streams %d\n", n)
		default:
			return fmt.Errorf("floor server: unknown command %q", cmd)
		}
	}
	return sc.Err()
}

type floorServer struct {
	pad   string
	rate  atomic.Value // float64
	sent  atomic.Int64
	mu    sync.Mutex
	conns map[net.Conn]syscall.RawConn
}

func (fs *floorServer) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go fs.handshake(c)
	}
}

// handshake reads the request head and answers like a relay stream.
func (fs *floorServer) handshake(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return
		}
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nretry: 2000\n\n"); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		c.Close()
		return
	}
	fs.mu.Lock()
	if fs.conns == nil {
		fs.conns = map[net.Conn]syscall.RawConn{}
	}
	fs.conns[c] = rc
	fs.mu.Unlock()
	// The client closing its end is noticed by a read.
	go func() {
		io.Copy(io.Discard, br)
		fs.drop(c)
	}()
}

func (fs *floorServer) drop(c net.Conn) {
	fs.mu.Lock()
	delete(fs.conns, c)
	fs.mu.Unlock()
	c.Close()
}

func (fs *floorServer) closeAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for c := range fs.conns {
		c.Close()
	}
}

// publish writes a frame to every connection at the current rate, on an
// absolute schedule (a late frame is followed by the next at once).
func (fs *floorServer) publish(ctx context.Context) {
	workers := runtime.GOMAXPROCS(0)
	type conn struct {
		c  net.Conn
		rc syscall.RawConn
	}
	var conns []conn
	var next time.Time
	var frame []byte
	for ctx.Err() == nil {
		r, _ := fs.rate.Load().(float64)
		if r <= 0 {
			next = time.Time{}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		now := time.Now()
		if next.IsZero() {
			next = now
		}
		if d := next.Sub(now); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(time.Duration(float64(time.Second) / r))
		seq := fs.sent.Load() + 1
		frame = fmt.Appendf(frame[:0], "id: 1-%d\nevent: quote\ndata: {\"symbol\":\"LOAD\",\"seq\":%d,\"sent_ns\":%d,\"pad\":%q}\n\n",
			seq, seq, time.Now().UnixNano(), fs.pad)
		fs.mu.Lock()
		conns = conns[:0]
		for c, rc := range fs.conns {
			conns = append(conns, conn{c, rc})
		}
		fs.mu.Unlock()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(conns); i += workers {
					c := conns[i]
					var n int
					var werr error
					err := c.rc.Write(func(fd uintptr) bool {
						n, werr = syscall.Write(int(fd), frame)
						return true
					})
					if err == nil && errors.Is(werr, syscall.EAGAIN) {
						n, werr = 0, nil
					}
					if err == nil && werr == nil && n < len(frame) { // a full socket
						c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
						_, err = c.c.Write(frame[max(n, 0):])
					}
					if err != nil || werr != nil {
						fs.drop(c.c)
					}
				}
			}()
		}
		wg.Wait()
		fs.sent.Store(seq)
	}
}

// restFloor serves what GET /v1/quotes/{symbol} answers — the same status,
// headers and body size — from a bare net/http handler with nothing in
// front of it, until -duration ends. Measured with wrk like the relay, it
// shows what net/http itself reaches on the machine.
func restFloor(ctx context.Context, o options, stderr io.Writer) error {
	host, _, err := net.SplitHostPort(o.listen)
	if err != nil || !isLoopback(host) {
		return fmt.Errorf("-listen: %q is not a loopback address", o.listen)
	}
	if o.duration <= 0 || o.duration > 24*time.Hour {
		return errors.New("-duration: above 0 and at most 24h")
	}
	body := fmt.Appendf(nil, `{"symbol":"LOAD","id":"1795613560569-20","seq":7,"received_at":"2026-11-25T13:32:42.322554698Z","stale":false,"data":{"pad":%q}}`,
		strings.Repeat("x", max(0, o.size-40)))
	etag := []string{`"1795613560569-20"`}
	lastMod := []string{"Wed, 25 Nov 2026 13:32:42 GMT"}
	noCache := []string{"no-cache"}
	age := []string{"0"}
	json := []string{"application/json"}
	length := []string{strconv.Itoa(len(body))}
	vary := []string{"Origin"}
	srv := &http.Server{Addr: o.listen, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Vary"] = vary
		h["Etag"] = etag
		h["Cache-Control"] = noCache
		h["Last-Modified"] = lastMod
		h["Age"] = age
		h["Content-Type"] = json
		h["Content-Length"] = length
		w.Write(body)
	})}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bare net/http quote endpoint on http://%s/ for %s\n", ln.Addr(), o.duration)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case <-time.After(o.duration):
	}
	srv.Close()
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
