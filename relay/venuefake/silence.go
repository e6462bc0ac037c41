package venuefake

import (
	"context"
	"time"
)

// silenceCut starts the rule "the client has sent nothing (a data frame,
// a ping or a pong) for d while exempt() is false: drop the connection
// without a close frame". Probes of Bitfinex, Deribit and Gate saw a
// socket with no subscription and no client frame cut with 1006 and no
// close frame (60 s, 60.5 s and 30.5 s) [CAP-3P probe reports quoted in
// each venue's file]; a subscribed socket was kept. exempt may be nil
// (the rule always applies). Venues whose docs name their own silence
// rule (KuCoin's ping timeout) implement it in their file.
func silenceCut(c *conn, d time.Duration, reason string, exempt func() bool) {
	if d <= 0 {
		return
	}
	c.goConn(func(ctx context.Context) {
		t := time.NewTimer(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if exempt != nil && exempt() {
				t.Reset(d)
				continue
			}
			left := d - time.Since(time.Unix(0, c.lastIn.Load()))
			if left <= 0 {
				c.closeNow(reason)
				return
			}
			t.Reset(left)
		}
	})
}

// epochCounter maps a stream counter onto a timestamp field for the
// channels whose frames carry no counter of their own (Deribit ticker
// and quote, KuCoin level1, Bitstamp order_book): the field is the
// fake's start time plus the counter, in the field's unit, so it grows
// by one per event, stays below the wall clock while pushes are slower
// than one per unit, and Seq subtracts the start back out.
type epochCounter int64

func (e epochCounter) at(seq uint64) int64 { return int64(e) + int64(seq) }

func (e epochCounter) seq(v int64) (uint64, bool) {
	if v <= int64(e) {
		return 0, false
	}
	return uint64(v - int64(e)), true
}
