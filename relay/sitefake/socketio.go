package sitefake

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// SocketIOConfig configures StartSocketIO. A zero field means its default.
type SocketIOConfig struct {
	// Symbols the site knows; default BTC-USD, ETH-USD, SOL-USD.
	Symbols []string
	// Interval between two quotes of a symbol; default 50 ms.
	Interval time.Duration
	// PingInterval and PingTimeout are the Engine.IO heartbeat (the
	// server's options); default 25 s and 20 s, Socket.IO's own defaults.
	PingInterval, PingTimeout time.Duration
	// Token the /private namespace wants in the CONNECT auth payload
	// ({"token": Token}); default "secret".
	Token string
	// TokenEverywhere makes every namespace, / included, want the token:
	// a client without it gets CONNECT_ERROR "not authorized".
	TokenEverywhere bool
	// StartTimeout bounds the start of Node; default 20 s.
	StartTimeout time.Duration
}

// SocketIO is a running Socket.IO quote site: the npm package socket.io
// (see testdata/node/socketio_server.mjs for its protocol) run by Node on
// 127.0.0.1. All methods are safe for concurrent use; Close is idempotent.
type SocketIO struct {
	// URL is the Engine.IO WebSocket URL, as a browser opens it:
	// ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket.
	URL string
	// PageURL is the site's page (http://127.0.0.1:PORT/): it loads the
	// Socket.IO browser client and subscribes to ?symbols= (default
	// BTC-USD) in ?nsp=, by long-polling then WebSocket unless
	// ?transport=websocket; window.quotes counts the quotes it got.
	PageURL string
	// Port is the loopback port Node listens on.
	Port int

	proc *NodeProcess

	mu     sync.Mutex // one command at a time
	nextID int
}

// StartSocketIO starts the site. It returns an error wrapping ErrNoNode when
// Node or the packages are missing (see RequireNode).
func StartSocketIO(ctx context.Context, cfg SocketIOConfig) (*SocketIO, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 20 * time.Second
	}
	opts := map[string]any{}
	if len(cfg.Symbols) > 0 {
		opts["symbols"] = cfg.Symbols
	}
	if cfg.Interval > 0 {
		opts["intervalMs"] = max(1, cfg.Interval.Milliseconds())
	}
	if cfg.PingInterval > 0 {
		opts["pingInterval"] = max(1, cfg.PingInterval.Milliseconds())
	}
	if cfg.PingTimeout > 0 {
		opts["pingTimeout"] = max(1, cfg.PingTimeout.Milliseconds())
	}
	if cfg.Token != "" {
		opts["token"] = cfg.Token
	}
	if cfg.TokenEverywhere {
		opts["authAll"] = true
	}
	arg, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("sitefake: socket.io options: %w", err)
	}
	proc, err := StartNode(ctx, "socketio_server.mjs", string(arg))
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	var ready struct {
		Ready bool `json:"ready"`
		Port  int  `json:"port"`
	}
	if err := proc.waitLine(sctx, &ready, func() bool { return ready.Ready && ready.Port > 0 }); err != nil {
		_ = proc.Close()
		return nil, fmt.Errorf("sitefake: socket.io server did not start: %w", err)
	}
	return &SocketIO{
		URL:     "ws://127.0.0.1:" + strconv.Itoa(ready.Port) + "/socket.io/?EIO=4&transport=websocket",
		PageURL: "http://127.0.0.1:" + strconv.Itoa(ready.Port) + "/",
		Port:    ready.Port,
		proc:    proc,
	}, nil
}

// SocketIOStats is what the site counted since it started.
type SocketIOStats struct {
	Connections int            `json:"connections"` // namespace connections accepted
	Open        int            `json:"open"`        // Engine.IO connections open now
	Pongs       int            `json:"pongs"`       // pong packets received (answers to its pings)
	Subscribes  int            `json:"subscribes"`
	Rejected    int            `json:"rejected"`    // subscribes to unknown symbols
	Disconnects map[string]int `json:"disconnects"` // by Socket.IO reason ("ping timeout", "client namespace disconnect", …)
}

// Stats returns the site's counters.
func (s *SocketIO) Stats(ctx context.Context) (SocketIOStats, error) {
	var st SocketIOStats
	err := s.command(ctx, map[string]any{"cmd": "stats"}, &st)
	return st, err
}

// Disconnect sends a Socket.IO DISCONNECT to every socket of namespace nsp
// ("" is "/") and returns how many there were.
func (s *SocketIO) Disconnect(ctx context.Context, nsp string) (int, error) {
	var r struct {
		Count int `json:"count"`
	}
	err := s.command(ctx, map[string]any{"cmd": "disconnect", "nsp": nsp}, &r)
	return r.Count, err
}

// CloseConnections ends every Engine.IO connection and returns how many.
func (s *SocketIO) CloseConnections(ctx context.Context) (int, error) {
	var r struct {
		Count int `json:"count"`
	}
	err := s.command(ctx, map[string]any{"cmd": "close"}, &r)
	return r.Count, err
}

// EmitBinary emits a "quote" event with a binary attachment to namespace nsp.
func (s *SocketIO) EmitBinary(ctx context.Context, nsp string) error {
	return s.command(ctx, map[string]any{"cmd": "binary", "nsp": nsp}, nil)
}

// Emit emits event with args to every socket of namespace nsp.
func (s *SocketIO) Emit(ctx context.Context, nsp, event string, args ...any) error {
	return s.command(ctx, map[string]any{"cmd": "emit", "nsp": nsp, "event": event, "args": args}, nil)
}

// command sends one control command and decodes its answer into out.
func (s *SocketIO) command(ctx context.Context, c map[string]any, out any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	id := s.nextID
	c["id"] = id
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := s.proc.Send(string(line)); err != nil {
		return fmt.Errorf("sitefake: socket.io %v: %w", c["cmd"], err)
	}
	var raw json.RawMessage
	var head struct {
		ID    int    `json:"id"`
		Error string `json:"error"`
	}
	if err := s.proc.waitLine(ctx, &raw, func() bool {
		return json.Unmarshal(raw, &head) == nil && head.ID == id
	}); err != nil {
		return err
	}
	if head.Error != "" {
		return fmt.Errorf("sitefake: socket.io %v: %s", c["cmd"], head.Error)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// Stderr returns what Node wrote to stderr (for a failing test's log).
func (s *SocketIO) Stderr() string { return s.proc.Stderr() }

// Close stops Node and waits for it.
func (s *SocketIO) Close() error { return s.proc.Close() }
