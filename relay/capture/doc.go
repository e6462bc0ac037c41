// Package capture turns a recorded WebSocket session into an upstream
// config for the relay. It reads HAR files as browsers and proxies write
// them (Chrome's and Edge's DevTools, Playwright, mitmproxy: the
// `_webSocketMessages` extension), records live sessions for `wsrelay
// probe`, writes them back as Chrome-shaped HARs, and infers from the frames
// what a relay needs: the URL, the handshake headers, the subscribe frames
// as templates on the symbol, the symbols, accept and extract, app-level
// ping and pong, decompression and the framing. Every inferred key carries a
// note that says how sure the inference is and why, and the result is
// checked by running every captured frame through the relay's own frame
// rules.
//
// The package serves nothing and starts no goroutine except while Record
// runs (it waits for it before returning). Nothing it prints or renders
// carries a secret (cookies, Authorization, token-like query values, tokens
// inside frames) unless the caller asks for secrets to be kept.
package capture
