package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestBadNATSConfigExits2: roles and the nats section, wrong in every way
// that can be told without connecting: exit 2, one line naming the key.
func TestBadNATSConfigExits2(t *testing.T) {
	cases := []struct {
		name   string
		config string
		args   []string
		env    []string
		names  string
	}{
		{"edge without nats", "", []string{"-role", "edge"}, nil, "-role"},
		{"ingest without nats", "role: ingest\n", nil, nil, "role"},
		{"env role without nats", "", nil, []string{"WSRELAY_ROLE", "edge"}, "WSRELAY_ROLE"},
		{"unknown role", "", []string{"-role", "proxy"}, nil, "-role"},
		{"embedded edge", "", []string{"-role", "edge", "-nats", "embedded"}, nil, "-nats"},
		{"embedded without data_dir", "", []string{"-nats", "embedded"}, nil, "nats.data_dir"},
		{"data_dir without embedded", "nats: {url: 'nats://h:4222', data_dir: /tmp/x}\n", nil, nil, "nats.data_dir"},
		{"nats section without url", "nats: {stream: X}\n", nil, nil, "nats.url"},
		{"bad url", "", []string{"-role", "edge", "-nats", "http://h:4222"}, nil, "-nats"},
		{"env bad url", "", []string{"-role", "edge"}, []string{"WSRELAY_NATS", "h:4222"}, "WSRELAY_NATS"},
		{"storage", "nats: {url: 'nats://h:4222', storage: disk}\n", []string{"-role", "edge"}, nil, "nats.storage"},
		{"replicas", "nats: {url: 'nats://h:4222', replicas: 7}\n", []string{"-role", "edge"}, nil, "nats.replicas"},
		{"stream name", "nats: {url: 'nats://h:4222', stream: 'a.b'}\n", []string{"-role", "edge"}, nil, "nats.stream"},
		{"tls half", "nats: {url: 'tls://h:4222', tls: {cert: /x}}\n", []string{"-role", "edge"}, nil, "nats.tls"},
		{"creds file", "nats: {url: 'nats://h:4222', creds: /nonexistent/x.creds}\n", []string{"-role", "edge"}, nil, "nats.creds"},
		{"unknown nats key", "nats: {url: 'nats://h:4222', password: x}\n", []string{"-role", "edge"}, nil, "password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve"}, tc.args...)
			if tc.config != "" {
				args = append(args, "-config", writeConfig(t, tc.config))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out, errOut strings.Builder
			err := run(ctx, args, env(tc.env...), &out, &errOut)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if code := exitCode(err, &errOut); code != 2 {
				t.Fatalf("exit %d", code)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.names) {
				t.Fatalf("message %q should be one line naming %q", msg, tc.names)
			}
		})
	}
}

// TestNATSSettings: the flag beats the environment and the file; an edge
// ignores the upstreams of a shared config; history is the stream's.
func TestNATSSettings(t *testing.T) {
	fc, err := parseConfig([]byte(goodUpstream + "history: 500\nrole: ingest\nnats: {url: 'nats://file:4222', stream: PROD_QUOTES, replicas: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs := newServeFlagSet()
	if err := fs.Parse([]string{"-role", "edge", "-nats", "nats://u:p@flag:4222"}); err != nil {
		t.Fatal(err)
	}
	ov, err := collect(fs, env("WSRELAY_NATS", "nats://env:4222"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := resolve(fc, ov)
	if err != nil {
		t.Fatal(err)
	}
	c := st.nats.cluster
	if st.role != roleEdge || c.URL != "nats://u:p@flag:4222" || c.Stream != "PROD_QUOTES" || c.Replicas != 3 || c.History != 500 {
		t.Fatalf("role %s, nats %+v", st.role, c)
	}
	if st.upstreams != nil || st.demo {
		t.Fatalf("an edge keeps upstreams %v (demo %v)", st.upstreams, st.demo)
	}
}
