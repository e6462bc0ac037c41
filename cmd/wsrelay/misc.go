package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
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
		"subscribe", seedSubscribe)
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("simfeed: %w", err)
	}
	feed.Close()
	srv.Close()
	return nil
}

// healthcheck exits 0 when the relay's /healthz answers 200 (for container
// HEALTHCHECKs: the image has no curl).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	u := fs.String("url", envOr(getenv, "WSRELAY_HEALTHCHECK_URL", "http://127.0.0.1:8080/healthz"), "health URL")
	help, err := parseFlags(fs, "wsrelay healthcheck [-url URL]", args, stdout)
	if help || err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u, nil)
	if err != nil {
		return usagef("-url: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("healthcheck: " + resp.Status)
	}
	return nil
}

// version is the module version and VCS revision the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += "+dirty"
		}
	}
	return v + " " + bi.GoVersion
}
