package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/wsrelay/wsrelay/relay/capture"
)

const importSynopsis = "wsrelay import [-symbol SYM]... [-o FILE] [-keep-secrets] [-socket N] [-name NAME] FILE.har"

// importCmd turns a HAR file saved from the browser's DevTools into a
// config: the YAML on stdout (or -o), a short report on stderr.
func importCmd(_ context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	var symbols stringList
	fs.Var(&symbols, "symbol", "a symbol to subscribe (repeatable); one the page subscribed marks where the symbol is in its frames")
	out := fs.String("o", "", "write the config to this file (mode 0600) instead of stdout")
	keep := fs.Bool("keep-secrets", false, "keep cookies, Authorization, token-like query values and credentials in frames")
	socket := fs.Int("socket", 0, "relay this socket of the report's list (default: the best)")
	name := fs.String("name", "", "the upstream's name (default: from the host)")
	files, help, err := parseInterleaved(fs, importSynopsis, args, stdout)
	if help || err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("import: give one HAR file (%s)", importSynopsis)
	}
	path := files[0]
	f, err := os.Open(path)
	if err != nil {
		return usagef("import: %v", err)
	}
	defer f.Close()
	c, err := capture.ReadHAR(f, capture.ReadOptions{})
	if err != nil {
		return usagef("import: %s: %v", filepath.Base(path), err)
	}
	res, err := capture.Infer(c, capture.Options{Symbols: symbols, KeepSecrets: *keep, Socket: *socket, Name: *name, Source: filepath.Base(path)})
	if err != nil {
		return usagef("import: %s: %v", filepath.Base(path), err)
	}
	if err := writeConfigFile(*out, res.YAML(), stdout); err != nil {
		return err
	}
	res.Report(stderr)
	return nil
}

// writeConfigFile writes the config to path with mode 0600 (it may hold
// credentials), or to stdout when path is empty.
func writeConfigFile(path string, b []byte, stdout io.Writer) error {
	if path == "" || path == "-" {
		_, err := stdout.Write(b)
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("-o: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("-o: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	return nil
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (wsrelay import page.har -symbol X).
func parseInterleaved(fs *flag.FlagSet, synopsis string, args []string, stdout io.Writer) ([]string, bool, error) {
	var pos []string
	for {
		help, err := parseFlags(fs, synopsis, args, stdout)
		if help || err != nil {
			return nil, help, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, false, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), false, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}
