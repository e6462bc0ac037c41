package relay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Sentinel errors of the relay and the broker. The api package maps them to
// HTTP status codes in one place.
var (
	// ErrUnknownSymbol means the symbol is not subscribed.
	ErrUnknownSymbol = errors.New("unknown symbol")
	// ErrNoData means the symbol is subscribed but has no quote yet.
	ErrNoData = errors.New("no data yet")
	// ErrInvalidSymbol means a symbol name does not match SymbolPattern.
	ErrInvalidSymbol = errors.New("invalid symbol")
	// ErrInvalidID means an event ID is not of the form <epoch>-<n>.
	ErrInvalidID = errors.New("invalid event id")
	// ErrUnknownUpstream means an upstream name is not configured.
	ErrUnknownUpstream = errors.New("unknown upstream")
	// ErrUnavailable means the request cannot be served now but may be
	// later (an edge whose NATS server is away cannot change the symbol
	// set).
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrSymbolExists means the symbol is already subscribed on another upstream.
	ErrSymbolExists = errors.New("symbol exists on another upstream")
	// ErrClosed means the broker or relay is shut down.
	ErrClosed = errors.New("closed")
	// ErrSlowConsumer cuts off a subscriber that fell more than its queue behind.
	ErrSlowConsumer = errors.New("slow consumer: queue full")
)

// SymbolPattern is the regular expression every symbol name matches: a name
// is used in URLs and substituted into upstream frames, so nothing else is
// let through. ValidSymbol checks it.
const SymbolPattern = `^[A-Za-z0-9._:-]{1,64}$`

// ValidSymbol reports whether name matches SymbolPattern.
func ValidSymbol(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// CheckSymbol returns an error wrapping ErrInvalidSymbol when name is not valid.
func CheckSymbol(name string) error {
	if !ValidSymbol(name) {
		return fmt.Errorf("%w: %q must match %s", ErrInvalidSymbol, truncate(name, 80), SymbolPattern)
	}
	return nil
}

// EventID identifies a quote: Epoch is the broker's start time in Unix
// milliseconds, N grows by one for every quote across all symbols.
type EventID struct {
	Epoch int64
	N     uint64
}

// String formats the ID as <epoch>-<n>.
func (id EventID) String() string {
	return string(id.Append(nil))
}

// Append appends the textual ID to b.
func (id EventID) Append(b []byte) []byte {
	b = strconv.AppendInt(b, id.Epoch, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.N, 10)
}

// ParseEventID parses <epoch>-<n>. Both parts are decimal without sign.
func ParseEventID(s string) (EventID, error) {
	dash := strings.IndexByte(s, '-')
	if dash <= 0 || dash == len(s)-1 || len(s) > 41 {
		return EventID{}, fmt.Errorf("%w: %q is not <epoch>-<n>", ErrInvalidID, truncate(s, 48))
	}
	ep, err1 := strconv.ParseUint(s[:dash], 10, 63)
	n, err2 := strconv.ParseUint(s[dash+1:], 10, 64)
	if err1 != nil || err2 != nil || !canonical(s[:dash]) || !canonical(s[dash+1:]) {
		return EventID{}, fmt.Errorf("%w: %q is not <epoch>-<n>", ErrInvalidID, truncate(s, 48))
	}
	return EventID{Epoch: int64(ep), N: n}, nil
}

// canonical reports whether s is a decimal number without sign or leading
// zero, so that every ID has exactly one spelling.
func canonical(s string) bool {
	if len(s) > 1 && s[0] == '0' {
		return false
	}
	return digits(s)
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// EventKind tells what an Event carries.
type EventKind uint8

// The kinds of events a subscription yields.
const (
	// KindQuote is a quote with an ID; it is kept in history.
	KindQuote EventKind = iota + 1
	// KindStatus is a change of a symbol's upstream state; it has no ID.
	KindStatus
	// KindReset says the requested resume point could not be honoured; a
	// snapshot of the latest quotes follows it.
	KindReset
)

// Event is one item of a subscription: a quote, a status change or a reset
// marker. An Event is immutable once published and shared by every
// subscriber; never modify it. Its methods are safe for concurrent use.
type Event struct {
	Kind   EventKind
	Symbol string // empty for KindReset
	ID     EventID
	Seq    uint64
	// ReceivedAt is when the upstream frame was read.
	ReceivedAt time.Time
	// JSON is the event's data: the quote object (symbol, id, seq,
	// received_at, stale, data) for quotes, the status or reset object
	// otherwise. It holds no newline.
	JSON []byte

	encoded atomic.Pointer[[]byte] // see Encoded
}

// Encoded returns encode(e), calling encode only for the first caller: the
// bytes are kept with the event and every later caller, on any goroutine,
// gets the same ones. It lets the consumer that delivers an event to many
// clients (the api package's SSE writer) build its wire form once per
// event, outside the broker's lock and only for events that are delivered.
// A program uses one encoding per event: the first encode wins. Two first
// callers racing may both run encode; one result is kept.
func (e *Event) Encoded(encode func(*Event) []byte) []byte {
	if p := e.encoded.Load(); p != nil {
		return *p
	}
	b := encode(e)
	if e.encoded.CompareAndSwap(nil, &b) {
		return b
	}
	return *e.encoded.Load()
}

// State is the upstream state of a symbol.
type State string

// The states of a symbol; "removed" is only ever sent in a status event.
const (
	StateConnecting State = "connecting"
	StateLive       State = "live"
	StateStale      State = "stale"
	StateBackoff    State = "backoff"
	// StateRejected: the venue refused the subscription; it is retried
	// after the backoff's maximum delay.
	StateRejected State = "rejected"
	StateRemoved  State = "removed"
)

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			b = append(b, c)
			i++
			continue
		}
		if c < 0x80 {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// encodeQuote builds the quote object served by REST, SSE and history.
// data must be compact JSON.
func encodeQuote(b []byte, symbol string, id EventID, seq uint64, at time.Time, stale bool, data []byte) []byte {
	b = append(b, `{"symbol":`...)
	b = appendJSONString(b, symbol)
	b = append(b, `,"id":"`...)
	b = id.Append(b)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"received_at":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","stale":`...)
	b = strconv.AppendBool(b, stale)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// StaleCopy returns the quote JSON of e with "stale":true, for snapshots of
// a symbol whose upstream has gone quiet. It returns e.JSON unchanged for
// events that are not quotes.
func (e *Event) StaleCopy() []byte {
	if e.Kind != KindQuote {
		return e.JSON
	}
	return encodeQuote(make([]byte, 0, len(e.JSON)+1), e.Symbol, e.ID, e.Seq, e.ReceivedAt, true, e.quoteData())
}

// quoteData returns the raw data part of a quote event.
func (e *Event) quoteData() []byte {
	const key = `,"data":`
	i := strings.Index(string(e.JSON), key)
	if i < 0 {
		return []byte("null")
	}
	return e.JSON[i+len(key) : len(e.JSON)-1]
}
