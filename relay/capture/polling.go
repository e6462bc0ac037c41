package capture

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
)

// withPolling returns c with the Engine.IO long-polling traffic of each
// Socket.IO session put in front of its WebSocket frames. A Socket.IO
// client connects by long-polling first (GET/POST /socket.io/?EIO=4&
// transport=polling&sid=…, packets separated by 0x1E: socket.io
// docs/engine.io-protocol/v4-current.md, "Packet encoding", HTTP
// long-polling), and what it emits before the upgrade (the namespace
// connect, often the subscribes) goes there, not into the WebSocket. The
// socket's URL carries the same sid. c is not changed.
func withPolling(c *Capture) *Capture {
	if len(c.Polling) == 0 {
		return c
	}
	// The handshake GET has no sid in its URL: its open packet names it.
	polls := slices.Clone(c.Polling)
	for i, p := range polls {
		if p.SID == "" && !p.Sent && strings.HasPrefix(p.Payload, "0{") {
			var open struct {
				SID string `json:"sid"`
			}
			first, _, _ := strings.Cut(p.Payload[1:], "\x1e")
			if json.Unmarshal([]byte(first), &open) == nil {
				polls[i].SID = open.SID
			}
		}
	}
	out := *c
	out.Sessions = slices.Clone(c.Sessions)
	for i, s := range out.Sessions {
		u, err := url.Parse(s.URL)
		if err != nil || !strings.Contains(u.Path, "/socket.io") {
			continue
		}
		sid := u.Query().Get("sid")
		if sid == "" {
			continue
		}
		var frames []Frame
		for _, p := range polls {
			if p.SID != sid {
				continue
			}
			for _, pkt := range strings.Split(p.Payload, "\x1e") {
				if pkt == "" {
					continue
				}
				f := Frame{Sent: p.Sent, At: p.At, Data: []byte(pkt)}
				if b, ok := strings.CutPrefix(pkt, "b"); ok {
					f.Binary, f.Data = true, decodeBase64(b) // a binary attachment
				}
				frames = append(frames, f)
			}
		}
		if len(frames) == 0 {
			continue
		}
		s.Polled = len(frames)
		s.Frames = append(frames, s.Frames...)
		out.Sessions[i] = s
	}
	return &out
}
