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
