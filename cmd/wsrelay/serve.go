package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay"
	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/presets"
	"github.com/wsrelay/wsrelay/relay/simfeed"
	"github.com/wsrelay/wsrelay/web"
)

// shutdownGrace bounds how long open streams and requests get once
// shutdown starts.
const shutdownGrace = 5 * time.Second

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newServeFlagSet()
	help, err := parseFlags(fs, "wsrelay serve [flags]\n\nEvery flag can also be set as WSRELAY_<NAME> (e.g. WSRELAY_LISTEN).\nA flag beats the environment, which beats the config file.", args, stdout)
	if help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	ov, err := collect(fs, getenv)
	if err != nil {
		return err
	}
	fc := &fileConfig{}
	if ov.configPath != "" {
		if fc, err = loadFile(ov.configPath); err != nil {
			return err
		}
	}
	st, err := resolve(fc, ov)
	if err != nil {
		return err
	}
	return runServer(ctx, st, newLogger(stderr, st.logLevel, st.logFormat))
}

// newServeFlagSet declares the serve flags (README, "Commands").
func newServeFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("config", "", "YAML config file")
	fs.String("listen", ":8080", "HTTP listen address")
	fs.String("upstream", "", "one upstream ws:// or wss:// URL, instead of a config file")
	fs.String("subscribe", "", "its subscribe frame; {symbol} marks the symbol (default: the seed protocol)")
	fs.String("symbols", "", "its symbols, comma-separated; NAME=REF where the venue spells a symbol REF (or the demo's)")
	fs.String("preset", "", "an exchange preset ("+strings.Join(presets.Names(), ", ")+"); with -symbols")
	fs.String("channel", "", "the preset's channel: ticker (default), trades, bbo")
	fs.String("role", "all", "all (one process), ingest (upstreams into NATS) or edge (the API, fed from NATS)")
	fs.String("nats", "", "NATS server URL for -role ingest|edge (or embedded with role all)")
	fs.String("admin-token", "", "enables the admin endpoints (bearer token, at least 16 characters)")
	fs.String("admin-token-file", "", "read the admin token from this file")
	fs.String("log-level", "info", "debug, info, warn, error")
	fs.String("log-format", "auto", "auto (text on a terminal, JSON otherwise), text, json")
	return fs
}

// newLogger logs text on a terminal and JSON otherwise.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// runServer runs the relay until ctx ends, then shuts down in order: end
// the streams (readyz 503, no new ones), stop accepting and close the
// connections that carry no request, wait for the requests in progress,
// close the upstreams and the broker. Each step waits only for real work.
func runServer(ctx context.Context, st *settings, log *slog.Logger) error {
	ln, err := net.Listen("tcp", st.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	var feed *simfeed.Feed
	if st.demo {
		feedLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("demo feed: %w", err)
		}
		feed = simfeed.New(simfeed.Config{Rate: 4})
		feedSrv := &http.Server{Handler: feed, ReadHeaderTimeout: 5 * time.Second}
		feedDone := make(chan struct{})
		go func() {
			defer close(feedDone)
			feedSrv.Serve(feedLn)
		}()
		defer func() {
			feed.Close()
			feedSrv.Close()
			<-feedDone
		}()
		st.upstreams = []relay.UpstreamConfig{demoUpstream("ws://"+feedLn.Addr().String()+"/", st.demoSymbols)}
	}

	broker, err := relay.NewBroker(relay.BrokerConfig{History: st.history})
	if err != nil {
		return err
	}
	defer broker.Close()
	rl, err := startRole(ctx, st, log, broker) // roles.go: the upstreams, or NATS
	if err != nil {
		return err
	}
	defer rl.Close()
	apiSrv, err := api.New(api.Config{
		Broker: broker, Upstreams: rl, AdminToken: st.adminToken, CORSOrigins: st.corsOrigins, TrustedProxies: st.trusted,
		SSE: st.sse, RateLimit: st.rateLimit, Web: web.Handler(), OpenAPI: wsrelay.OpenAPI, Logger: log,
	})
	if err != nil {
		return err
	}
	defer apiSrv.Shutdown(context.Background()) // on an early return; idempotent
	conns := newConnTracker()
	httpSrv := &http.Server{
		Handler:           rl.handler(apiSrv),
		ConnState:         conns.track,
		ReadHeaderTimeout: st.http.readHeaderTimeout, // slowloris
		IdleTimeout:       st.http.idleTimeout,
		MaxHeaderBytes:    st.http.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// No WriteTimeout: it would cut SSE streams; they have per-write deadlines.
	}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	if st.debugListen != "" {
		stopDebug, err := serveDebug(st.debugListen, log)
		if err != nil {
			httpSrv.Close()
			return err
		}
		defer stopDebug()
	}

	addr := ln.Addr().(*net.TCPAddr)
	log.Info("listening", "addr", addr.String(), "symbols", symbolCount(st.upstreams), "upstreams", len(st.upstreams), "role", cmp.Or(st.role, roleAll), "admin", st.adminToken != "")
	if st.demo {
		page := fmt.Sprintf("http://localhost:%d/", addr.Port)
		log.Info("demo: built-in simulated exchange feed; open the live board at "+page,
			"url", page, "try", fmt.Sprintf("curl localhost:%d/v1/quotes/%s", addr.Port, st.upstreams[0].Symbols[0].Name))
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("shutting down", "streams", apiSrv.Clients())
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := apiSrv.Shutdown(sctx); err != nil { // readyz 503, no new streams, open streams end
		log.Warn("streams did not end within the grace", "err", err)
	}
	if err := shutdownHTTP(sctx, httpSrv, conns); err != nil {
		log.Warn("requests did not end within the grace", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http server", "err", err)
	}
	rl.Close() // 1001 to every upstream, waits for every goroutine
	broker.Close()
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// serveDebug serves net/http/pprof on a separate loopback listener.
func serveDebug(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { srv.Close(); <-done }, nil
}
