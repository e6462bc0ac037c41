package venuefake

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Deribit's notifications and Seq; the sources are listed in deribit.go.

type deribitNotice struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  struct {
		Channel string `json:"channel"`
		Data    any    `json:"data"`
	} `json:"params"`
}

type deribitStats struct {
	High        json.Number `json:"high"`
	Low         json.Number `json:"low"`
	PriceChange json.Number `json:"price_change"`
	Volume      json.Number `json:"volume"`
	VolumeUSD   json.Number `json:"volume_usd"`
}

type deribitTicker struct {
	Timestamp              int64        `json:"timestamp"`
	State                  string       `json:"state"`
	Stats                  deribitStats `json:"stats"`
	IndexPrice             json.Number  `json:"index_price"`
	InstrumentName         string       `json:"instrument_name"`
	LastPrice              json.Number  `json:"last_price"`
	SettlementPrice        json.Number  `json:"settlement_price"`
	MinPrice               json.Number  `json:"min_price"`
	MaxPrice               json.Number  `json:"max_price"`
	OpenInterest           json.Number  `json:"open_interest"`
	MarkPrice              json.Number  `json:"mark_price"`
	BestAskPrice           json.Number  `json:"best_ask_price"`
	BestBidPrice           json.Number  `json:"best_bid_price"`
	EstimatedDeliveryPrice json.Number  `json:"estimated_delivery_price"`
	BestAskAmount          json.Number  `json:"best_ask_amount"`
	BestBidAmount          json.Number  `json:"best_bid_amount"`
	CurrentFunding         json.Number  `json:"current_funding"`
	Funding8h              json.Number  `json:"funding_8h"`
}

type deribitQuote struct {
	Timestamp      int64       `json:"timestamp"`
	InstrumentName string      `json:"instrument_name"`
	BestBidPrice   json.Number `json:"best_bid_price"`
	BestBidAmount  json.Number `json:"best_bid_amount"`
	BestAskPrice   json.Number `json:"best_ask_price"`
	BestAskAmount  json.Number `json:"best_ask_amount"`
}

type deribitTrade struct {
	Timestamp      int64       `json:"timestamp"`
	Price          json.Number `json:"price"`
	Amount         json.Number `json:"amount"`
	Direction      string      `json:"direction"`
	IndexPrice     json.Number `json:"index_price"`
	InstrumentName string      `json:"instrument_name"`
	TradeSeq       uint64      `json:"trade_seq"`
	MarkPrice      json.Number `json:"mark_price"`
	TickDirection  int         `json:"tick_direction"`
	Contracts      json.Number `json:"contracts"`
	TradeID        string      `json:"trade_id"`
}

// dprice and dnum print numbers as Deribit does (JSON numbers, never
// strings); prices of BTC and ETH on the 0.5 tick of BTC-PERPETUAL.
func dprice(v float64) json.Number {
	if v >= 1000 {
		v = math.Round(v*2) / 2
	} else {
		v = round2(v)
	}
	return dnum(v)
}

func dnum(v float64) json.Number { return json.Number(strconv.FormatFloat(v, 'f', -1, 64)) }

func (x *Deribit) render(c *conn, k streamKey, e *event, _ bool) []byte {
	c.state.(*deribitConn).lastData.Store(time.Now().UnixNano())
	var n deribitNotice
	n.JSONRPC, n.Method = "2.0", "subscription"
	switch k.channel {
	case ChannelTicker:
		// Field for field as the nautilus fixture ws_ticker.json [LIB,
		// EXCHANGES.md §8.3]. The ticker carries no counter: timestamp
		// is the fake's start plus the stream counter (in ms).
		n.Params.Channel = "ticker." + k.symbol + ".100ms"
		n.Params.Data = deribitTicker{Timestamp: x.epoch.at(e.seq), State: "open",
			Stats: deribitStats{High: dprice(e.high), Low: dprice(e.low),
				PriceChange: dnum(round2((e.price - e.open) / e.open * 100)), Volume: dnum(e.volume),
				VolumeUSD: dnum(round2(e.volume * e.price))},
			IndexPrice: dnum(round2(e.price)), InstrumentName: k.symbol, LastPrice: dprice(e.price),
			SettlementPrice: dnum(round2(e.open)), MinPrice: dprice(e.price * 0.985), MaxPrice: dprice(e.price * 1.015),
			OpenInterest: dnum(1132329370), MarkPrice: dnum(round2(e.price)), BestAskPrice: dprice(e.ask),
			BestBidPrice: dprice(e.bid), EstimatedDeliveryPrice: dnum(round2(e.price)),
			BestAskAmount: dnum(float64(int(e.askQty*1000)) * 10), BestBidAmount: dnum(float64(int(e.bidQty*1000)) * 10),
			CurrentFunding: "0.0", Funding8h: "0.00001742"}
	case ChannelBBO:
		// quote as captured [LIB crypto-msg-parser, EXCHANGES.md §8.3];
		// timestamp carries the counter as for the ticker.
		n.Params.Channel = "quote." + k.symbol
		n.Params.Data = deribitQuote{Timestamp: x.epoch.at(e.seq), InstrumentName: k.symbol,
			BestBidPrice: dprice(e.bid), BestBidAmount: dnum(float64(int(e.bidQty*1000)) * 10),
			BestAskPrice: dprice(e.ask), BestAskAmount: dnum(float64(int(e.askQty*1000)) * 10)}
	case ChannelTrades:
		// params.data is an array of trades [LIB nautilus ws_trades.json];
		// trade_seq, the "sequence number of trade within instrument", is
		// the counter.
		n.Params.Channel = "trades." + k.symbol + ".100ms"
		dir := "sell"
		if e.buy {
			dir = "buy"
		}
		amount := float64(int(e.qty*100)+1) * 10
		n.Params.Data = []deribitTrade{{Timestamp: e.at.UnixMilli(), Price: dprice(e.price), Amount: dnum(amount),
			Direction: dir, IndexPrice: dnum(round2(e.price)), InstrumentName: k.symbol, TradeSeq: e.seq,
			MarkPrice: dnum(round2(e.price)), TickDirection: 2, Contracts: dnum(amount / 10),
			TradeID: strconv.FormatUint(403691824+e.seq, 10)}}
	default:
		return nil
	}
	return marshal(n)
}

// announce: Deribit documents no shutdown notice; the fake closes after
// the grace without one.
func (x *Deribit) announce(c *conn) {}

// Seq reads the counter back from a published Deribit quote: params.data
// (the preset's extract) or a whole notification; trades data[0].trade_seq,
// ticker and quote timestamp.
func (x *Deribit) Seq(data []byte) (uint64, bool) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(data, &list) != nil || len(list) == 0 {
			return 0, false
		}
		return x.Seq(list[0])
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return 0, false
	}
	if p, ok := m["params"]; ok {
		var ps struct {
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(p, &ps) != nil {
			return 0, false
		}
		return x.Seq(ps.Data)
	}
	if _, ok := m["trade_seq"]; ok {
		return uintField(m, "trade_seq")
	}
	ts, ok := uintField(m, "timestamp")
	if !ok {
		return 0, false
	}
	return x.epoch.seq(int64(ts))
}
