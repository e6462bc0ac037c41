package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/wsrelay/wsrelay/relay/presets"
)

// presetsCmd lists the exchange presets, or prints the upstream YAML one of
// them stands for.
func presetsCmd(_ context.Context, args []string, _ func(string) string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("presets", flag.ContinueOnError)
	help, err := parseFlags(fs, "wsrelay presets [NAME [CHANNEL]]", args, stdout)
	if help || err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
		return listPresets(stdout)
	case 1, 2:
		p, err := presets.Get(fs.Arg(0))
		if err != nil {
			return usagef("presets: %v", err)
		}
		y, err := p.YAML(fs.Arg(1))
		if err != nil {
			return usagef("presets: %v", err)
		}
		_, err = io.WriteString(stdout, y)
		return err
	}
	return usagef("presets: unexpected argument %q", fs.Arg(2))
}

func listPresets(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRESET\tCHANNELS\tDIAL RATE\tMAX CONNS\tSYMBOLS/CONN\tKEEPALIVE\tSYMBOLS (e.g.)\tVENUE")
	for _, p := range presets.All() {
		node, err := p.Expand("")
		if err != nil {
			return err
		}
		var u upstreamConfig
		if err := node.Decode(&u); err != nil {
			return fmt.Errorf("preset %s: %w", p.Name, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, strings.Join(p.Channels(), ","),
			orDash(u.DialRate), orDash(intText(u.MaxConnections)), cmp.Or(intText(u.SymbolsPerConnection), "1"),
			keepaliveKind(u), strings.Join(p.Symbols, " "), p.Venue)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nwsrelay presets NAME [CHANNEL] prints the upstream config a preset stands for (limits and sources in its comments).\n"+
		"wsrelay serve -preset NAME [-channel CHANNEL] -symbols A,B runs it.")
	return err
}

// keepaliveKind says in a word or two how a preset keeps its connection.
func keepaliveKind(u upstreamConfig) string {
	switch {
	case u.Resolve != nil && u.AppPing != "":
		return "token+app ping"
	case len(u.Pong) > 0:
		return "answers venue pings"
	case u.AppPing != "":
		return "app ping " + cmp.Or(u.PingInterval, "20s")
	case len(u.Heartbeat) > 0:
		return "venue heartbeats"
	}
	return "WebSocket ping"
}

func intText(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p)
}

func orDash(s string) string { return cmp.Or(s, "-") }
