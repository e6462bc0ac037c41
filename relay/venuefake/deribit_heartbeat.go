package venuefake

import (
	"context"
	"encoding/json"
	"time"
)

// Deribit's heartbeat (public/set_heartbeat); the sources are listed in
// deribit.go.

// setHeartbeat: "the API server will send heartbeat messages and
// test_request messages. Your software should respond to test_request
// messages by sending a /api/v2/public/test request. If your software
// fails to do so, the API server will immediately close the connection"
// [DOC public/set_heartbeat]. On the wire: a test_request every interval
// (with a heartbeat frame beside it when the socket is idle), and an
// unanswered one closed the socket one interval later with 4000
// "heartbeat close" [CAP-3P probe]. The interval is in seconds, scaled.
func (x *Deribit) setHeartbeat(c *conn, id, params json.RawMessage, in time.Time) {
	st := c.state.(*deribitConn)
	var ps struct {
		Interval json.RawMessage `json:"interval"`
	}
	_ = json.Unmarshal(params, &ps)
	var secs float64
	reason := ""
	switch {
	case len(ps.Interval) == 0 || string(ps.Interval) == "null":
		// -32602 Invalid params {"reason":"value required","param":
		// "interval"} [CAP-3P].
		reason = "value required"
	case json.Unmarshal(ps.Interval, &secs) != nil:
		reason = "must be a number" // not probed
	case secs < float64(x.heartbeatMinimum):
		reason = "must be greater or equal to 10" // "not less than 10" [DOC]; wire text not probed
	}
	if reason != "" {
		c.send(deribitReply(id, "error", deribitErr(-32602, "Invalid params", deribitParamErr{reason, "interval"}), in))
		return
	}
	// No maximum is documented; an interval beyond a day is taken as a
	// day (a Duration cannot hold 1e308 s).
	period := max(time.Millisecond, time.Duration(min(secs, 86400)*float64(time.Second)*x.scale))
	st.mu.Lock()
	st.gen++
	gen := st.gen
	st.pending = time.Time{}
	st.mu.Unlock()
	c.send(deribitReply(id, "result", []byte(`"ok"`), in))
	c.goConn(func(ctx context.Context) {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !x.beat(c, gen, period) {
				return
			}
		}
	})
}

// beat is one heartbeat period of generation gen; false once a newer
// set_heartbeat or disable_heartbeat replaced it.
func (x *Deribit) beat(c *conn, gen int, period time.Duration) bool {
	st := c.state.(*deribitConn)
	st.mu.Lock()
	if st.gen != gen {
		st.mu.Unlock()
		return false
	}
	idle := time.Since(time.Unix(0, st.lastData.Load())) >= period
	var sent time.Time
	if st.pending.IsZero() {
		sent = time.Now()
		st.pending = sent
	}
	st.mu.Unlock()
	if idle {
		c.send([]byte(`{"params":{"type":"heartbeat"},"method":"heartbeat","jsonrpc":"2.0"}`))
	}
	if sent.IsZero() {
		return true // a test_request is still pending: its deadline decides
	}
	// {"params":{"type":"test_request"},"method":"heartbeat",
	// "jsonrpc":"2.0"} [CAP-3P probe].
	c.send([]byte(`{"params":{"type":"test_request"},"method":"heartbeat","jsonrpc":"2.0"}`))
	c.after(period, func() {
		st.mu.Lock()
		missed := st.gen == gen && st.pending.Equal(sent)
		st.mu.Unlock()
		if missed {
			c.close(4000, "heartbeat close")
		}
	})
	return true
}
