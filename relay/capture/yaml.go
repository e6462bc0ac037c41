package capture

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// YAML renders the result as a config file that `wsrelay serve -config`
// reads as it is: one upstream, every key with a comment that says how
// sure the import is and why.
func (r *Result) YAML() []byte {
	u := &r.Upstream
	entry := &yaml.Node{Kind: yaml.MappingNode}
	var pending []string // said on the next key
	add := func(key string, v *yaml.Node) {
		k := str(key)
		lines := pending
		pending = nil
		if n, ok := u.Notes[key]; ok && n.Why != "" {
			lines = append(lines, n.String())
		}
		lines = append(lines, u.Comments[key]...)
		lines = append(lines, u.Hints[key]...)
		if len(entry.Content) == 0 && len(lines) == 1 && v.Kind == yaml.ScalarNode {
			// The first key of a list item cannot carry a head comment
			// (it would follow the "- "): said at the end of its line.
			v.LineComment = "# " + lines[0]
		} else {
			k.HeadComment = comment(lines)
		}
		entry.Content = append(entry.Content, k, v)
	}
	add("name", str(u.Name))
	add("url", str(u.URL))
	if u.Framing != "" {
		add("framing", str(u.Framing))
	}
	if u.Namespace != "" {
		add("namespace", str(u.Namespace))
	} else {
		pending = append(pending, u.Comments["namespace"]...)
	}
	if u.NamespaceAuth != "" {
		add("namespace_auth", str(u.NamespaceAuth))
	}
	if len(u.Headers) > 0 {
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, h := range u.Headers {
			m.Content = append(m.Content, str(h.Name), str(h.Value))
		}
		add("headers", m)
	} else {
		pending = append(pending, u.Comments["headers"]...) // nothing kept, but something to say
		pending = append(pending, u.Hints["headers"]...)
	}
	if len(u.Subscribe) > 0 {
		add("subscribe", templates(u.Subscribe))
	}
	if len(u.Unsubscribe) > 0 {
		add("unsubscribe", templates(u.Unsubscribe))
	}
	syms := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range u.Symbols {
		if s.Ref == "" {
			syms.Content = append(syms.Content, str(s.Name))
			continue
		}
		syms.Content = append(syms.Content, flowMap("name", str(s.Name), "ref", str(s.Ref)))
	}
	add("symbols", syms)
	if u.Accept.Match != "" || u.Accept.Equals != nil {
		add("accept", matcherNode(u.Accept))
	} else {
		pending = append(pending, u.Notes["accept"].String()) // no accept key: said on extract
	}
	add("extract", str(u.Extract))
	if u.Decompress != "" {
		add("decompress", str(u.Decompress))
	}
	if u.AppPing != "" {
		add("app_ping", str(u.AppPing))
	}
	if u.PingInterval > 0 {
		add("ping_interval", str(u.PingInterval.String()))
	}
	if u.Pong != nil {
		m := matcherMap(u.Pong.Matcher)
		m.Content = append(m.Content, str("reply"), str(u.Pong.Reply))
		add("pong", m)
	}
	switch len(u.Heartbeat) {
	case 0:
	case 1:
		add("heartbeat", matcherMap(u.Heartbeat[0]))
	default:
		seq := &yaml.Node{Kind: yaml.SequenceNode}
		for _, h := range u.Heartbeat {
			seq.Content = append(seq.Content, matcherMap(h))
		}
		add("heartbeat", seq)
	}

	up := str("upstreams")
	up.HeadComment = comment(r.header())
	root := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{up, {Kind: yaml.SequenceNode, Content: []*yaml.Node{entry}}}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		// The tree is built from strings only: unreachable.
		return []byte(fmt.Sprintf("# cannot render the config: %v\n", err))
	}
	_ = enc.Close()
	return b.Bytes()
}

// header is the comment above the config.
func (r *Result) header() []string {
	src := r.Source
	if src == "" {
		src = "a capture"
	}
	s := r.Sockets[r.Chosen]
	first := fmt.Sprintf("wsrelay config imported from %s: socket %d of %d, %s (%s, %d sent, %d received).",
		src, r.Chosen+1, len(r.Sockets), s.URL, plural(len(s.Entries), "connection", "connections"), s.Out, s.In)
	if r.live {
		first = fmt.Sprintf("wsrelay config from %s (%d frames sent, %d received).", src, s.Out, s.In)
	}
	lines := []string{
		first,
		"Each key says how sure the import is: high (read off the capture, or checked against it),",
		"medium (a pattern that usually holds: have a look), GUESS (check it before relying on it).",
		"Self-check: " + r.Check.String() + ".",
	}
	for _, w := range r.Warnings {
		lines = append(lines, "Note: "+w+".")
	}
	return lines
}

// comment wraps lines at about 100 columns for a head comment.
func comment(lines []string) string {
	var out []string
	for _, l := range lines {
		out = append(out, wrap(l, 96)...)
	}
	return strings.Join(out, "\n")
}

func wrap(s string, width int) []string {
	var out []string
	words := strings.Fields(s)
	line := ""
	for _, w := range words {
		if line != "" && len(line)+1+len(w) > width {
			out = append(out, line)
			line = "  " + w
			continue
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func flowMap(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Content = append(m.Content, str(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return m
}

// templates renders one template as a string, several as a list.
func templates(ts []string) *yaml.Node {
	if len(ts) == 1 {
		return str(ts[0])
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, t := range ts {
		seq.Content = append(seq.Content, str(t))
	}
	return seq
}

// matcherNode is a bare pointer when it can be, else {match, equals}.
func matcherNode(m Matcher) *yaml.Node {
	if m.IsPointer() {
		return str(m.Match)
	}
	return matcherMap(m)
}

func matcherMap(m Matcher) *yaml.Node {
	n := flowMap("match", str(m.Match))
	switch len(m.Equals) {
	case 0:
	case 1:
		n.Content = append(n.Content, str("equals"), scalar(m.Equals[0]))
	default:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, e := range m.Equals {
			seq.Content = append(seq.Content, scalar(e))
		}
		n.Content = append(n.Content, str("equals"), seq)
	}
	return n
}

// scalar renders an equals value with its YAML type.
func scalar(v any) *yaml.Node {
	switch x := v.(type) {
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(x), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(x)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(x)}
	case string:
		return str(x)
	}
	return str(fmt.Sprint(v))
}
