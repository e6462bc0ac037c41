package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wsrelay/wsrelay/relay"
)

// upstreamConfig is one entry of upstreams: in the config file. Every key
// is optional here; a preset fills what the user leaves out, and relay
// validates the result.
type upstreamConfig struct {
	Name                 string            `yaml:"name"`
	Preset               string            `yaml:"preset"`
	Channel              string            `yaml:"channel"`
	URL                  string            `yaml:"url"`
	Framing              string            `yaml:"framing"`
	Namespace            string            `yaml:"namespace"`
	NamespaceAuth        string            `yaml:"namespace_auth"`
	Headers              map[string]string `yaml:"headers"`
	Subscribe            templates         `yaml:"subscribe"`
	Unsubscribe          templates         `yaml:"unsubscribe"`
	Symbols              []symbolEntry     `yaml:"symbols"`
	Accept               matchers          `yaml:"accept"`
	Extract              string            `yaml:"extract"`
	Fields               *fieldsConfig     `yaml:"fields"`
	PingInterval         string            `yaml:"ping_interval"`
	PingTimeout          string            `yaml:"ping_timeout"`
	AppPing              string            `yaml:"app_ping"`
	Pong                 pongs             `yaml:"pong"`
	Heartbeat            matchers          `yaml:"heartbeat"`
	Reject               rejects           `yaml:"reject"`
	ReconnectOn          matchers          `yaml:"reconnect_on"`
	Ready                *readyConfig      `yaml:"ready"`
	Resolve              *resolveConfig    `yaml:"resolve"`
	StaleAfter           string            `yaml:"stale_after"`
	ReconnectOnStale     bool              `yaml:"reconnect_on_stale"`
	Decompress           string            `yaml:"decompress"`
	ReadLimit            string            `yaml:"read_limit"`
	Backoff              *backoffConfig    `yaml:"backoff"`
	DialTimeout          string            `yaml:"dial_timeout"`
	InsecureSkipVerify   bool              `yaml:"insecure_skip_verify"`
	DialRate             string            `yaml:"dial_rate"`
	SubscribeRate        string            `yaml:"subscribe_rate"`
	MaxConnections       *int              `yaml:"max_connections"`
	SymbolsPerConnection *int              `yaml:"symbols_per_connection"`
	Route                *routeConfig      `yaml:"route"`
	MaxAge               string            `yaml:"max_age"`
}

type fieldsConfig struct {
	Last string `yaml:"last"`
	Bid  string `yaml:"bid"`
	Ask  string `yaml:"ask"`
}

type readyConfig struct {
	Match   string     `yaml:"match"`
	Equals  jsonValues `yaml:"equals"`
	Timeout string     `yaml:"timeout"`
}

// jsonValues is an equals value: the JSON values it allows.
type jsonValues []json.RawMessage

func (j *jsonValues) UnmarshalYAML(n *yaml.Node) error {
	v, err := equalsValues(n)
	*j = v
	return err
}

type resolveConfig struct {
	Method       string `yaml:"method"`
	URL          string `yaml:"url"`
	Body         string `yaml:"body"`
	WSURL        string `yaml:"ws_url"`
	PingInterval string `yaml:"ping_interval"`
}

type routeConfig struct {
	Match string `yaml:"match"`
	Value string `yaml:"value"`
}

type backoffConfig struct {
	Min string `yaml:"min"`
	Max string `yaml:"max"`
}

// symbolEntry is "NAME" or {name: NAME, ref: REF}.
type symbolEntry struct{ Name, Ref string }

func (s *symbolEntry) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		s.Name = n.Value
		return nil
	case yaml.MappingNode:
		return eachKey(n, "symbol", func(k, v *yaml.Node) error {
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s must be a string", v.Line, k.Value)
			}
			switch k.Value {
			case "name":
				s.Name = v.Value
			case "ref":
				s.Ref = v.Value
			default:
				return unknownKey(k, "symbol")
			}
			return nil
		})
	}
	return fmt.Errorf("line %d: a symbol is a name or {name, ref}", n.Line)
}

// templates is a frame template or a list of them.
type templates []string

func (t *templates) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*t = templates{n.Value}
		return nil
	case yaml.SequenceNode:
		out := templates{}
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a frame template is a string", c.Line)
			}
			out = append(out, c.Value)
		}
		*t = out
		return nil
	}
	return fmt.Errorf("line %d: expected a frame template or a list of them", n.Line)
}

// matchers is a JSON pointer (accept: /data), a matcher {match, equals} or
// a list of either.
type matchers []relay.Matcher

func (m *matchers) UnmarshalYAML(n *yaml.Node) error {
	var out matchers
	err := eachRule(n, func(r *yaml.Node) error {
		if r.Kind == yaml.ScalarNode {
			out = append(out, relay.Matcher{Match: r.Value})
			return nil
		}
		var x relay.Matcher
		if err := decodeRule(r, "matcher", &x, nil); err != nil {
			return err
		}
		out = append(out, x)
		return nil
	})
	*m = out
	return err
}

// pongs is {match, equals, reply} or a list of them.
type pongs []relay.PongRule

func (p *pongs) UnmarshalYAML(n *yaml.Node) error {
	var out pongs
	err := eachRule(n, func(r *yaml.Node) error {
		var x relay.PongRule
		err := decodeRule(r, "pong", &x.Matcher, func(k, v *yaml.Node) (bool, error) {
			if k.Value != "reply" {
				return false, nil
			}
			return true, v.Decode(&x.Reply)
		})
		out = append(out, x)
		return err
	})
	*p = out
	return err
}

// rejects is {match, equals, message, id} or a list of them.
type rejects []relay.RejectRule

func (p *rejects) UnmarshalYAML(n *yaml.Node) error {
	var out rejects
	err := eachRule(n, func(r *yaml.Node) error {
		var x relay.RejectRule
		err := decodeRule(r, "reject", &x.Matcher, func(k, v *yaml.Node) (bool, error) {
			switch k.Value {
			case "message":
				return true, v.Decode(&x.Message)
			case "id":
				return true, v.Decode(&x.ID)
			}
			return false, nil
		})
		out = append(out, x)
		return err
	})
	*p = out
	return err
}

// eachRule calls f for one rule or for each of a list.
func eachRule(n *yaml.Node, f func(*yaml.Node) error) error {
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			if err := f(c); err != nil {
				return err
			}
		}
		return nil
	}
	return f(n)
}

// decodeRule reads {match, equals} and the keys extra takes.
func decodeRule(n *yaml.Node, what string, m *relay.Matcher, extra func(k, v *yaml.Node) (bool, error)) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a %s is {match: /pointer, equals: value}", n.Line, what)
	}
	return eachKey(n, what, func(k, v *yaml.Node) error {
		switch k.Value {
		case "match":
			return v.Decode(&m.Match)
		case "equals":
			eq, err := equalsValues(v)
			m.Equals = eq
			return err
		}
		if extra != nil {
			if ok, err := extra(k, v); ok || err != nil {
				return err
			}
		}
		return unknownKey(k, what)
	})
}

// equalsValues turns an equals value into JSON values: a scalar or a
// mapping is one value; a sequence lists alternatives (any of them), except
// an empty one, which is the empty array itself (Deribit's "result":[]).
func equalsValues(n *yaml.Node) ([]json.RawMessage, error) {
	one := func(n *yaml.Node) (json.RawMessage, error) {
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		b, err := json.Marshal(jsonable(v))
		if err != nil {
			return nil, fmt.Errorf("line %d: equals: %v", n.Line, err)
		}
		return b, nil
	}
	if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
		var out []json.RawMessage
		for _, c := range n.Content {
			v, err := one(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	v, err := one(n)
	if err != nil {
		return nil, err
	}
	return []json.RawMessage{v}, nil
}

// jsonable makes a decoded YAML value marshallable (YAML maps may have
// non-string keys).
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
	}
	return v
}

func eachKey(n *yaml.Node, what string, f func(k, v *yaml.Node) error) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if err := f(n.Content[i], n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// unknownKey words the error as the YAML decoder does, so that the config
// error names the key and its line.
func unknownKey(k *yaml.Node, what string) error {
	return fmt.Errorf("line %d: field %s not found in type %s", k.Line, k.Value, what)
}

// overlay sets every field of dst that src sets (src's non-zero fields
// win; nested structs behind pointers are merged field by field), so that
// a preset's keys are overridden by the user's.
func overlay(dst, src *upstreamConfig) {
	overlayValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem())
}

func overlayValue(dst, src reflect.Value) {
	for i := 0; i < src.NumField(); i++ {
		s, d := src.Field(i), dst.Field(i)
		if s.IsZero() {
			continue
		}
		if s.Kind() == reflect.Pointer && s.Elem().Kind() == reflect.Struct && !d.IsNil() {
			merged := reflect.New(d.Elem().Type())
			merged.Elem().Set(d.Elem())
			overlayValue(merged.Elem(), s.Elem())
			d.Set(merged)
			continue
		}
		d.Set(s)
	}
}

// toRelay converts the (merged) entry; errors name key + "." + the field.
func (u upstreamConfig) toRelay(key string) (relay.UpstreamConfig, error) {
	uc := relay.UpstreamConfig{
		Name: u.Name, URL: u.URL, Framing: u.Framing, Namespace: u.Namespace, NamespaceAuth: u.NamespaceAuth, Headers: u.Headers,
		Subscribe: u.Subscribe, Unsubscribe: u.Unsubscribe,
		Accept: u.Accept, Extract: u.Extract, AppPing: u.AppPing,
		Pong: u.Pong, Heartbeat: u.Heartbeat, Reject: u.Reject, ReconnectOn: u.ReconnectOn,
		ReconnectOnStale: u.ReconnectOnStale, Decompress: u.Decompress, InsecureSkipVerify: u.InsecureSkipVerify,
		Preset: u.Preset, Channel: u.Channel,
	}
	for _, s := range u.Symbols {
		uc.Symbols = append(uc.Symbols, relay.Symbol{Name: s.Name, Ref: s.Ref})
	}
	if u.Fields != nil {
		uc.Fields = relay.Fields{Last: u.Fields.Last, Bid: u.Fields.Bid, Ask: u.Fields.Ask}
	}
	if u.MaxConnections != nil {
		uc.MaxConnections = *u.MaxConnections
	}
	if u.SymbolsPerConnection != nil {
		uc.SymbolsPerConnection = *u.SymbolsPerConnection
	}
	if u.Route != nil {
		uc.Route = &relay.Route{Match: u.Route.Match, Value: u.Route.Value}
	}
	if u.Resolve != nil {
		r := relay.Resolve(*u.Resolve)
		uc.Resolve = &r
	}
	var err error
	d := func(name, v string) time.Duration {
		if err != nil || v == "" {
			return 0
		}
		var out time.Duration
		out, err = parseDuration(key+"."+name, v)
		return out
	}
	uc.PingInterval = d("ping_interval", u.PingInterval)
	uc.PingTimeout = d("ping_timeout", u.PingTimeout)
	uc.StaleAfter = d("stale_after", u.StaleAfter)
	uc.DialTimeout = d("dial_timeout", u.DialTimeout)
	uc.MaxAge = d("max_age", u.MaxAge)
	if u.Backoff != nil {
		uc.Backoff.Min = d("backoff.min", u.Backoff.Min)
		uc.Backoff.Max = d("backoff.max", u.Backoff.Max)
	}
	if u.Ready != nil {
		uc.Ready = &relay.ReadyRule{Matcher: relay.Matcher{Match: u.Ready.Match, Equals: u.Ready.Equals}, Timeout: d("ready.timeout", u.Ready.Timeout)}
	}
	if err != nil {
		return uc, err
	}
	if uc.ReadLimit, err = parseSize(key+".read_limit", u.ReadLimit, 0); err != nil {
		return uc, err
	}
	if uc.DialRate, err = relay.ParseRate(u.DialRate); err != nil {
		return uc, usagef("%s.dial_rate: %v", key, err)
	}
	if uc.SubscribeRate, err = relay.ParseRate(u.SubscribeRate); err != nil {
		return uc, usagef("%s.subscribe_rate: %v", key, err)
	}
	return uc, nil
}

// errNoPreset is wrapped by preset lookups that fail.
var errNoPreset = errors.New("unknown preset")
