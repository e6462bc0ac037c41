package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay/relay/capture"
)

const probeSynopsis = "wsrelay probe [-send FRAME]... [-header K:V]... [-for DUR] [-har FILE] [-symbol SYM]... [-o FILE] [-keep-secrets] URL"

// probeCmd connects to a live feed, sends frames, shows what comes back
// and prints the config that would relay it (and can save the session as a
// HAR that import reads back).
func probeCmd(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	var sends, headers, symbols stringList
	fs.Var(&sends, "send", "a text frame to send after connecting (repeatable, in order)")
	fs.Var(&headers, "header", "a handshake header, K:V (repeatable), e.g. 'Origin: https://www.example.com'")
	fs.Var(&symbols, "symbol", "a symbol to subscribe (repeatable); one in a -send frame marks where the symbol is")
	dur := fs.Duration("for", capture.DefaultRecordFor, "how long to listen")
	harPath := fs.String("har", "", "save the session as a Chrome-shaped HAR (mode 0600) that import reads")
	out := fs.String("o", "", "write the config to this file (mode 0600) instead of stdout")
	keep := fs.Bool("keep-secrets", false, "keep Cookie, Authorization and credentials in the config and the HAR")
	insecure := fs.Bool("insecure-skip-verify", false, "skip TLS certificate checks (testing only)")
	pos, help, err := parseInterleaved(fs, probeSynopsis, args, stdout)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("probe: give one URL (%s)", probeSynopsis)
	}
	if *harPath == "-" {
		return usagef("-har: give a file name (stdout carries the config)")
	}
	if *dur <= 0 || *dur > time.Hour {
		return usagef("-for: %v is not between 0 and 1h", *dur)
	}
	h := http.Header{}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \r\n") || strings.ContainsAny(v, "\r\n") {
			return usagef("-header: %q is not K:V", truncateFlag(kv))
		}
		h.Add(k, v)
	}
	s, err := capture.Record(ctx, capture.RecordConfig{URL: pos[0], Header: h, Send: sends, For: *dur, InsecureSkipVerify: *insecure})
	var he *capture.HandshakeError
	switch {
	case err != nil && s == nil:
		return usagef("probe: %v", err) // not a WebSocket URL
	case errors.As(err, &he):
		if he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden {
			return fmt.Errorf("probe: %w (the server wants credentials: pass the page's Cookie or Authorization with -header)", err)
		}
		return fmt.Errorf("probe: %w", err)
	}
	in, outN := 0, 0
	for _, f := range s.Frames {
		if f.Sent {
			outN++
		} else {
			in++
		}
	}
	fmt.Fprintf(stderr, "probe %s: handshake %d, sent %d, received %d in %s\n", capture.RedactedURL(s.URL, *keep), s.Status, outN, in, *dur)
	if err != nil {
		fmt.Fprintf(stderr, "probe: the connection ended early: %v\n", err)
	}
	if *harPath != "" {
		var b bytes.Buffer
		if err := capture.WriteHAR(&b, []capture.Session{*s}, capture.WriteOptions{Creator: "wsrelay probe", Version: version(), Sanitize: !*keep}); err != nil {
			return fmt.Errorf("-har: %w", err)
		}
		if err := writeConfigFile(*harPath, b.Bytes(), nil); err != nil {
			return fmt.Errorf("-har: %w", err)
		}
	}
	res, ierr := capture.Infer(&capture.Capture{Creator: "wsrelay probe", Entries: 1, Sessions: []capture.Session{*s}},
		capture.Options{Symbols: symbols, KeepSecrets: *keep, Live: true, Source: "a probe of " + capture.RedactedURL(s.URL, *keep)})
	if ierr != nil {
		if k := capture.SessionKinds(s); len(k) > 0 {
			capture.WriteKinds(stderr, k)
		}
		return usagef("probe: %v", ierr)
	}
	res.ReportKinds(stderr)
	if err := writeConfigFile(*out, res.YAML(), stdout); err != nil {
		return err
	}
	res.Report(stderr)
	return nil
}

func truncateFlag(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
