package main

import (
	"context"
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/presets"
)

// TestEveryPresetExpandsToAValidUpstream: each channel of each preset, as
// a config names it, and as `wsrelay presets NAME CHANNEL` prints it, is
// accepted by the config loader and relay's validation, and both give the
// same upstream.
func TestEveryPresetExpandsToAValidUpstream(t *testing.T) {
	for _, p := range presets.All() {
		for _, ch := range p.Channels() {
			sym := strings.SplitN(p.Symbols[0], "=", 2)
			entry := "upstreams:\n  - {preset: " + p.Name + ", channel: " + ch + ", symbols: [{name: " + sym[0] + ", ref: '" + sym[len(sym)-1] + "'}]}\n"
			fromPreset := resolveFile(t, entry)
			var out strings.Builder
			if err := run(context.Background(), []string{"presets", p.Name, ch}, env(), &out, &out); err != nil {
				t.Fatalf("presets %s %s: %v", p.Name, ch, err)
			}
			printed := resolveFile(t, out.String())
			a, b := fromPreset.upstreams[0], printed.upstreams[0]
			if a.URL != b.URL || strings.Join(a.Subscribe, "|") != strings.Join(b.Subscribe, "|") || a.Extract != b.Extract ||
				a.DialRate != b.DialRate || a.MaxConnections != b.MaxConnections || a.Fields != b.Fields || a.Preset != p.Name || a.Channel != ch {
				t.Fatalf("%s %s: the preset and its printed YAML differ:\n%+v\n%+v", p.Name, ch, a, b)
			}
		}
	}
}

// TestUserKeysOverridePresetKeys: every other key beats the preset's, and
// nested ones are merged key by key.
func TestUserKeysOverridePresetKeys(t *testing.T) {
	st := resolveFile(t, `
upstreams:
  - name: kc
    preset: kucoin
    symbols: [BTC-USDT]
    ping_interval: 2s
    dial_rate: 1/1s
    resolve: {url: "http://127.0.0.1:1/api/v1/bullet-public"}
`)
	u := st.upstreams[0]
	if u.Name != "kc" || u.PingInterval.String() != "2s" || u.DialRate != (relay.Rate{N: 1, Per: 1e9}) || u.MaxConnections != 50 {
		t.Fatalf("%+v", u)
	}
	if u.Resolve.URL != "http://127.0.0.1:1/api/v1/bullet-public" || u.Resolve.WSURL == "" || u.Resolve.Method != "POST" {
		t.Fatalf("resolve not merged key by key: %+v", u.Resolve)
	}
	if u.Ready == nil || len(u.Accept) != 1 || u.Extract != "/data" {
		t.Fatalf("preset keys lost: %+v", u)
	}
}

func resolveFile(t *testing.T, body string) *settings {
	t.Helper()
	fc, err := parseConfig([]byte(body))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	st, err := resolve(fc, overrides{src: map[string]string{}})
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	return st
}
