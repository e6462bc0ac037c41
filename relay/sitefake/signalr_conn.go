package sitefake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// rs ends every JSON message (Hub "JSON Encoding": "All JSON messages must
// be terminated by the ASCII character 0x1E").
const rs = 0x1e

// writeWait bounds one write to a client.
const writeWait = 5 * time.Second

// hubConn is one client connection: run reads (handshake, then messages),
// a ticker goroutine sends quotes and pings and checks the client timeout.
type hubConn struct {
	h  *SignalRHub
	ws *websocket.Conn

	mu   sync.Mutex // guards subs
	subs map[string]*hubSub

	wmu       sync.Mutex // one message at a time, so a close message is the last
	closing   bool       // guarded by wmu
	closeOnce sync.Once

	lastRecv, lastSend atomic.Int64 // Unix ns
}

type hubSub struct {
	seq   int64
	price float64
}

// protocolError ends a connection with a Close message (Hub "Errors": "If
// either endpoint commits a Protocol Error … the other endpoint may
// immediately terminate the underlying connection").
type protocolError struct{ msg string }

func (e protocolError) Error() string { return e.msg }

func protoErr(format string, args ...any) error {
	return protocolError{msg: fmt.Sprintf(format, args...)}
}

// run serves the connection until it ends.
func (c *hubConn) run() {
	ctx, cancel := context.WithCancel(c.h.ctx)
	defer c.ws.CloseNow()
	defer cancel()
	buf, ok := c.handshake(ctx)
	if !ok {
		return
	}
	c.h.connections.Add(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.tick(ctx)
	}()
	err := c.readLoop(ctx, buf)
	var pe protocolError
	if errors.As(err, &pe) {
		c.h.protoErrs.Add(1)
		// server: with detailed errors, "Connection closed with an error."
		// and the exception.
		c.closeWith("Connection closed with an error. InvalidDataException: " + pe.msg)
	}
	cancel()
	<-done
}

// handshake reads the HandshakeRequest (Hub: the client's first message,
// ended by 0x1E, possibly over several transport messages) and answers it.
// It returns what followed the request.
func (c *hubConn) handshake(ctx context.Context) ([]byte, bool) {
	// server HandshakeAsync: past HandshakeTimeout it answers "Handshake was
	// canceled." and gives up.
	fired := make(chan struct{})
	timer := time.AfterFunc(c.h.cfg.HandshakeTimeout, func() {
		defer close(fired)
		c.write(ctx, handshakeError("Handshake was canceled."))
		c.ws.CloseNow()
	})
	stopped := false
	stopTimer := func() bool { // true if the timer had not fired; waits for it if it had
		if stopped {
			return true
		}
		stopped = true
		if timer.Stop() {
			return true
		}
		<-fired
		return false
	}
	defer stopTimer()
	var buf []byte
	for {
		_, p, err := c.ws.Read(ctx)
		if err != nil {
			return nil, false
		}
		c.lastRecv.Store(time.Now().UnixNano())
		buf = append(buf, p...)
		i := bytes.IndexByte(buf, rs)
		if i < 0 {
			if len(buf) > c.h.cfg.MaxMessageSize {
				c.write(ctx, handshakeError("An unexpected error occurred during connection handshake. InvalidDataException: handshake request too large."))
				return nil, false
			}
			continue
		}
		if !stopTimer() {
			return nil, false // timed out meanwhile
		}
		if msg := c.checkHandshake(buf[:i]); msg != "" {
			c.write(ctx, handshakeError(msg))
			_ = c.ws.Close(websocket.StatusNormalClosure, "")
			return nil, false
		}
		// server: a successful handshake is answered with an empty object.
		if !c.write(ctx, []byte("{}\x1e")) {
			return nil, false
		}
		return append([]byte(nil), buf[i+1:]...), true
	}
}

// checkHandshake returns the handshake error for a request, "" if it is
// accepted (Hub "HandshakeRequest"; texts of the server).
func (c *hubConn) checkHandshake(p []byte) string {
	var req struct {
		Protocol *string `json:"protocol"`
		Version  *int    `json:"version"`
	}
	if err := json.Unmarshal(p, &req); err != nil {
		return "An unexpected error occurred during connection handshake. InvalidDataException: " + err.Error()
	}
	switch {
	case req.Protocol == nil:
		return "An unexpected error occurred during connection handshake. InvalidDataException: Missing required property 'protocol'."
	case req.Version == nil:
		return "An unexpected error occurred during connection handshake. InvalidDataException: Missing required property 'version'."
	case *req.Protocol != "json":
		return fmt.Sprintf("The protocol '%s' is not supported.", *req.Protocol)
	case *req.Version < 1 || *req.Version > 2:
		// The JSON protocol is at version 2 (the JavaScript client asks for
		// 2; the document's "must always be 1" is the original version).
		return fmt.Sprintf("The server does not support version %d of the '%s' protocol.", *req.Version, *req.Protocol)
	case c.h.cfg.HandshakeError != "":
		return c.h.cfg.HandshakeError
	}
	return ""
}

func handshakeError(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return append(b, rs)
}

// readLoop reads messages; the transport is a byte stream to the hub, so a
// message may end inside a record, which the next one completes.
func (c *hubConn) readLoop(ctx context.Context, buf []byte) error {
	for {
		for {
			i := bytes.IndexByte(buf, rs)
			if i < 0 {
				break
			}
			rec := buf[:i]
			if len(rec) > c.h.cfg.MaxMessageSize {
				return protoErr("The maximum message size of %dB was exceeded.", c.h.cfg.MaxMessageSize)
			}
			stop, err := c.handle(ctx, rec)
			if err != nil || stop {
				return err
			}
			buf = buf[i+1:]
		}
		if len(buf) > c.h.cfg.MaxMessageSize {
			return protoErr("The maximum message size of %dB was exceeded.", c.h.cfg.MaxMessageSize)
		}
		_, p, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		c.lastRecv.Store(time.Now().UnixNano())
		buf = append(buf, p...)
	}
}

// Fields each message type may carry (Hub "JSON Encoding"); any other is a
// protocol error (Hub "Errors": "to have an unrecognized field").
var allowedFields = map[int]map[string]bool{
	1: {"type": true, "invocationId": true, "target": true, "arguments": true, "streamIds": true, "headers": true},
	4: {"type": true, "invocationId": true, "target": true, "arguments": true, "streamIds": true, "headers": true},
	5: {"type": true, "invocationId": true, "headers": true},
	6: {"type": true},
	7: {"type": true, "error": true, "allowReconnect": true, "headers": true},
}

// handle processes one hub message; stop is true when the client closed.
func (c *hubConn) handle(ctx context.Context, rec []byte) (stop bool, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(rec, &m); err != nil {
		return false, protoErr("Error reading JSON: %v", err)
	}
	rawType, ok := m["type"]
	if !ok {
		return false, protoErr("Missing required property 'type'.")
	}
	t, err := strconv.Atoi(string(rawType))
	if err != nil {
		return false, protoErr("Expected 'type' to be of type Integer.")
	}
	allowed, known := allowedFields[t]
	if !known {
		switch t {
		case 2, 3: // Hub "Errors": a StreamItem or Completion for an invocation never sent
			return false, protoErr("Unexpected %s: this hub sent no invocation expecting results.", map[int]string{2: "StreamItem", 3: "Completion"}[t])
		}
		return false, protoErr("Unknown message type: %d", t)
	}
	for k := range m {
		if !allowed[k] {
			return false, protoErr("Unexpected property '%s' in a message of type %d.", k, t)
		}
	}
	switch t {
	case 6:
		c.h.pings.Add(1)
		return false, nil
	case 7: // the client closes
		return true, nil
	case 5: // CancelInvocation: nothing runs long enough to cancel
		return false, nil
	}
	var inv struct {
		InvocationID *string           `json:"invocationId"`
		Target       *string           `json:"target"`
		Arguments    []json.RawMessage `json:"arguments"`
		StreamIDs    []string          `json:"streamIds"`
	}
	if err := json.Unmarshal(rec, &inv); err != nil {
		return false, protoErr("Invalid invocation: %v", err)
	}
	switch {
	case inv.Target == nil || *inv.Target == "":
		return false, protoErr("Missing required property 'target'.")
	case m["arguments"] == nil || inv.Arguments == nil:
		return false, protoErr("Missing required property 'arguments'.")
	case inv.InvocationID != nil && *inv.InvocationID == "":
		return false, protoErr("Invalid empty 'invocationId'.")
	case len(inv.StreamIDs) > 0:
		return false, protoErr("Client-to-server streaming is not supported by this hub.")
	}
	id := ""
	if inv.InvocationID != nil {
		id = *inv.InvocationID
	}
	if t == 4 {
		if id == "" {
			return false, protoErr("Missing required property 'invocationId'.")
		}
		c.complete(ctx, id, fmt.Sprintf("The client attempted to invoke the non-streaming '%s' method with a streaming invocation.", *inv.Target))
		return false, nil
	}
	c.complete(ctx, id, c.invoke(*inv.Target, inv.Arguments))
	return false, nil
}

// invoke runs a hub method and returns its error text ("" on success).
// Method names are case-sensitive (Hub: "Target is case-sensitive").
func (c *hubConn) invoke(target string, args []json.RawMessage) string {
	if target != "Subscribe" && target != "Unsubscribe" {
		return fmt.Sprintf("Failed to invoke '%s' due to an error on the server. HubException: Method does not exist.", target)
	}
	if len(args) != 1 {
		return fmt.Sprintf("Failed to invoke '%s' due to an error on the server. InvalidDataException: Invocation provides %d argument(s) but target expects 1.", target, len(args))
	}
	var sym string
	if err := json.Unmarshal(args[0], &sym); err != nil {
		return fmt.Sprintf("Failed to invoke '%s' due to an error on the server. InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked.", target)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if target == "Unsubscribe" {
		delete(c.subs, sym)
		return ""
	}
	if !c.h.known[sym] {
		c.h.rejected.Add(1)
		// server: a HubException's message reaches the client.
		return fmt.Sprintf("An unexpected error occurred invoking 'Subscribe' on the server. HubException: unknown symbol %s", sym)
	}
	c.h.subscribes.Add(1)
	if c.subs[sym] == nil {
		c.subs[sym] = &hubSub{price: 100 + float64(sym[0]%50)*10}
	}
	return ""
}

// complete sends the Completion of an invocation; none for a non-blocking
// one (Hub "Non-Blocking Invocations": "it must not send any response").
func (c *hubConn) complete(ctx context.Context, id, errText string) {
	if id == "" {
		return
	}
	m := map[string]any{"type": 3, "invocationId": id}
	if errText != "" {
		m["error"] = errText
	}
	b, _ := json.Marshal(m)
	c.write(ctx, append(b, rs))
}

// tick sends quotes, pings when nothing was sent for KeepAliveInterval, and
// drops a client silent for ClientTimeout.
func (c *hubConn) tick(ctx context.Context) {
	cfg := &c.h.cfg
	quotes := time.NewTicker(cfg.Interval)
	defer quotes.Stop()
	beat := time.NewTicker(max(min(cfg.KeepAliveInterval, cfg.ClientTimeout)/4, 5*time.Millisecond))
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-quotes.C:
			for _, msg := range c.quoteMessages() {
				if !c.write(ctx, msg) {
					return
				}
			}
		case now := <-beat.C:
			if now.Sub(time.Unix(0, c.lastRecv.Load())) > cfg.ClientTimeout {
				c.h.timeouts.Add(1)
				c.closeWith(fmt.Sprintf("Client timeout (%dms) elapsed without receiving a message from the client.", cfg.ClientTimeout.Milliseconds()))
				return
			}
			if now.Sub(time.Unix(0, c.lastSend.Load())) >= cfg.KeepAliveInterval {
				if !c.write(ctx, []byte("{\"type\":6}\x1e")) {
					return
				}
			}
		}
	}
}

// quoteMessages builds one message per subscribed symbol, each holding
// QuotesPerTick quote invocations.
func (c *hubConn) quoteMessages() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	now := time.Now().UnixMilli()
	for sym, s := range c.subs {
		var b []byte
		for range c.h.cfg.QuotesPerTick {
			s.seq++
			s.price *= 1 + (float64(s.seq%7)-3)/2000
			arg, _ := json.Marshal(map[string]any{"symbol": sym, "seq": s.seq, "price": strconv.FormatFloat(s.price, 'f', 2, 64), "ts": now})
			b = append(b, `{"type":1,"target":"quote","arguments":[`...)
			b = append(b, arg...)
			b = append(b, "]}\x1e"...)
		}
		out = append(out, b)
	}
	return out
}

// write sends one message; false when the connection is closing or failed.
func (c *hubConn) write(ctx context.Context, p []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, writeWait)
	err := c.ws.Write(wctx, websocket.MessageText, p)
	cancel()
	if err != nil {
		c.ws.CloseNow()
		return false
	}
	c.lastSend.Store(time.Now().UnixNano())
	return true
}

// closeWith sends a Close message (with errText, if any) as the last
// message and closes the WebSocket normally.
func (c *hubConn) closeWith(errText string) {
	c.closeOnce.Do(func() {
		m := map[string]any{"type": 7}
		if errText != "" {
			m["error"] = errText
		}
		b, _ := json.Marshal(m)
		wctx, cancel := context.WithTimeout(c.h.ctx, writeWait)
		defer cancel()
		c.wmu.Lock()
		c.closing = true
		err := c.ws.Write(wctx, websocket.MessageText, append(b, rs))
		c.wmu.Unlock()
		if err != nil {
			c.ws.CloseNow()
			return
		}
		_ = c.ws.Close(websocket.StatusNormalClosure, "")
	})
}
