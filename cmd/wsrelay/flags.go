package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseFlags parses args; -h prints the usage to stdout and reports help.
// A bad flag is a usage error (exit 2) in one line.
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout io.Writer) (bool, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return true, nil
	}
	if err != nil {
		return false, usagef("%s: %v", fs.Name(), err)
	}
	return false, nil
}

// overrides are the serve flags and their WSRELAY_* environment variables;
// a set flag beats the environment, which beats the config file.
type overrides struct {
	configPath                         string
	listen, adminToken, adminTokenFile string
	logLevel, logFormat                string
	upstream, subscribe                string
	preset, channel                    string
	role, nats                         string
	symbols                            []symbolEntry
	src                                map[string]string // config key -> where its value came from
}

// envName is the environment variable of a flag: -log-level → WSRELAY_LOG_LEVEL.
func envName(flagName string) string {
	return "WSRELAY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// collect reads each serve flag's value from the flag when set, else from
// the environment.
func collect(fs *flag.FlagSet, getenv func(string) string) (overrides, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	ov := overrides{src: map[string]string{}}
	val := func(name, key string) string {
		if set[name] {
			ov.src[key] = "-" + name
			return fs.Lookup(name).Value.String()
		}
		if v := getenv(envName(name)); v != "" {
			ov.src[key] = envName(name)
			return v
		}
		return ""
	}
	ov.configPath = val("config", "config")
	ov.listen = val("listen", "listen")
	ov.adminToken = val("admin-token", "admin_token")
	ov.adminTokenFile = val("admin-token-file", "admin_token_file")
	ov.logLevel = val("log-level", "log_level")
	ov.logFormat = val("log-format", "log_format")
	ov.upstream = val("upstream", "upstream")
	ov.subscribe = val("subscribe", "subscribe")
	ov.preset = val("preset", "preset")
	ov.channel = val("channel", "channel")
	ov.role = val("role", "role")
	ov.nats = val("nats", "nats.url")
	if syms := val("symbols", "symbols"); syms != "" || set["symbols"] {
		for _, s := range strings.Split(syms, ",") {
			if s = strings.TrimSpace(s); s != "" {
				name, ref, _ := strings.Cut(s, "=") // NAME=REF: the venue spells it REF
				ov.symbols = append(ov.symbols, symbolEntry{Name: name, Ref: ref})
			}
		}
		if len(ov.symbols) == 0 {
			return ov, usagef("%s: no symbols given", ov.src["symbols"])
		}
	}
	return ov, nil
}

// key names a setting in an error: the flag or variable it came from, or
// its config key.
func (o overrides) key(k string) string {
	if s, ok := o.src[k]; ok {
		return s
	}
	return k
}

// apply puts the overrides over the file's values.
func (o overrides) apply(s *settings, tokenFile, tokenFileKey *string) {
	if o.listen != "" {
		s.listen = o.listen
	}
	if o.adminToken != "" {
		s.adminToken = o.adminToken
	}
	if o.adminTokenFile != "" {
		*tokenFile, *tokenFileKey = o.adminTokenFile, o.key("admin_token_file")
	}
	if o.logLevel != "" {
		s.logLevel = o.logLevel
	}
	if o.logFormat != "" {
		s.logFormat = o.logFormat
	}
}
