package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsrelay/wsrelay/relay"
)

// Config says how to reach NATS and how the stream is laid out; ingests and
// edges of one deployment share it. A zero field means its default.
type Config struct {
	// URL is one or more comma-separated nats://, tls://, ws:// or wss://
	// server URLs; user:password@ or token@ may be part of them. Required
	// unless InProcess is set.
	URL string
	// Stream is the quote stream's name; default DefaultStream.
	Stream string
	// Replicas of the stream and buckets; default 1.
	Replicas int
	// Storage is "file" (default: history survives server restarts) or
	// "memory".
	Storage string
	// History is the number of quotes kept per symbol (the stream's
	// MaxMsgsPerSubject and each edge's ring); default relay.DefaultHistory.
	History int
	// Creds is a credentials file (user JWT and NKey seed).
	Creds string
	// NKey is a file holding an NKey seed.
	NKey string
	// TLS: CA bundle to verify the server, and a client certificate.
	TLS TLSFiles
	// InProcess connects to an embedded server without a socket.
	InProcess nats.InProcessConnProvider
	// Name is the connection name the server shows (default "wsrelay").
	Name string
	// Logger; default discards. Nothing secret is ever logged.
	Logger *slog.Logger
}

// TLSFiles are PEM files; Cert and Key go together.
type TLSFiles struct {
	CA, Cert, Key string
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Storage == "" {
		c.Storage = "file"
	}
	if c.History == 0 {
		c.History = relay.DefaultHistory
	}
	if c.Name == "" {
		c.Name = "wsrelay"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks c without connecting; errors name the config key
// (under nats.) and never quote a secret.
func (c Config) Validate() error {
	if c.InProcess == nil {
		if strings.TrimSpace(c.URL) == "" {
			return errors.New("url: required (the NATS server, e.g. nats://127.0.0.1:4222)")
		}
		for _, raw := range strings.Split(c.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil || u.Host == "" {
				return fmt.Errorf("url: %s is not a URL", RedactURL(raw))
			}
			switch u.Scheme {
			case "nats", "tls", "ws", "wss":
			default:
				return fmt.Errorf("url: %s: scheme must be nats, tls, ws or wss", RedactURL(raw))
			}
		}
	}
	if _, err := newNames(c.Stream); err != nil {
		return err
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("replicas: %d is not between 1 and 5", c.Replicas)
	}
	switch c.Storage {
	case "", "file", "memory":
	default:
		return fmt.Errorf("storage: %q is not file or memory", c.Storage)
	}
	if c.History < 0 {
		return errors.New("history: must not be negative")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("tls: cert and key go together")
	}
	for key, path := range map[string]string{"creds": c.Creds, "nkey": c.NKey, "tls.ca": c.TLS.CA, "tls.cert": c.TLS.Cert, "tls.key": c.TLS.Key} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	if c.Creds != "" && c.NKey != "" {
		return errors.New("creds and nkey: give one of them")
	}
	return nil
}

func (c Config) storage() jetstream.StorageType {
	if c.Storage == "memory" {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// connHooks are told about the connection's state changes.
type connHooks struct {
	up   func()      // connected or reconnected
	down func(error) // disconnected (nil: closed)
}

// connect dials NATS. It returns at once even when the server is not
// reachable: the connection keeps retrying forever and hooks.up fires when
// it is established. Credentials never reach the log: URLs are redacted and
// the client's errors do not carry them.
func connect(c Config, hooks connHooks) (*nats.Conn, error) {
	log := c.Logger
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// A dead server behind a half-open TCP connection is noticed in
		// ~10 s instead of the default 4 minutes.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.Timeout(5 * time.Second),
		// No reconnect buffer: a publish made while disconnected fails at
		// once and its lane retries it (same message ID and expected
		// sequence) instead of an old copy being replayed on reconnect.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(*nats.Conn) {
			log.Info("nats connected")
			if hooks.up != nil {
				hooks.up()
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			log.Info("nats reconnected")
			if hooks.up != nil {
				hooks.up()
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
			if hooks.down != nil {
				hooks.down(orDisconnected(err))
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			if hooks.down != nil {
				hooks.down(nats.ErrConnectionClosed)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			// Slow consumers are reported here; every reader in this
			// package recovers from a drop by itself (the ordered
			// consumers reset from their last sequence), so this is
			// a warning, not a loss.
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "err", err, "subject", subj)
		}),
	}
	if c.InProcess != nil {
		opts = append(opts, nats.InProcessServer(c.InProcess))
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(c.TLS.CA))
	}
	if c.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(c.TLS.Cert, c.TLS.Key))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats connect to %s: %w", RedactURL(c.URL), err)
	}
	if !nc.IsConnected() {
		log.Warn("nats not reachable yet; retrying in the background", "url", RedactURL(c.URL))
	}
	return nc, nil
}

func orDisconnected(err error) error {
	if err == nil {
		return nats.ErrDisconnected
	}
	return err
}

// RedactURL hides the user, password or token of each comma-separated URL.
func RedactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		parts[i] = relay.RedactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}
