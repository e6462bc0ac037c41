// Package testsite serves a small market web page for tests of `wsrelay
// import`: it opens a WebSocket and subscribes the way such pages do, in
// the dialects import must handle: the seed protocol (relay/simfeed),
// OKX (JSON, the page pings with the text "ping" and gets "pong") and HTX
// (gzip binary frames, the server pings {"ping":n}, the page answers
// {"pong":n}); the feeds are relay/simfeed and relay/venuefake. Recorded
// in Chromium (chromerec), the page gives real DevTools captures. It is
// test infrastructure, like relay/faultnet.
package testsite

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// PageConfig describes what the market page does.
type PageConfig struct {
	// Proto is the feed's dialect: seed, okx or htx.
	Proto string
	// WS is the feed's URL.
	WS string
	// Symbols are subscribed in order, one frame each.
	Symbols []string
	// Quotes per symbol before the page reports done (default 5).
	Quotes int
	// PingMillis > 0 sends the text "ping" at that period (OKX's rule).
	PingMillis int
	// Pongs the page must have sent (HTX) before it reports done.
	Pongs int
}

// URL returns the page's address on a server that serves Page at base.
func (c PageConfig) URL(base string) string {
	q := url.Values{}
	q.Set("proto", c.Proto)
	q.Set("ws", c.WS)
	q.Set("symbols", strings.Join(c.Symbols, ","))
	if c.Quotes > 0 {
		q.Set("quotes", strconv.Itoa(c.Quotes))
	}
	if c.PingMillis > 0 {
		q.Set("ping", strconv.Itoa(c.PingMillis))
	}
	if c.Pongs > 0 {
		q.Set("pongs", strconv.Itoa(c.Pongs))
	}
	return strings.TrimSuffix(base, "/") + "/?" + q.Encode()
}

// Page serves the market page. Its state is window.__state: recv (messages
// received), quotes per symbol, pings and pongs sent, done, errors.
func Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(pageHTML))
	})
}

// The page subscribes the way each venue's own web page does; gzip frames
// are inflated with the browser's DecompressionStream.
const pageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Markets</title></head>
<body><h1>Markets</h1><pre id="log"></pre>
<script>
const q = new URLSearchParams(location.search);
const proto = q.get("proto"), syms = q.get("symbols").split(",");
const want = +(q.get("quotes") || 5), pingMs = +(q.get("ping") || 0), wantPongs = +(q.get("pongs") || 0);
const st = window.__state = {recv: 0, quotes: {}, pings: 0, pongs: 0, done: false, errors: []};
const ws = new WebSocket(q.get("ws"));
ws.binaryType = "arraybuffer";
function check() {
  st.done = syms.every(s => (st.quotes[s] || 0) >= want) && (!pingMs || st.pings >= 3) && st.pongs >= wantPongs;
}
function text(data) {
  if (typeof data === "string") return Promise.resolve(data);
  return new Response(new Blob([data]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
}
ws.onopen = () => {
  syms.forEach((s, i) => {
    if (proto === "seed") ws.send(JSON.stringify({action: "subscribe", args: ["QuoteBin5m:" + s]}));
    if (proto === "okx") ws.send(JSON.stringify({op: "subscribe", args: [{channel: "tickers", instId: s}]}));
    if (proto === "htx") ws.send(JSON.stringify({sub: "market." + s + ".ticker", id: "id" + (i + 1)}));
  });
  if (pingMs) setInterval(() => { ws.send("ping"); st.pings++; check(); }, pingMs);
};
ws.onmessage = async (ev) => {
  st.recv++;
  const t = await text(ev.data);
  if (t === "pong") return;
  const m = JSON.parse(t);
  if (m.ping !== undefined) { ws.send(JSON.stringify({pong: m.ping})); st.pongs++; check(); return; }
  let sym = null;
  if (proto === "seed" && m.data) sym = m.group.split(":")[1];
  if (proto === "okx" && m.data) sym = m.arg.instId;
  if (proto === "htx" && m.tick) sym = m.ch.split(".")[1];
  if (sym) { st.quotes[sym] = (st.quotes[sym] || 0) + 1; check(); }
  document.getElementById("log").textContent = t.slice(0, 200);
};
ws.onerror = () => st.errors.push("error");
ws.onclose = (e) => st.errors.push("close " + e.code);
</script></body></html>
`
