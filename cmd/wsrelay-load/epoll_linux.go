package main

import (
	"errors"
	"runtime"
	"sync"
	"syscall"
)

// epollReaders read every client of a step with one epoll loop per CPU
// instead of a goroutine per client. The tool shares the machine with the
// relay it measures; Go's netpoller costs a client two reads per delivery
// (the data, then the "would block" that parks it) and a goroutine wake-up,
// which the relay would pay for in CPU it cannot have. A level-triggered
// epoll loop reads each ready socket once.
type epollReaders struct {
	lat     *sharded
	loops   []*epollLoop
	stop    chan struct{}
	running sync.WaitGroup
}

type epollLoop struct {
	epfd    int
	clients []*sseClient
}

// startEpoll takes over the sockets of clients (none may be read by anyone
// else from now on), after feeding each what its reader had buffered. It
// returns nil when epoll is not available; the caller reads with
// goroutines then.
func startEpoll(clients []*sseClient, buffered [][]byte, lat *sharded) *epollReaders {
	r := &epollReaders{lat: lat, stop: make(chan struct{})}
	n := runtime.GOMAXPROCS(0)
	for range n {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			r.closeFDs()
			return nil
		}
		r.loops = append(r.loops, &epollLoop{epfd: fd})
	}
	for i, c := range clients {
		sc, ok := c.conn.(syscall.Conn)
		if !ok {
			r.closeFDs()
			return nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			r.closeFDs()
			return nil
		}
		rc.Control(func(fd uintptr) { c.fd = int(fd) })
		l := r.loops[i%n]
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(len(l.clients))}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			r.closeFDs()
			return nil
		}
		l.clients = append(l.clients, c)
	}
	for i, c := range clients {
		c.feed(buffered[i], lat)
	}
	for _, l := range r.loops {
		r.running.Add(1)
		go func() {
			defer r.running.Done()
			l.run(r.stop, lat)
		}()
	}
	return r
}

// run reads ready sockets until stop is closed (noticed within 100 ms).
func (l *epollLoop) run(stop <-chan struct{}, lat *sharded) {
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, err := syscall.EpollWait(l.epfd, events, 100)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			for _, c := range l.clients {
				c.fail(err)
				c.ended.Store(true)
			}
			return
		}
		for _, ev := range events[:n] {
			c := l.clients[ev.Fd]
			m, err := syscall.Read(c.fd, buf)
			if m > 0 {
				c.feed(buf[:m], lat)
				continue
			}
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			if err == nil {
				err = errors.New("EOF")
			}
			c.fail(err)
			c.ended.Store(true)
			syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
		}
	}
}

// close stops the loops; the clients' connections may be closed after.
func (r *epollReaders) close() {
	close(r.stop)
	r.running.Wait()
	r.closeFDs()
}

func (r *epollReaders) closeFDs() {
	for _, l := range r.loops {
		syscall.Close(l.epfd)
	}
	r.loops = nil
}
