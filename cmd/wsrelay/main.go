// Command wsrelay turns exchange-style WebSocket feeds into plain HTTP:
// REST snapshots, resumable Server-Sent Events and a live web page.
//
//	wsrelay                  same as `wsrelay serve`
//	wsrelay serve [flags]    run the relay (the built-in demo feed when nothing is configured)
//	wsrelay simfeed [flags]  run only the simulated exchange feed
//	wsrelay tail [-server URL] [-json] SYMBOL...
//	wsrelay presets [NAME [CHANNEL]]
//	wsrelay healthcheck [-url URL]
//	wsrelay version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err (one line) and maps it to the exit status: 2 for
// usage and config errors, 1 for runtime failures.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "wsrelay:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

const usage = `wsrelay turns exchange-style WebSocket feeds into plain HTTP.

Usage:
  wsrelay [serve] [flags]          run the relay (demo feed when nothing is configured)
  wsrelay simfeed [flags]          run only the simulated exchange feed
  wsrelay tail [-server URL] [-json] SYMBOL...
                                   print live quotes from a running relay
  wsrelay presets [NAME [CHANNEL]] list the exchange presets, or print one's upstream config
  wsrelay healthcheck [-url URL]   exit 0 when the relay's /healthz answers 200
  wsrelay version                  print the version

Run "wsrelay COMMAND -h" for a command's flags.
`

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-') {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "simfeed":
		return simfeedCmd(ctx, args, getenv, stdout, stderr)
	case "tail":
		return tail(ctx, args, getenv, stdout, stderr)
	case "presets":
		return presetsCmd(ctx, args, getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout, stderr)
	case "import":
		return importCmd(ctx, args, getenv, stdout, stderr)
	case "probe":
		return probeCmd(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "wsrelay", version())
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usagef("unknown command %q (try serve, simfeed, tail, presets, healthcheck, version)", cmd)
}
