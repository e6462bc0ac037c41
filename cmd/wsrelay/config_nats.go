package main

import (
	"cmp"

	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/cluster"
)

// The roles of `serve` (SPEC.md "More than one machine").
const (
	roleAll    = "all"    // one process: upstreams and API (default)
	roleIngest = "ingest" // upstream sockets, publishing into NATS
	roleEdge   = "edge"   // the API, fed from NATS
)

// natsURLEmbedded runs a JetStream server inside the process (role all).
const natsURLEmbedded = "embedded"

// natsFileConfig is the config file's nats: section.
type natsFileConfig struct {
	URL      string        `yaml:"url"`
	Stream   string        `yaml:"stream"`
	Replicas *int          `yaml:"replicas"`
	Storage  string        `yaml:"storage"`
	DataDir  string        `yaml:"data_dir"`
	Creds    string        `yaml:"creds"`
	NKey     string        `yaml:"nkey"`
	TLS      natsTLSConfig `yaml:"tls"`
}

type natsTLSConfig struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// natsSettings are the validated NATS settings; nil in settings means
// role all without NATS.
type natsSettings struct {
	cluster  cluster.Config // URL empty when embedded
	embedded bool
	dataDir  string
}

// resolveRole: role and nats. It runs after resolveUpstreams.
func (s *settings) resolveRole(c *fileConfig, ov overrides) error {
	s.role = cmp.Or(ov.role, c.Role, roleAll)
	roleKey := ov.key("role")
	switch s.role {
	case roleAll, roleIngest, roleEdge:
	default:
		return usagef("%s: %q is not all, ingest or edge", roleKey, s.role)
	}
	n := c.NATS
	url, urlKey := cmp.Or(ov.nats, n.URL), ov.key("nats.url")
	if url == "" {
		if s.role != roleAll {
			return usagef("%s: -role %s needs a NATS server: -nats nats://HOST:4222 (or nats.url in the config)", roleKey, s.role)
		}
		if n != (natsFileConfig{}) {
			return usagef("nats.url: required when the nats section is set")
		}
		return nil
	}
	ns := &natsSettings{}
	if url == natsURLEmbedded {
		if s.role != roleAll {
			return usagef("%s: embedded runs only with role all (an ingest and edges share an external NATS server)", urlKey)
		}
		if n.DataDir == "" {
			return usagef("nats.data_dir: required with url: embedded (the history is kept there)")
		}
		ns.embedded, ns.dataDir = true, n.DataDir
		url = ""
	} else if n.DataDir != "" {
		return usagef("nats.data_dir: only with url: embedded")
	}
	replicas := 0
	if n.Replicas != nil {
		replicas = *n.Replicas
		if replicas < 1 || replicas > 5 {
			return usagef("nats.replicas: %d is not between 1 and 5", replicas)
		}
	}
	ns.cluster = cluster.Config{
		URL: url, Stream: n.Stream, Replicas: replicas, Storage: n.Storage,
		History: cmp.Or(s.history, relay.DefaultHistory),
		Creds:   n.Creds, NKey: n.NKey,
		TLS:  cluster.TLSFiles{CA: n.TLS.CA, Cert: n.TLS.Cert, Key: n.TLS.Key},
		Name: "wsrelay-" + s.role,
	}
	check := ns.cluster
	if ns.embedded {
		check.URL = "nats://embedded:4222" // a placeholder for Validate only
	}
	if err := check.Validate(); err != nil {
		if !ns.embedded && len(err.Error()) > 4 && err.Error()[:4] == "url:" {
			return usagef("%s: %s", urlKey, err.Error()[5:])
		}
		return usagef("nats.%v", err)
	}
	if s.role == roleEdge {
		// An edge's symbols come from the symbol set in NATS, never
		// from its own config: upstreams are the ingests' business.
		s.demo, s.upstreams = false, nil
	}
	s.nats = ns
	return nil
}
