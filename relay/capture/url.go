package capture

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay/relay"
)

// urlResult is the URL to dial and what was changed on the way.
type urlResult struct {
	url      string
	dropped  []string // per-connection ids removed (Socket.IO sid, SignalR id)
	secrets  []string // query parameters left out (names only)
	volatile []string // parameters that look per-connection (timestamps, connectId)
	added    []string // parameters the framing needs (EIO=4, transport=websocket)
}

// perConnection are query parameters that identify one connection and
// must not be replayed: Socket.IO's sid (a polling session upgraded to
// WebSocket; docs/engine.io-protocol/v4-current.md: a WebSocket-only
// session without sid is legal) and SignalR's id (the connection token of
// one negotiate, TransportProtocols.md: "if the id is stale, the server
// answers 404"; the relay negotiates a new one).
func perConnection(framing, name string) bool {
	switch framing {
	case relay.FramingSocketIO:
		return name == "sid"
	case relay.FramingSignalR:
		return name == "id"
	}
	return false
}

// inferURL returns the URL to dial for a socket captured as raw.
func inferURL(raw, framing string, keepSecrets bool, captured time.Time) urlResult {
	u, err := url.Parse(raw)
	if err != nil {
		return urlResult{url: raw}
	}
	var res urlResult
	if u.User != nil {
		if !keepSecrets {
			u.User = nil
			res.secrets = append(res.secrets, "user info")
		}
	}
	q := u.Query()
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range names {
		switch {
		case perConnection(framing, k):
			res.dropped = append(res.dropped, k)
			q.Del(k)
		case secretName(k) || tokenLikeAny(q[k]):
			if !keepSecrets {
				res.secrets = append(res.secrets, k)
				q.Del(k)
			} else {
				res.volatile = append(res.volatile, k)
			}
		case volatileParam(k, q.Get(k), captured):
			res.volatile = append(res.volatile, k)
		}
	}
	if framing == relay.FramingSocketIO {
		if q.Get("EIO") != "4" {
			q.Set("EIO", "4")
			res.added = append(res.added, "EIO=4")
		}
		if q.Get("transport") != "websocket" {
			q.Set("transport", "websocket")
			res.added = append(res.added, "transport=websocket")
		}
	}
	if len(q) == 0 {
		u.RawQuery = ""
	} else if len(res.dropped)+len(res.secrets)+len(res.added) > 0 {
		u.RawQuery = q.Encode()
	}
	u.ForceQuery = false
	res.url = u.String()
	return res
}

func tokenLikeAny(vs []string) bool {
	for _, v := range vs {
		if tokenLike(v) {
			return true
		}
	}
	return false
}

// volatileParam reports a query value that changes per connection: a
// timestamp near the capture time, or a name such as connectId or nonce.
func volatileParam(name, value string, captured time.Time) bool {
	switch strings.ToLower(name) {
	case "connectid", "connect_id", "nonce", "t", "ts", "timestamp", "_", "cb", "rnd", "random":
		return true
	}
	return epochLike(value, captured)
}

// epochLike reports a 10- or 13-digit number within a day of the capture
// (or of now when the capture has no time).
func epochLike(v string, around time.Time) bool {
	if len(v) != 10 && len(v) != 13 {
		return false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return false
	}
	if around.IsZero() {
		around = time.Now()
	}
	t := time.Unix(n, 0)
	if len(v) == 13 {
		t = time.UnixMilli(n)
	}
	d := t.Sub(around)
	return d > -24*time.Hour && d < 24*time.Hour
}

// displayURL is a URL as reports show it: user info and the values of
// query parameters that are credentials or session ids hidden unless keep.
func displayURL(raw string, keep bool) string {
	if keep {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return relay.RedactURL(raw)
	}
	if u.User != nil {
		u.User = url.User(Redacted)
	}
	if u.RawQuery == "" {
		return u.String()
	}
	var parts []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		name, _ := url.QueryUnescape(k)
		val, _ := url.QueryUnescape(v)
		if secretName(name) || tokenLike(val) || perConnection(relay.FramingSocketIO, name) || perConnection(relay.FramingSignalR, name) {
			kv = k + "=" + Redacted
		}
		parts = append(parts, kv)
	}
	u.RawQuery = strings.Join(parts, "&")
	return u.String()
}

// groupKey identifies sockets that are the same feed: the URL without
// per-connection ids and volatile values.
func groupKey(raw, framing string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k := range q {
		if perConnection(framing, k) || volatileParam(k, q.Get(k), time.Time{}) || secretName(k) {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	u.User = nil
	return u.String()
}

// upstreamName derives a name from the host: the first label that is not
// a common prefix (www, ws, api, stream…) or the top-level domain.
func upstreamName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "feed"
	}
	host := u.Hostname()
	if host == "" || host == "localhost" || strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":") {
		return "feed"
	}
	labels := strings.Split(host, ".")
	if len(labels) > 1 {
		labels = labels[:len(labels)-1]
	}
	skip := map[string]bool{"www": true, "ws": true, "wss": true, "api": true, "stream": true, "streams": true,
		"socket": true, "sockets": true, "push": true, "realtime": true, "rt": true, "data": true, "feed": true,
		"feeds": true, "md": true, "quote": true, "quotes": true, "live": true, "ws-api": true, "wsapi": true}
	for _, l := range labels {
		if skip[strings.ToLower(l)] {
			continue
		}
		name := sanitizeName(strings.ToLower(l))
		if name != "" {
			return name
		}
	}
	return "feed"
}

// sanitizeName turns s into a valid symbol or upstream name: characters
// outside [A-Za-z0-9_.:-] become '-', at most 64.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == ':', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 64 {
		out = out[:64]
	}
	return out
}
