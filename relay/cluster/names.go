package cluster

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/wsrelay/wsrelay/relay"
)

// DefaultStream is the name of the quote stream when none is configured.
const DefaultStream = "WSRELAY_QUOTES"

// Message headers of a quote (see the package doc).
const (
	HeaderSeq      = "Wsrelay-Seq"
	HeaderPrev     = "Wsrelay-Prev"
	HeaderReceived = "Wsrelay-Received"
	HeaderLost     = "Wsrelay-Lost"
	headerMsgID    = "Nats-Msg-Id"
	// metaEpoch is the stream metadata key that overrides the epoch after
	// data loss was detected.
	metaEpoch = "wsrelay_epoch"
	leaseKey  = "ingest"
)

var streamNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,48}$`)

// names are the NATS names derived from the stream name.
type names struct {
	stream  string // the stream
	root    string // subject root and bucket prefix
	filter  string // r.q.>
	prefix  string // r.q.
	symbols string // KV bucket names
	status  string
	lease   string
}

func newNames(stream string) (names, error) {
	if stream == "" {
		stream = DefaultStream
	}
	if !streamNameRE.MatchString(stream) {
		return names{}, fmt.Errorf("stream: %q must match %s", stream, streamNameRE)
	}
	root := strings.TrimSuffix(strings.ToLower(stream), "_quotes")
	if root == "" {
		root = "wsrelay"
	}
	return names{
		stream: stream, root: root, filter: root + ".q.>", prefix: root + ".q.",
		symbols: root + "_symbols", status: root + "_status", lease: root + "_lease",
	}, nil
}

// subject returns the quote subject of symbol.
func (n names) subject(symbol string) string { return n.prefix + Token(symbol) }

// symbolOf returns the symbol of a quote subject.
func (n names) symbolOf(subject string) (string, error) {
	tok, ok := strings.CutPrefix(subject, n.prefix)
	if !ok {
		return "", fmt.Errorf("subject %q is not under %s", subject, n.filter)
	}
	return Symbol(tok)
}

// statusKey is the status bucket's key of symbol.
func statusKey(symbol string) string { return "s." + Token(symbol) }

const upstreamsKey = "meta.upstreams"

// Token escapes a symbol into one NATS subject token and KV key: "." is
// written "=2E" and ":" "=3A". Every other character of a valid symbol is
// allowed in both as it is.
func Token(symbol string) string {
	if !strings.ContainsAny(symbol, ".:") {
		return symbol
	}
	var b strings.Builder
	b.Grow(len(symbol) + 8)
	for i := 0; i < len(symbol); i++ {
		switch c := symbol[i]; c {
		case '.':
			b.WriteString("=2E")
		case ':':
			b.WriteString("=3A")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Symbol reverses Token; it fails on anything Token cannot have produced
// from a valid symbol.
func Symbol(token string) (string, error) {
	s := token
	if strings.IndexByte(token, '=') >= 0 {
		var b strings.Builder
		for i := 0; i < len(token); i++ {
			if token[i] != '=' {
				b.WriteByte(token[i])
				continue
			}
			switch {
			case strings.HasPrefix(token[i:], "=2E"):
				b.WriteByte('.')
			case strings.HasPrefix(token[i:], "=3A"):
				b.WriteByte(':')
			default:
				return "", fmt.Errorf("token %q: bad escape", token)
			}
			i += 2
		}
		s = b.String()
	}
	if err := relay.CheckSymbol(s); err != nil {
		return "", fmt.Errorf("token %q: %w", token, err)
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", hp)
	}
	return host, port, nil
}
