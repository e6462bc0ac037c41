package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures an embedded JetStream server. A zero field
// means its default.
type EmbeddedConfig struct {
	// DataDir holds the JetStream store; required.
	DataDir string
	// MaxMemory bounds memory streams; default 64 MiB. (The server's own
	// default is 75% of RAM, shared with the relay's heap.)
	MaxMemory int64
	// MaxStore bounds file streams; default 8 GiB.
	MaxStore int64
	// Listen, when set ("127.0.0.1:4222"), also serves NATS clients on a
	// TCP port; default none: only this process connects, in-process.
	Listen string
	Logger *slog.Logger
}

// Embedded is a JetStream server running inside this process, for
// `role: all` with `nats: {url: embedded}`: history on disk, no second
// program to run. It is not for high availability (it dies with the
// process). Close is idempotent.
type Embedded struct {
	ns *server.Server
}

// StartEmbedded starts the server and waits until it accepts clients.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("data_dir: required with url: embedded")
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = 64 << 20
	}
	if cfg.MaxStore == 0 {
		cfg.MaxStore = 8 << 30
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName:         "wsrelay-embedded",
		JetStream:          true,
		StoreDir:           cfg.DataDir,
		JetStreamMaxMemory: cfg.MaxMemory,
		JetStreamMaxStore:  cfg.MaxStore,
		NoSigs:             true,
		DontListen:         cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.SetLoggerV2(slogAdapter{log.With("component", "nats-server")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("embedded nats: not ready within 10s (is data_dir writable and not used by another process?)")
	}
	return &Embedded{ns: ns}, nil
}

// Server is the embedded server (Config.InProcess takes it).
func (e *Embedded) Server() *server.Server { return e.ns }

// Close shuts the server down and waits for it.
func (e *Embedded) Close() {
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
}

// slogAdapter sends the server's log lines to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Noticef(f string, v ...any) { a.log.Debug(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Warnf(f string, v ...any)   { a.log.Warn(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Fatalf(f string, v ...any)  { a.log.Error(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Errorf(f string, v ...any)  { a.log.Error(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Debugf(f string, v ...any)  { a.log.Debug(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Tracef(f string, v ...any)  { a.log.Debug(fmt.Sprintf(f, v...)) }
