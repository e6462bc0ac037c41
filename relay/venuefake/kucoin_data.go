package venuefake

import (
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"strconv"
)

// KuCoin's messages and Seq; the sources are listed in kucoin.go.

type kucoinMessage struct {
	Type    string `json:"type"`
	Topic   string `json:"topic"`
	Subject string `json:"subject"`
	Data    any    `json:"data"`
}

type kucoinTicker struct {
	BestAsk     string `json:"bestAsk"`
	BestAskSize string `json:"bestAskSize"`
	BestBid     string `json:"bestBid"`
	BestBidSize string `json:"bestBidSize"`
	Price       string `json:"price"`
	Sequence    string `json:"sequence"`
	Size        string `json:"size"`
	Time        int64  `json:"time"`
}

type kucoinMatch struct {
	Symbol       string `json:"symbol"`
	Sequence     string `json:"sequence"`
	Side         string `json:"side"`
	Size         string `json:"size"`
	Price        string `json:"price"`
	TakerOrderID string `json:"takerOrderId"`
	Time         string `json:"time"`
	Type         string `json:"type"`
	MakerOrderID string `json:"makerOrderId"`
	TradeID      string `json:"tradeId"`
}

type kucoinLevel1 struct {
	Asks      [2]string `json:"asks"`
	Bids      [2]string `json:"bids"`
	Timestamp int64     `json:"timestamp"`
}

func (k *KuCoin) render(c *conn, key streamKey, e *event, _ bool) []byte {
	m := kucoinMessage{Type: "message"}
	switch key.channel {
	case ChannelTicker:
		// As captured 2022-05-31 [LIB crypto-msg-parser, EXCHANGES.md
		// §10.3]; "sequence" is the counter.
		m.Topic, m.Subject = "/market/ticker:"+key.symbol, "trade.ticker"
		m.Data = kucoinTicker{BestAsk: num(e.ask, 1), BestAskSize: num(e.askQty, 7), BestBid: num(e.bid, 1),
			BestBidSize: num(e.bidQty, 7), Price: num(e.price, 1), Sequence: strconv.FormatUint(e.seq, 10),
			Size: num(e.qty, 8), Time: e.at.UnixMilli()}
	case ChannelTrades:
		// As captured 2021-03-21 [LIB crypto-msg-parser] and documented
		// ("subject":"trade.l3match") [DOC]; "sequence" is the counter.
		m.Topic, m.Subject = "/market/match:"+key.symbol, "trade.l3match"
		side := "sell"
		if e.buy {
			side = "buy"
		}
		m.Data = kucoinMatch{Symbol: key.symbol, Sequence: strconv.FormatUint(e.seq, 10), Side: side,
			Size: num(e.qty, 8), Price: num(e.price, 1), TakerOrderID: randomHex(12),
			Time: strconv.FormatInt(e.at.UnixNano(), 10), Type: "match", MakerOrderID: randomHex(12),
			TradeID: randomHex(12)}
	case ChannelBBO:
		// {"topic":"/spotMarket/level1:BTC-USDT","type":"message","subject":
		// "level1","data":{"asks":["68145.8","0.51987471"],"bids":[…],
		// "timestamp":1729816058766}} [DOC docs-new 3470067w0]. No counter
		// field: timestamp is the fake's start plus the counter (ms).
		m.Topic, m.Subject = "/spotMarket/level1:"+key.symbol, "level1"
		m.Data = kucoinLevel1{Asks: [2]string{num(e.ask, 1), num(e.askQty, 8)},
			Bids: [2]string{num(e.bid, 1), num(e.bidQty, 8)}, Timestamp: k.epoch.at(e.seq)}
	default:
		return nil
	}
	return marshal(m)
}

// announce: no shutdown notice is documented for public sockets.
func (k *KuCoin) announce(c *conn) {}

// Seq reads the counter back from a published KuCoin quote: /data (the
// preset's extract) or a whole message; ticker and match "sequence",
// level1 timestamp.
func (k *KuCoin) Seq(data []byte) (uint64, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	if inner, ok := m["data"]; ok {
		return k.Seq(inner)
	}
	if _, ok := m["sequence"]; ok {
		return uintField(m, "sequence")
	}
	ts, ok := uintField(m, "timestamp")
	if !ok {
		return 0, false
	}
	return k.epoch.seq(int64(ts))
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	return hex.EncodeToString(b)
}
