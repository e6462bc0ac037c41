package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wsrelay/wsrelay/relay/relaytest"
	"github.com/wsrelay/wsrelay/relay/venuefake"
)

// TestTailPresetsEndToEnd: wsrelay serve -preset NAME (-channel C) against
// the venue's strict fake, then wsrelay tail: each line shows the prices
// the preset's fields point at.
func TestTailPresetsEndToEnd(t *testing.T) {
	scale := venuefake.Config{TimeScale: 0.05} // pushes every 50 ms
	for _, c := range []struct {
		preset, channel, symbol string // symbol as given to -symbols (NAME or NAME=REF)
		fake                    venuefake.Fake
		line                    string // what a line must show, as a regexp after "seq=N"
	}{
		{"binance", "ticker", "BTCUSDT", venuefake.NewBinance(venuefake.BinanceConfig{Config: scale}), `last=[0-9.]+  bid=[0-9.]+  ask=[0-9.]+`},
		{"binance", "bbo", "ETHUSDT", venuefake.NewBinance(venuefake.BinanceConfig{Config: scale}), `bid=[0-9.]+  ask=[0-9.]+`},
		{"bybit", "bbo", "ETHUSDT", venuefake.NewBybit(venuefake.BybitConfig{Config: scale}), `bid=[0-9.]+  ask=[0-9.]+`},
		{"okx", "bbo", "ETH-USDT", venuefake.NewOKX(venuefake.OKXConfig{Config: scale}), `bid=[0-9.]+  ask=[0-9.]+`},
		{"coinbase", "ticker", "BTC-USD", venuefake.NewCoinbase(venuefake.CoinbaseConfig{Config: scale}), `last=[0-9.]+  bid=[0-9.]+  ask=[0-9.]+`},
		{"okx", "trades", "BTC-USDT", venuefake.NewOKX(venuefake.OKXConfig{Config: scale}), `last=[0-9.]+`},
		{"htx", "ticker", "btcusdt", venuefake.NewHTX(venuefake.HTXConfig{Config: scale}), `last=[0-9.]+  bid=[0-9.]+  ask=[0-9.]+`},
		{"kraken", "ticker", "BTC-USD=BTC/USD", venuefake.NewKraken(venuefake.KrakenConfig{Config: scale}), `last=[0-9.]+  bid=[0-9.]+  ask=[0-9.]+`},
		{"bitfinex", "ticker", "tBTCUSD", venuefake.NewBitfinex(venuefake.BitfinexConfig{Config: scale}), `last=[0-9.]+  bid=[0-9.]+  ask=[0-9.]+`},
		{"deribit", "ticker", "BTC-PERPETUAL", venuefake.NewDeribit(venuefake.DeribitConfig{Config: scale}), `last=[0-9.]+  bid=[0-9.]+  ask=[0-9.]+`},
		{"gateio", "bbo", "BTC_USDT", venuefake.NewGate(venuefake.GateConfig{Config: scale}), `bid=[0-9.]+  ask=[0-9.]+`},
		{"bitstamp", "trades", "BTCUSD", venuefake.NewBitstamp(venuefake.BitstampConfig{Config: scale}), `last=[0-9.]+`},
		{"kucoin", "ticker", "BTC-USDT", venuefake.NewKuCoin(venuefake.KuCoinConfig{Config: scale}), `last=[0-9.]+  bid=[0-9.]+  ask=[0-9.]+`},
	} {
		t.Run(c.preset+"/"+c.channel, func(t *testing.T) {
			srv := httptest.NewServer(c.fake)
			defer srv.Close()
			defer c.fake.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			name, _, _ := strings.Cut(c.symbol, "=")
			args := []string{"-preset", c.preset, "-channel", c.channel, "-upstream", c.fake.WSURL(srv.URL), "-symbols", c.symbol}
			if k, ok := c.fake.(*venuefake.KuCoin); ok {
				// KuCoin's URL comes from its token call: point that at the fake.
				cfg := fmt.Sprintf("upstreams:\n  - name: kucoin\n    preset: kucoin\n    channel: %s\n    symbols: [%s]\n    resolve: {url: %s}\n",
					c.channel, name, k.BulletURL(srv.URL))
				path := filepath.Join(t.TempDir(), "wsrelay.yaml")
				if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
					t.Fatal(err)
				}
				args = []string{"-config", path}
			}
			p := startRelay(t, ctx, args...)
			out, errOut := &relaytest.LogBuffer{}, &relaytest.LogBuffer{}
			tctx, tcancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(tctx, []string{"tail", "-server", "http://" + p.addr, name}, env(), out, errOut) }()
			re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + ` +seq=\d+ +` + c.line + `  relay\+\S+$`)
			matching := func() int {
				n := 0
				for _, l := range out.Lines() {
					if re.MatchString(l) {
						n++
					}
				}
				return n
			}
			deadline := time.Now().Add(20 * time.Second)
			for matching() < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("no line like %s\nstdout:\n%s\nstderr:\n%s\nrelay:\n%s", re, out, errOut, p.logs)
				}
				time.Sleep(20 * time.Millisecond)
			}
			tcancel()
			if err := <-done; err != nil {
				t.Fatalf("tail: %v", err)
			}
			for _, l := range out.Lines() {
				if !re.MatchString(l) {
					t.Errorf("line %q", l)
				}
			}
			cancel()
			if err := <-p.done; err != nil {
				t.Fatalf("relay: %v", err)
			}
		})
	}
}
