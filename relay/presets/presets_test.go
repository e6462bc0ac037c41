package presets

import (
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestEveryPresetLoadsWithItsChannels(t *testing.T) {
	want := []string{"binance", "bitfinex", "bitstamp", "bybit", "coinbase", "deribit", "gateio", "htx", "kraken", "kucoin", "okx"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("presets %v, want %v", got, want)
	}
	for _, p := range All() {
		if p.Venue == "" || len(p.Docs) == 0 || p.Keepalive == "" || p.Limits == "" || len(p.Symbols) == 0 {
			t.Errorf("%s: venue, docs, keepalive, limits and symbols are required", p.Name)
		}
		if p.Channels()[0] != DefaultChannel {
			t.Errorf("%s: channels %v, ticker first", p.Name, p.Channels())
		}
		for _, ch := range p.Channels() {
			if !slices.Contains([]string{"ticker", "trades", "bbo"}, ch) {
				t.Errorf("%s: channel %q", p.Name, ch)
			}
			y, err := p.YAML(ch)
			if err != nil {
				t.Fatalf("%s %s: %v", p.Name, ch, err)
			}
			var doc struct {
				Upstreams []map[string]any `yaml:"upstreams"`
			}
			if err := yaml.Unmarshal([]byte(y), &doc); err != nil || len(doc.Upstreams) != 1 {
				t.Fatalf("%s %s: printed YAML does not parse: %v\n%s", p.Name, ch, err, y)
			}
			u := doc.Upstreams[0]
			if u["url"] == nil && u["resolve"] == nil || u["subscribe"] == nil || u["symbols"] == nil || u["fields"] == nil {
				t.Errorf("%s %s: incomplete: %v", p.Name, ch, u)
			}
		}
	}
}

func TestUnknownPresetAndChannelNameTheChoices(t *testing.T) {
	if _, err := Get("binanse"); err == nil || !strings.Contains(err.Error(), "binance") {
		t.Fatalf("unknown preset: %v", err)
	}
	p, err := Get("coinbase")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Expand("bbo"); err == nil || !strings.Contains(err.Error(), "ticker, trades") {
		t.Fatalf("unknown channel: %v", err)
	}
}
