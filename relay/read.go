package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

// read is the session's reader: it reads every message, lets the framing
// split it into records and the frame rules classify each, publishes
// quotes, answers pings and tells the owner about rejections, announced
// disconnects and, last, why the session ended.
func (s *session) read(rules *FrameRules) {
	err := s.readLoop(rules)
	s.ended.Store(true)
	s.quitOnce.Do(func() { close(s.quit) })
	s.c.eventEnd(sessEvent{s: s, kind: evEnded, err: s.err(err)})
}

func (s *session) readLoop(rules *FrameRules) error {
	c := s.c
	cfg := &c.up.cfg
	var buf bytes.Buffer
	var recs []record
	for {
		ctx, cancel := context.Background(), context.CancelFunc(nil)
		if s.readIdle > 0 {
			ctx, cancel = context.WithTimeout(ctx, s.readIdle)
		}
		typ, rd, err := s.ws.Reader(ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if cancel != nil {
			idle := ctx.Err() != nil
			cancel()
			if err != nil && idle {
				return fmt.Errorf("no message for %s", s.readIdle)
			}
		}
		if err != nil {
			return readError(err, cfg.ReadLimit)
		}
		now := time.Now()
		var reply []byte
		var closed error
		recs, reply, closed = s.fr.decode(recs[:0], typ, buf.Bytes())
		if sr, ok := s.fr.(skipReporter); ok {
			if err := sr.skipped(); err != nil {
				for _, m := range c.memberList() {
					m.ignored.Add(1)
					m.setErr(err.Error())
				}
				c.log.Debug("message skipped", "err", err)
			}
		}
		if reply != nil {
			if err := s.writeRaw(reply); err != nil {
				return fmt.Errorf("%s pong: %w", cfg.Framing, err)
			}
		}
		for _, rec := range recs {
			if err := s.handle(rules, rec, now); err != nil {
				return err
			}
		}
		clear(recs)
		if closed != nil {
			return closed
		}
	}
}

// writeRaw sends a message as the framing produced it.
func (s *session) writeRaw(p []byte) error {
	wctx, cancel := context.WithTimeout(context.Background(), s.c.up.cfg.PingTimeout)
	defer cancel()
	return s.ws.Write(wctx, websocket.MessageText, p)
}

// handle acts on one record; an error ends the session.
func (s *session) handle(rules *FrameRules, rec record, now time.Time) error {
	c := s.c
	members := c.memberList()
	for _, m := range members {
		m.frames.Add(1)
	}
	res, err := rules.Handle(rec.binary, rec.data)
	if err != nil {
		for _, m := range members {
			m.ignored.Add(1)
			if errors.Is(err, ErrInflatedTooLarge) {
				m.setErr(err.Error())
			}
		}
		c.log.Debug("frame ignored", "err", err, "bytes", len(rec.data))
		return nil
	}
	if res.Ready {
		s.readyOnce.Do(func() { close(s.ready) })
	}
	switch res.Kind {
	case FrameQuote:
		sym := c.route(res.Route, members)
		if sym == nil {
			for _, m := range members {
				m.ignored.Add(1)
			}
			c.log.Debug("quote for no subscribed symbol", "route", truncate(string(res.Route), 80))
			return nil
		}
		if sym.removed.Load() {
			return nil
		}
		ok, startSync, err := sym.offer(s, res.Data, now)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if startSync {
			c.event(s, sessEvent{s: s, kind: evHeld, sym: sym})
		}
		if !ok {
			return nil // the session being replaced: the new one publishes
		}
		s.quotes.Add(1)
		sym.quotes.Add(1)
		sym.lastQuote.Store(now.UnixNano())
		if sym.stateNow() != StateLive {
			sym.setState(StateLive, "quotes flowing")
		}
	case FramePing:
		if err := s.write(res.Reply); err != nil {
			return fmt.Errorf("app pong: %w", err)
		}
	case FrameHeartbeat:
	case FrameReject:
		c.event(s, sessEvent{s: s, kind: evReject, msg: res.Message, id: string(res.ID), route: string(res.Route)})
	case FrameReconnect:
		c.event(s, sessEvent{s: s, kind: evReconnect})
	case FrameError:
		msg := truncate(string(res.Data), 256)
		for _, m := range members {
			m.ignored.Add(1)
			m.setErr("upstream error frame: " + msg)
		}
		c.log.Warn("upstream sent an error frame", "frame", msg)
		if s.quotes.Load() == 0 {
			return fmt.Errorf("upstream error frame: %s", msg)
		}
	default:
		for _, m := range members {
			m.ignored.Add(1)
		}
	}
	return nil
}

func readError(err error, limit int64) error {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		return fmt.Errorf("frame exceeds read_limit of %d bytes (closed with 1009): %w", limit, err)
	}
	if code := websocket.CloseStatus(err); code != -1 {
		return fmt.Errorf("upstream closed: %d: %w", code, err)
	}
	return fmt.Errorf("read: %w", err)
}
