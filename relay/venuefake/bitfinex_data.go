package venuefake

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Bitfinex's data arrays, its shutdown notice and Seq; the sources are
// listed in bitfinex.go.

// sig5 prints a price with 5 significant digits, as Bitfinex does ("For
// all pairs on Bitfinex we use 5 significant digits") [DOC].
func sig5(v float64) string {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 5, 64), 64)
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func amt(v float64) string {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 8, 64), 64)
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// render sends the event itself (through sendArray, which numbers the
// frames) and returns nil.
func (b *Bitfinex) render(c *conn, k streamKey, e *event, snapshot bool) []byte {
	st := c.state.(*bfxConn)
	st.mu.Lock()
	ch := st.chans[k.channel+"|"+k.symbol]
	st.mu.Unlock()
	if ch == nil {
		return nil
	}
	switch k.channel {
	case ChannelTicker:
		// [BID,BID_SIZE,ASK,ASK_SIZE,DAILY_CHANGE,DAILY_CHANGE_RELATIVE,
		// LAST_PRICE,VOLUME,HIGH,LOW] [DOC, CAP-3P EXCHANGES.md §7.3]. The
		// ticker has no counter: the fake's counter is VOLUME, a daily
		// volume that grows by one per event.
		change := e.price - e.open
		b.sendArray(c, ch, fmt.Appendf(nil, "[%s,%s,%s,%s,%s,%s,%s,%d,%s,%s]",
			sig5(e.bid), amt(e.bidQty), sig5(e.ask), amt(e.askQty), sig5(change),
			strconv.FormatFloat(change/e.open, 'f', 8, 64), sig5(e.price), e.seq, sig5(e.high), sig5(e.low)))
	case ChannelTrades:
		// [ID,MTS,AMOUNT,PRICE], a negative AMOUNT for a sell; the
		// snapshot [chanId,[[…],…]] first, then each trade as "te" and
		// again as "tu" [CAP-3P; LIB barter-data: "Both appear to be
		// identical payloads, but te arriving marginally faster"]. ID is
		// the counter.
		qty := e.qty
		if !e.buy {
			qty = -qty
		}
		trade := fmt.Appendf(nil, "[%d,%d,%s,%s]", e.seq, e.at.UnixMilli(), amt(qty), sig5(e.price))
		if snapshot {
			b.sendArray(c, ch, append(append([]byte{'['}, trade...), ']'))
			return nil
		}
		b.sendArray(c, ch, []byte(`"te"`), trade)
		b.sendArray(c, ch, []byte(`"tu"`), trade)
	}
	return nil
}

// announce sends info 20051: "Stop/Restart Websocket Server (please
// reconnect)" [LIB bitfinex-api-node WSv2.info], on the wire
// {"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}
// [CAP-3P, several client libraries].
func (b *Bitfinex) announce(c *conn) {
	c.send([]byte(`{"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}`))
}

// Seq reads the counter back from a published Bitfinex quote: a ticker
// array (VOLUME, index 7) or a trade [ID,MTS,AMOUNT,PRICE] (ID), as the
// presets extract them (/1, /2), or a whole frame [chanId,[…]],
// [chanId,"te",[…]] or a snapshot (its first trade).
func (b *Bitfinex) Seq(data []byte) (uint64, bool) {
	var a []json.RawMessage
	if json.Unmarshal(data, &a) != nil || len(a) < 2 {
		return 0, false
	}
	if a[1][0] == '"' { // [chanId,"te",[…]]
		if len(a) < 3 {
			return 0, false
		}
		return b.Seq(a[2])
	}
	if a[1][0] == '[' { // [chanId,[…]] or a snapshot's list
		var inner []json.RawMessage
		if json.Unmarshal(a[1], &inner) == nil && len(inner) > 0 && inner[0][0] == '[' {
			return b.Seq(inner[0])
		}
		return b.Seq(a[1])
	}
	var idx int
	switch {
	case len(a) == 4:
		idx = 0
	case len(a) >= 10:
		idx = 7
	default:
		return 0, false
	}
	n, err := strconv.ParseUint(string(a[idx]), 10, 64)
	return n, err == nil
}

// randomUUID returns a random version-4 UUID string.
func randomUUID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
