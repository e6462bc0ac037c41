package venuefake

import (
	"net/http/httptest"
	"testing"
	"time"
)

var (
	_ Fake = (*Binance)(nil)
	_ Fake = (*OKX)(nil)
	_ Fake = (*Bybit)(nil)
	_ Fake = (*Coinbase)(nil)
	_ Fake = (*Kraken)(nil)
	_ Fake = (*HTX)(nil)
	_ Fake = (*Bitfinex)(nil)
	_ Fake = (*Deribit)(nil)
	_ Fake = (*Gate)(nil)
	_ Fake = (*KuCoin)(nil)
	_ Fake = (*Bitstamp)(nil)
)

// TestEveryVenueServesAtWSURL: each fake accepts a client at its WSURL,
// counts it, and closes (twice) with it connected.
func TestEveryVenueServesAtWSURL(t *testing.T) {
	ctx := testCtx(t)
	for name, f := range map[string]Fake{
		"binance":  NewBinance(BinanceConfig{}),
		"okx":      NewOKX(OKXConfig{}),
		"bybit":    NewBybit(BybitConfig{}),
		"coinbase": NewCoinbase(CoinbaseConfig{}),
		"kraken":   NewKraken(KrakenConfig{}),
		"htx":      NewHTX(HTXConfig{}),
		"bitfinex": NewBitfinex(BitfinexConfig{}),
		"deribit":  NewDeribit(DeribitConfig{}),
		"gateio":   NewGate(GateConfig{}),
		"kucoin":   NewKuCoin(KuCoinConfig{}),
		"bitstamp": NewBitstamp(BitstampConfig{}),
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(f)
			defer srv.Close()
			c := dial(t, ctx, f.WSURL(srv.URL))
			if f.Handshakes() != 1 || f.Open() != 1 || f.MaxOpen() != 1 || f.Refused429() != 0 {
				t.Fatalf("counters %d %d %d %d", f.Handshakes(), f.Open(), f.MaxOpen(), f.Refused429())
			}
			f.Close()
			f.Close()
			closedWithin(t, c, 5*time.Second)
			if f.Open() != 0 {
				t.Fatalf("open after Close: %d", f.Open())
			}
		})
	}
}

// TestSeqOfExtractedLists: a preset that extracts a list of trades
// (/data) publishes an array; Seq reads its first element.
func TestSeqOfExtractedLists(t *testing.T) {
	for name, tc := range map[string]struct {
		f    Fake
		data string
	}{
		"okx":     {NewOKX(OKXConfig{}), `[{"instId":"BTC-USDT","tradeId":"42","px":"1","sz":"1","side":"buy","ts":"1","count":"1"}]`},
		"kraken":  {NewKraken(KrakenConfig{}), `[{"symbol":"BTC/USD","side":"buy","price":1.0,"qty":1.0,"ord_type":"limit","trade_id":42,"timestamp":"x"}]`},
		"bybit":   {NewBybit(BybitConfig{}), `[{"T":1,"s":"BTCUSDT","S":"Buy","v":"1","p":"1","L":"PlusTick","i":"x","BT":false,"seq":42}]`},
		"deribit": {NewDeribit(DeribitConfig{}), `[{"timestamp":1,"price":1.0,"amount":10.0,"direction":"buy","instrument_name":"BTC-PERPETUAL","trade_seq":42,"trade_id":"7"}]`},
	} {
		n, ok := tc.f.Seq([]byte(tc.data))
		tc.f.Close()
		if !ok || n != 42 {
			t.Errorf("%s: Seq = %d %v", name, n, ok)
		}
	}
}
