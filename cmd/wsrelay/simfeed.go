package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wsrelay/wsrelay/relay/simfeed"
)

// simfeedCmd runs only the simulated exchange feed.
func simfeedCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simfeed", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9001", "listen address")
	rate := fs.Float64("rate", 5, "quote frames per second per subscribed symbol")
	pad := fs.Int("pad", 0, "pad each frame to about this many bytes")
	help, err := parseFlags(fs, "wsrelay simfeed [-listen ADDR] [-rate N]", args, stdout)
	if help || err != nil {
		return err
	}
	if !(*rate > 0 && *rate <= 100000) {
		return usagef("-rate: %v is not above 0 and at most 100000", *rate)
	}
	if *pad < 0 || *pad > 1<<20 {
		return usagef("-pad: %d is outside 0..1048576", *pad)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log := newLogger(stderr, "info", "auto")
	feed := simfeed.New(simfeed.Config{Rate: *rate, Pad: *pad})
	srv := &http.Server{Handler: feed, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("simulated exchange feed listening", "url", "ws://"+ln.Addr().String()+"/", "rate", *rate,
		"subscribe", simfeed.Subscribe)
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("simfeed: %w", err)
	}
	feed.Close()
	srv.Close()
	return nil
}
