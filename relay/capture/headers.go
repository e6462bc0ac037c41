package capture

import (
	"fmt"
	"strings"
)

// handshakeOnly are headers the WebSocket client writes itself, or that
// describe the browser's transport rather than the feed.
var handshakeOnly = map[string]bool{
	"host": true, "connection": true, "upgrade": true, "sec-websocket-key": true, "sec-websocket-version": true,
	"sec-websocket-extensions": true, "accept-encoding": true, "accept-language": true, "cache-control": true,
	"pragma": true, "content-length": true, "sec-fetch-site": true, "sec-fetch-mode": true, "sec-fetch-dest": true,
	"sec-ch-ua": true, "sec-ch-ua-mobile": true, "sec-ch-ua-platform": true, "dnt": true, "priority": true,
	"accept": true, "te": true,
}

// inferHeaders keeps the handshake headers a server may check: Origin,
// User-Agent and custom X- headers; credentials only when kept, with a
// comment that says what was left out and when it will be needed.
func inferHeaders(c *Capture, s Session, keep bool, up *Upstream) {
	var kept []string
	var left []string
	cookieCount := 0
	for _, h := range s.Request {
		name := strings.ToLower(h.Name)
		switch {
		case handshakeOnly[name]:
			continue
		case name == "sec-websocket-protocol":
			up.Comments["headers"] = append(up.Comments["headers"], fmt.Sprintf("the page asked for the subprotocol %q, which the relay does not negotiate: if the handshake fails for that, this feed cannot be relayed yet", h.Value))
			continue
		case name == "cookie":
			cookieCount = len(strings.Split(h.Value, ";"))
			if !keep {
				left = append(left, fmt.Sprintf("Cookie (%s)", plural(cookieCount, "cookie", "cookies")))
				continue
			}
		case name == "authorization" || secretName(name) || tokenLike(h.Value):
			if !keep {
				left = append(left, canonicalName(h.Name))
				continue
			}
		case name == "origin", name == "user-agent", strings.HasPrefix(name, "x-"):
		default:
			continue
		}
		up.Headers = append(up.Headers, Header{Name: canonicalName(h.Name), Value: h.Value})
		kept = append(kept, canonicalName(h.Name))
	}
	if _, ok := header(s.Request, "cookie"); !ok && len(s.Cookies) > 0 {
		cookieCount = len(s.Cookies)
		if keep {
			var parts []string
			for _, ck := range s.Cookies {
				parts = append(parts, ck.Name+"="+ck.Value)
			}
			up.Headers = append(up.Headers, Header{Name: "Cookie", Value: strings.Join(parts, "; ")})
			kept = append(kept, "Cookie")
		} else {
			left = append(left, fmt.Sprintf("Cookie (%s)", plural(cookieCount, "cookie", "cookies")))
		}
	}
	switch {
	case len(s.Request) == 0:
		up.Comments["headers"] = append(up.Comments["headers"], "the capture has no handshake headers (an old export, or DevTools opened after the socket): if the server checks Origin, add it")
	case len(kept) > 0:
		why := "sent by the browser; servers often check Origin and User-Agent"
		up.Notes["headers"] = note(High, "%s (%s)", why, strings.Join(kept, ", "))
	}
	if len(left) > 0 {
		what := strings.Join(left, ", ")
		hint := "a server that checks the session answers the handshake with 401 or 403: then rerun with -keep-secrets"
		for _, l := range left {
			if l == "Authorization" {
				hint = "the page authenticated the handshake, so the server most likely needs it: rerun with -keep-secrets"
			}
		}
		up.Comments["headers"] = append(up.Comments["headers"], fmt.Sprintf("left out: %s, credentials the browser sent; %s", what, hint))
	}
	if !c.AnyCookie && strings.Contains(c.Creator, "WebInspector") && len(left) == 0 && !keep {
		up.Hints["headers"] = append(up.Hints["headers"], "the HAR holds no cookie at all: Chrome exports sanitized HARs by default; if the handshake needs the page's session, export with sensitive data and rerun with -keep-secrets")
	}
}
