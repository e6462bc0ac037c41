// Package presets holds wsrelay's exchange presets: for each venue, the
// upstream config of its public market data (URL, subscribe frames, frame
// rules, keepalive, connection budget) for each of its channels, as data.
// It has no network code; the relay's generic rules do the work.
//
// A preset file (one per venue, embedded) has the venue's facts, the keys
// every channel shares (upstream) and each channel's own keys (channels).
// Expand merges them into the upstream YAML the preset stands for; the
// command line prints that YAML (wsrelay presets NAME) and overlays the
// user's keys on it.
package presets

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed venues/*.yaml
var files embed.FS

// DefaultChannel is the channel of a preset when none is named.
const DefaultChannel = "ticker"

// Preset is one venue's preset.
type Preset struct {
	Name      string   `yaml:"name"`
	Venue     string   `yaml:"venue"`
	Docs      []string `yaml:"docs"`
	Keepalive string   `yaml:"keepalive"`
	Limits    string   `yaml:"limits"`
	// Symbols are examples in the venue's spelling: NAME, or NAME=REF where
	// the venue's spelling is not a valid name (Kraken's BTC/USD).
	Symbols []string `yaml:"symbols"`
	Notes   string   `yaml:"notes"`
	// Unconfirmed lists what the venue's documentation does not state and
	// how the preset decides it.
	Unconfirmed []string `yaml:"unconfirmed"`

	upstream yaml.Node            // keys of every channel
	channels map[string]yaml.Node // each channel's keys
	order    []string             // channels in file order
}

type presetFile struct {
	Preset   `yaml:",inline"`
	Upstream yaml.Node `yaml:"upstream"`
	Channels yaml.Node `yaml:"channels"`
}

// All returns every preset, sorted by name.
func All() []Preset {
	entries, err := files.ReadDir("venues")
	if err != nil {
		panic(err) // embedded at build time
	}
	var out []Preset
	for _, e := range entries {
		p, err := load(strings.TrimSuffix(e.Name(), ".yaml"))
		if err != nil {
			panic(err) // embedded and tested
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Preset) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Names returns the preset names, sorted.
func Names() []string {
	var out []string
	for _, p := range All() {
		out = append(out, p.Name)
	}
	return out
}

// Get returns the named preset.
func Get(name string) (Preset, error) {
	if !slices.Contains(Names(), name) {
		return Preset{}, fmt.Errorf("unknown preset %q (one of %s)", name, strings.Join(Names(), ", "))
	}
	return load(name)
}

func load(name string) (Preset, error) {
	b, err := files.ReadFile("venues/" + name + ".yaml")
	if err != nil {
		return Preset{}, err
	}
	var f presetFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return Preset{}, fmt.Errorf("preset %s: %w", name, err)
	}
	p := f.Preset
	if p.Name != name {
		return Preset{}, fmt.Errorf("preset file %s.yaml names %q", name, p.Name)
	}
	p.upstream = f.Upstream
	p.channels = map[string]yaml.Node{}
	if f.Channels.Kind != yaml.MappingNode {
		return Preset{}, fmt.Errorf("preset %s: channels must be a mapping", name)
	}
	for i := 0; i+1 < len(f.Channels.Content); i += 2 {
		ch := f.Channels.Content[i].Value
		p.channels[ch] = *f.Channels.Content[i+1]
		p.order = append(p.order, ch)
	}
	if _, ok := p.channels[DefaultChannel]; !ok {
		return Preset{}, fmt.Errorf("preset %s has no %s channel", name, DefaultChannel)
	}
	return p, nil
}

// Channels returns the preset's channels, the default first.
func (p Preset) Channels() []string { return slices.Clone(p.order) }

// Expand returns the upstream keys of channel ("" = the default) as a YAML
// mapping: the shared keys with the channel's on top. The result has no
// name and no symbols.
func (p Preset) Expand(channel string) (*yaml.Node, error) {
	if channel == "" {
		channel = DefaultChannel
	}
	ch, ok := p.channels[channel]
	if !ok {
		return nil, fmt.Errorf("preset %s has no channel %q (one of %s)", p.Name, channel, strings.Join(p.order, ", "))
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	merge(out, &p.upstream)
	merge(out, &ch)
	return out, nil
}

// merge sets every key of src on dst (a mapping), replacing what is there.
func merge(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		replaced := false
		for j := 0; j+1 < len(dst.Content); j += 2 {
			if dst.Content[j].Value == k.Value {
				dst.Content[j+1] = v
				replaced = true
				break
			}
		}
		if !replaced {
			dst.Content = append(dst.Content, k, v)
		}
	}
}

// YAML returns the upstream entry channel of p stands for, as a user would
// write it without the preset: a commented `upstreams:` list item with
// example symbols, to copy and edit.
func (p Preset) YAML(channel string) (string, error) {
	if channel == "" {
		channel = DefaultChannel
	}
	keys, err := p.Expand(channel)
	if err != nil {
		return "", err
	}
	entry := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	name := p.Name
	if channel != DefaultChannel {
		name += "-" + channel
	}
	entry.Content = append(entry.Content, scalar("name"), scalar(name))
	entry.Content = append(entry.Content, keys.Content...)
	syms := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, s := range p.Symbols {
		if name, ref, ok := strings.Cut(s, "="); ok {
			syms.Content = append(syms.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle,
				Content: []*yaml.Node{scalar("name"), scalar(name), scalar("ref"), scalar(ref)}})
			continue
		}
		syms.Content = append(syms.Content, scalar(s))
	}
	entry.Content = append(entry.Content, scalar("symbols"), syms)
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		scalar("upstreams"), {Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{entry}},
	}}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s: preset %q, channel %q (channels: %s)\n", p.Venue, p.Name, channel, strings.Join(p.order, ", "))
	for _, d := range p.Docs {
		fmt.Fprintf(&b, "# docs: %s\n", d)
	}
	fmt.Fprintf(&b, "# keepalive: %s\n# limits: %s\n", p.Keepalive, p.Limits)
	if p.Notes != "" {
		fmt.Fprintf(&b, "# notes: %s\n", oneLine(p.Notes))
	}
	b.WriteString("# The same as: {name: " + name + ", preset: " + p.Name + ", channel: " + channel + ", symbols: [...]}\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return "", err
	}
	enc.Close()
	return b.String(), nil
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
