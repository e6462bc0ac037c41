package faultnet

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every connection until closed.
func echoServer(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln
}

func echo(t *testing.T, c net.Conn, wait time.Duration) error {
	t.Helper()
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	return err
}

func TestProxyFaults(t *testing.T) {
	target := echoServer(t)
	p, err := NewProxy(target.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(t, c, 5*time.Second); err != nil {
		t.Fatalf("forward: %v", err)
	}
	// Silence: nothing comes back, nothing is closed; Resume delivers it.
	p.Silence()
	if err := echo(t, c, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silenced echo: %v", err)
	}
	p.Resume()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatalf("after resume: %v", err)
	}
	// CutAll resets the connection.
	if n := p.CutAll(); n != 1 {
		t.Fatalf("cut %d", n)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after cut succeeded")
	}
	c.Close()

	// Refuse: dials fail; Forward listens again on the same address.
	p.SetMode(Refuse)
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("dial succeeded while refusing")
	}
	p.SetMode(Blackhole)
	c, err = net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(t, c, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackhole answered: %v", err)
	}
	c.Close()
	p.SetMode(Forward)
	c, err = net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echo(t, c, 5*time.Second); err != nil {
		t.Fatalf("forward again: %v", err)
	}
	// Reset mid-frame: half of the next chunk, then RST.
	p.ResetMidFrame()
	c.Write([]byte("0123456789"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	if len(got) != 5 {
		t.Fatalf("got %q before the reset, want half of 10 bytes", got)
	}
}

func TestListenerCutAll(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln)
	defer l.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for range 2 {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		<-accepted
	}
	if l.Open() != 2 || l.CutAll() != 2 || l.Open() != 0 {
		t.Fatalf("open %d after cut", l.Open())
	}
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection survived CutAll")
		}
	}
}
