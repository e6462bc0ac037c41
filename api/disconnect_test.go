package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/wsrelay/wsrelay/relay"
)

// TestDisconnectReasonsAreTheMetricsLabels: the metric has exactly one
// series per reason from the start, and its help lists them all.
func TestDisconnectReasonsAreTheMetricsLabels(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	var help string
	for _, f := range families {
		if f.GetName() != "wsrelay_sse_disconnects_total" {
			continue
		}
		help = f.GetHelp()
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetValue())
			}
		}
	}
	var want []string
	for _, r := range disconnectReasons {
		if r.String() == "unknown" || slices.Contains(want, r.String()) {
			t.Fatalf("reason %d has no label of its own: %q", r, r)
		}
		want = append(want, r.String())
		if !strings.Contains(help, r.String()) {
			t.Errorf("help %q does not list %s", help, r)
		}
	}
	slices.Sort(labels)
	slices.Sort(want)
	if !slices.Equal(labels, want) {
		t.Fatalf("registered %v, reasons %v", labels, want)
	}
	if len(want) != int(reasonWriteError) {
		t.Fatalf("%d reasons listed, %d declared", len(want), reasonWriteError)
	}
}

// TestClassifyNamesEveryWayAStreamEnds: one classifier says why a stream
// ended, whatever connection it wrote to.
func TestClassifyNamesEveryWayAStreamEnds(t *testing.T) {
	t.Parallel()
	opErr := func(err error) error {
		return &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)}
	}
	for _, tc := range []struct {
		ended   disconnectReason
		err     error
		closing bool
		want    disconnectReason
	}{
		{reasonClientGone, nil, true, reasonClientGone},
		{0, errors.New("anything"), true, reasonShutdown},
		{0, relay.ErrClosed, false, reasonShutdown},
		{0, fmt.Errorf("wrapped: %w", relay.ErrSlowConsumer), false, reasonQueueFull},
		{0, relay.ErrSymbolRemoved, false, reasonSymbolsRemoved},
		{0, errWriteTimeout, false, reasonWriteTimeout},
		{0, &net.OpError{Op: "write", Err: os.ErrDeadlineExceeded}, false, reasonWriteTimeout},
		{0, context.DeadlineExceeded, false, reasonWriteError},
		{0, syscall.EPIPE, false, reasonClientGone},
		{0, opErr(syscall.ECONNRESET), false, reasonClientGone},
		{0, opErr(syscall.ETIMEDOUT), false, reasonClientGone}, // TCP gave up: not our deadline
		{0, errClientGone, false, reasonClientGone},
		{0, net.ErrClosed, false, reasonClientGone},
		{0, io.EOF, false, reasonClientGone},
		{0, syscall.EIO, false, reasonWriteError},
		{0, errors.New("http2: something else"), false, reasonWriteError},
	} {
		if got := classify(tc.ended, tc.err, tc.closing); got != tc.want {
			t.Errorf("classify(%v, %v, closing %v) = %s, want %s", tc.ended, tc.err, tc.closing, got, tc.want)
		}
	}
}
