package sitefake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// ErrNoNode means Node or the site's node_modules are missing: run
// `npm ci --prefix relay/sitefake/testdata/node` (CI does, in .ci/run).
var ErrNoNode = errors.New("sitefake: node or relay/sitefake/testdata/node/node_modules missing (npm ci --prefix relay/sitefake/testdata/node)")

// nodeStopWait bounds how long Close waits for Node to exit after its stdin
// closed, before killing it.
const nodeStopWait = 5 * time.Second

// NodeDir is the directory of the Node scripts and their package.json.
func NodeDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("testdata", "node")
	}
	return filepath.Join(filepath.Dir(file), "testdata", "node")
}

// NodeReady returns nil when node is on PATH and the packages are installed,
// ErrNoNode otherwise.
func NodeReady() error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("%w: %v", ErrNoNode, err)
	}
	for _, pkg := range []string{"socket.io", "@microsoft/signalr"} {
		if _, err := os.Stat(filepath.Join(NodeDir(), "node_modules", pkg, "package.json")); err != nil {
			return fmt.Errorf("%w: %v", ErrNoNode, err)
		}
	}
	return nil
}

// RequireNode skips tb when Node or the packages are missing on a
// developer's machine, and fails it in CI (the CI environment variable
// set), where .ci/run installs them.
func RequireNode(tb testing.TB) {
	tb.Helper()
	err := NodeReady()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("CI is set but: %v", err)
	}
	tb.Skip(err)
}

// NodeProcess is a Node script run from NodeDir: its stdout lines arrive on
// Lines, its stdin takes lines (Send), its stderr is kept for errors.
// Close ends it (stdin closed, then killed after 5 s) and waits; it is
// idempotent. Send and Close are safe for concurrent use.
type NodeProcess struct {
	cmd    *exec.Cmd
	lines  chan string
	done   chan struct{} // closed when the process has exited and its output is read
	stderr *capped

	mu      sync.Mutex
	stdin   io.WriteCloser
	closed  bool
	waitErr error
}

// StartNode runs `node SCRIPT ARGS…` in NodeDir. The process is not tied
// to ctx (use Close); ctx only bounds the start.
func StartNode(ctx context.Context, script string, args ...string) (*NodeProcess, error) {
	if err := NodeReady(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Dir = NodeDir()
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	p := &NodeProcess{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{}), stderr: &capped{max: 64 << 10}}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("sitefake: node stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("sitefake: node stdout: %w", err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sitefake: start node %s: %w", script, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody reads: drop rather than block the child
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.lines)
	}()
	return p, nil
}

// Lines delivers the script's stdout, one line each; it is closed when the
// process has exited. Lines are dropped while 1024 are unread.
func (p *NodeProcess) Lines() <-chan string { return p.lines }

// Send writes one line to the script's stdin.
func (p *NodeProcess) Send(line string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("sitefake: node process closed")
	}
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// Stderr returns what the script wrote to stderr so far (its last 64 KiB).
func (p *NodeProcess) Stderr() string { return p.stderr.String() }

// Exited is closed once the process has exited.
func (p *NodeProcess) Exited() <-chan struct{} { return p.done }

// Close closes the script's stdin (the scripts exit on it), kills the
// process if it has not exited within 5 s, and waits for it.
func (p *NodeProcess) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		_ = p.stdin.Close()
	}
	p.mu.Unlock()
	t := time.NewTimer(nodeStopWait)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// waitLine returns the first stdout line that decodes into v and for which
// ok returns true, skipping others, until ctx ends or the process exits.
func (p *NodeProcess) waitLine(ctx context.Context, v any, ok func() bool) error {
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("sitefake: waiting for node: %w (stderr: %s)", ctx.Err(), p.Stderr())
		case line, open := <-p.lines:
			if !open {
				p.mu.Lock()
				err := p.waitErr
				p.mu.Unlock()
				return fmt.Errorf("sitefake: node exited (%v): %s", err, strings.TrimSpace(p.Stderr()))
			}
			if json.Unmarshal([]byte(line), v) == nil && ok() {
				return nil
			}
		}
	}
}

// capped is a concurrency-safe buffer keeping the last max bytes written.
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (c *capped) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(b)
	if over := c.buf.Len() - c.max; over > 0 {
		c.buf.Next(over)
	}
	return len(b), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
