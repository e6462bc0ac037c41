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
//	wsrelay help
//
// Each command is a file of its own (serve.go, simfeed.go, tail.go,
// presets.go, healthcheck.go, version.go) that only wires; main.go lists
// them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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

// command is one of wsrelay's commands.
type command struct {
	name     string
	synopsis string // its usage line, after "wsrelay "
	summary  string // what it does, in one line
	run      func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

// commands are wsrelay's commands, in the order help lists them; serve is
// the default.
func commands() []command {
	return []command{
		{"serve", "[serve] [flags]", "run the relay (the demo feed when nothing is configured)", serve},
		{"simfeed", "simfeed [flags]", "run only the simulated exchange feed", simfeedCmd},
		{"tail", "tail [-server URL] [-json] SYMBOL...", "print live quotes from a running relay, resuming across drops", tail},
		{"presets", "presets [NAME [CHANNEL]]", "list the exchange presets, or print one's upstream config", presetsCmd},
		{"import", "import [-symbol SYM]... [-o FILE] [-keep-secrets] FILE.har", "turn a HAR saved from the browser's DevTools into a config", importCmd},
		{"probe", "probe [-send FRAME]... [-header K:V]... [-for DUR] [-har FILE] URL", "connect to a live feed, show what comes back and the config that relays it", probeCmd},
		{"healthcheck", "healthcheck [-url URL]", "exit 0 when the relay's /healthz answers 200", healthcheck},
		{"version", "version", "print the version", versionCmd},
		{"help", "help", "print this help", func(_ context.Context, _ []string, _ func(string) string, stdout, _ io.Writer) error {
			printUsage(stdout)
			return nil
		}},
	}
}

// printUsage lists every command, then serve's flags.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "wsrelay turns exchange-style WebSocket feeds into plain HTTP.\n\nUsage:\n")
	for _, c := range commands() {
		line := "  wsrelay " + c.synopsis
		if len(line) > 34 {
			fmt.Fprintf(w, "%s\n%35s%s\n", line, "", c.summary)
		} else {
			fmt.Fprintf(w, "%-35s%s\n", line, c.summary)
		}
	}
	fmt.Fprint(w, "\nRun \"wsrelay COMMAND -h\" for a command's flags. The flags of serve, the default command:\n\n")
	fs := newServeFlagSet()
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name := "serve"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		printUsage(stdout)
		return nil
	case len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-'):
		name, args = args[0], args[1:]
	}
	var names []string
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, getenv, stdout, stderr)
		}
		names = append(names, c.name)
	}
	return usagef("unknown command %q (try %s)", name, strings.Join(names, ", "))
}
