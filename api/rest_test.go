package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/relaytest"
)

type quoteBody struct {
	Symbol     string          `json:"symbol"`
	ID         string          `json:"id"`
	Seq        uint64          `json:"seq"`
	ReceivedAt time.Time       `json:"received_at"`
	Stale      bool            `json:"stale"`
	Data       json.RawMessage `json:"data"`
}

type errBody struct {
	Error struct{ Code, Message string }
}

// TestLatestQuoteHasCacheHeadersAndHonoursIfNoneMatch: the latest quote over
// REST with ETag, Last-Modified, Age and Cache-Control; If-None-Match gives
// 304 while it is the latest; several symbols at once.
func TestLatestQuoteHasCacheHeadersAndHonoursIfNoneMatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 1)
	resp, body := get(t, f.URL+"/v1/quotes/A")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var q quoteBody
	if err := json.Unmarshal(body, &q); err != nil {
		t.Fatal(err)
	}
	if q.Symbol != "A" || q.Seq == 0 || !strings.Contains(string(q.Data), `"group":"QuoteBin5m:A"`) {
		t.Fatalf("quote %s", body)
	}
	h := resp.Header
	if h.Get("ETag") != `"`+q.ID+`"` || h.Get("Cache-Control") != "no-cache" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", h)
	}
	if lm, err := http.ParseTime(h.Get("Last-Modified")); err != nil || lm.Unix() != q.ReceivedAt.Unix() {
		t.Fatalf("Last-Modified %q vs %s", h.Get("Last-Modified"), q.ReceivedAt)
	}
	if age, err := strconv.Atoi(h.Get("Age")); err != nil || age < 0 || age > 5 {
		t.Fatalf("Age %q", h.Get("Age"))
	}
	// If-None-Match with the current ETag: 304 while it is still the latest.
	f.Feed.SetPaused(true)
	time.Sleep(50 * time.Millisecond)
	resp, body = get(t, f.URL+"/v1/quotes/A")
	etag := resp.Header.Get("ETag")
	resp, body = get(t, f.URL+"/v1/quotes/A", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("If-None-Match: %d %s", resp.StatusCode, body)
	}
	resp, _ = get(t, f.URL+"/v1/quotes/A", "If-None-Match", `W/"1-1", `+etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("weak list: %d", resp.StatusCode)
	}
	f.Feed.SetPaused(false)
	f.WaitQuotes(t, q.Seq+5)
	if resp, _ = get(t, f.URL+"/v1/quotes/A", "If-None-Match", etag); resp.StatusCode != 200 {
		t.Fatalf("changed quote: %d", resp.StatusCode)
	}
	// Many symbols at once.
	resp, body = get(t, f.URL+"/v1/quotes?symbols=A,B")
	var many struct{ Quotes map[string]quoteBody }
	if err := json.Unmarshal(body, &many); err != nil || len(many.Quotes) != 2 || many.Quotes["B"].Symbol != "B" {
		t.Fatalf("quotes: %d %s", resp.StatusCode, body)
	}
	_, body = get(t, f.URL+"/v1/quotes")
	if json.Unmarshal(body, &many); len(many.Quotes) != 2 {
		t.Fatalf("all quotes %s", body)
	}
}

// TestQuoteBeforeFirstDataIs503WithRetryAfter: before a symbol's first
// quote, GET /v1/quotes/{symbol} is 503 no_data_yet with Retry-After, the
// multi-quote list is empty and /readyz is 503.
func TestQuoteBeforeFirstDataIs503WithRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{rate: -1})
	resp, body := get(t, f.URL+"/v1/quotes/A")
	var e errBody
	json.Unmarshal(body, &e)
	if resp.StatusCode != 503 || e.Error.Code != CodeNoData || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s %v", resp.StatusCode, body, resp.Header)
	}
	_, body = get(t, f.URL+"/v1/quotes")
	if string(body) != `{"quotes":{}}`+"\n" {
		t.Fatalf("no quotes yet: %s", body)
	}
	resp, _ = get(t, f.URL+"/readyz")
	if resp.StatusCode != 503 {
		t.Fatalf("readyz before data: %d", resp.StatusCode)
	}
}

// TestHistoryCursorLosesNothing: a client polling history with ?after= gets
// every quote once, in order; a foreign cursor resets with the oldest kept
// quotes.
func TestHistoryCursorLosesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{rate: 400, history: 4096})
	f.WaitQuotes(t, 1)
	resp, body := get(t, f.URL+"/v1/quotes/A/history?limit=1")
	var h struct {
		Quotes []quoteBody
		Reset  bool
	}
	if err := json.Unmarshal(body, &h); err != nil || resp.StatusCode != 200 || len(h.Quotes) != 1 || h.Reset {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	cursor, last := h.Quotes[0].ID, h.Quotes[0].Seq
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	for got < 500 && time.Now().Before(deadline) {
		_, body = get(t, f.URL+"/v1/quotes/A/history?limit=7&after="+cursor)
		h.Quotes = nil
		if err := json.Unmarshal(body, &h); err != nil || h.Reset {
			t.Fatalf("poll: %s", body)
		}
		for _, q := range h.Quotes {
			if q.Seq != last+1 {
				t.Fatalf("seq %d after %d", q.Seq, last)
			}
			last = q.Seq
			cursor = q.ID
			got++
		}
		if len(h.Quotes) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if got < 500 {
		t.Fatalf("only %d quotes polled", got)
	}
	// A cursor from another epoch resets, with the oldest kept quotes.
	_, body = get(t, f.URL+"/v1/quotes/A/history?after=1-1&limit=3")
	if json.Unmarshal(body, &h); !h.Reset || len(h.Quotes) != 3 || h.Quotes[0].Seq != 1 {
		t.Fatalf("foreign cursor: %s", body)
	}
}

// TestBadRequestsGetTheirErrorCode: every bad request gets its status, its
// stable error code and a message naming what was wrong, as JSON.
func TestBadRequestsGetTheirErrorCode(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 1)
	distinct := make([]string, 101)
	for i := range distinct {
		distinct[i] = fmt.Sprintf("S%d", i)
	}
	cases := []struct {
		method, path string
		status       int
		code, names  string
	}{
		{"GET", "/v1/quotes/NOPE", 404, CodeUnknownSymbol, "NOPE"},
		{"GET", "/v1/quotes/a%20b", 400, CodeInvalidSymbol, "symbol"},
		{"GET", "/v1/quotes?symbols=A,a%2Fb", 400, CodeInvalidSymbol, "symbols"},
		{"GET", "/v1/quotes?symbols=A,NOPE", 404, CodeUnknownSymbol, "NOPE"},
		{"GET", "/v1/quotes?symbols=" + strings.Join(distinct, ","), 400, CodeTooManySymbols, "symbols"},
		{"GET", "/v1/quotes?symbols=" + strings.Join(distinct, ",") + ",bad%20one", 400, CodeTooManySymbols, "symbols"},
		{"GET", "/v1/quotes/A/history?limit=0", 400, CodeInvalidParameter, "limit"},
		{"GET", "/v1/quotes/A/history?limit=1001", 400, CodeInvalidParameter, "limit"},
		{"GET", "/v1/quotes/A/history?limit=x", 400, CodeInvalidParameter, "limit"},
		{"GET", "/v1/quotes/A/history?after=12", 400, CodeInvalidParameter, "after"},
		{"GET", "/v1/quotes/A/history?after=-1-2", 400, CodeInvalidParameter, "after"},
		{"GET", "/v1/quotes/NOPE/history", 404, CodeUnknownSymbol, "NOPE"},
		{"GET", "/v1/stream?symbols=A,NOPE", 404, CodeUnknownSymbol, "NOPE"},
		{"GET", "/v1/stream?symbols=x%0Ay", 400, CodeInvalidSymbol, "symbols"},
		{"GET", "/v1/stream?symbols=" + strings.Join(distinct, ",") + ",x%0Ay", 400, CodeTooManySymbols, "symbols"},
		{"GET", "/v1/stream?snapshot=maybe", 400, CodeInvalidParameter, "snapshot"},
		{"GET", "/v1/stream?max_rate=0", 400, CodeInvalidParameter, "max_rate"},
		{"GET", "/v1/stream?max_rate=NaN", 400, CodeInvalidParameter, "max_rate"},
		{"GET", "/v1/stream?last_event_id=abc", 400, CodeInvalidParameter, "last_event_id"},
		{"GET", "/v1/quotes/NOPE/stream", 404, CodeUnknownSymbol, "NOPE"},
		{"GET", "/v1/nothing", 404, CodeNotFound, "/v1/nothing"},
		{"POST", "/v1/quotes/A", 405, CodeMethodNotAllowed, "POST"},
		{"PUT", "/v1/symbols/C", 403, CodeAdminDisabled, "admin"},
		{"DELETE", "/v1/symbols/A", 403, CodeAdminDisabled, "admin"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, f.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e errBody
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.names) {
			t.Errorf("%s %s: %d %+v (err %v), want %d %s naming %q", tc.method, trunc(tc.path, 60), resp.StatusCode, e, err, tc.status, tc.code, tc.names)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content type %q", tc.path, ct)
		}
	}
}

// TestAdminAddsAndRemovesSymbolsWithTheToken: admin calls need the bearer
// token; a refused one never reaches the upstream; an added symbol gets
// quotes, a removed one is gone with its cached response.
func TestAdminAddsAndRemovesSymbolsWithTheToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{edit: func(c *Config) { c.AdminToken = "s3cret" }})
	do := func(method, path, token, body string) (int, []byte) {
		req, _ := http.NewRequest(method, f.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := do("PUT", "/v1/symbols/C", "", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := do("PUT", "/v1/symbols/C", "wrong", ""); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	f.WaitQuotes(t, 1)
	before := len(f.Feed.Received())
	if code, body := do("PUT", "/v1/symbols/bad%20sym", "s3cret", ""); code != 400 || !strings.Contains(string(body), CodeInvalidSymbol) {
		t.Fatalf("invalid symbol: %d %s", code, body)
	}
	if code, body := do("PUT", "/v1/symbols/C", "s3cret", `{"upstream":"other"}`); code != 400 || !strings.Contains(string(body), CodeUnknownUpstream) {
		t.Fatalf("unknown upstream: %d %s", code, body)
	}
	if code, body := do("PUT", "/v1/symbols/C", "s3cret", `{"url":"ws://evil"}`); code != 400 || !strings.Contains(string(body), CodeInvalidBody) {
		t.Fatalf("unknown field: %d %s", code, body)
	}
	if len(f.Feed.Received()) != before {
		t.Fatal("a refused request reached the upstream")
	}
	if code, body := do("PUT", "/v1/symbols/C", "s3cret", ""); code != 201 || !strings.Contains(string(body), `"symbol":"C"`) {
		t.Fatalf("add: %d %s", code, body)
	}
	if code, _ := do("PUT", "/v1/symbols/C", "s3cret", `{"upstream":"sim"}`); code != 200 {
		t.Fatalf("add again: %d", code)
	}
	relaytest.Eventually(t, "a quote for the added symbol", func() bool {
		resp, _ := get(t, f.URL+"/v1/quotes/C")
		return resp.StatusCode == 200
	})
	if code, _ := do("DELETE", "/v1/symbols/C", "s3cret", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	f.api.quotes.mu.RLock()
	_, cached := f.api.quotes.bySymbol["C"]
	f.api.quotes.mu.RUnlock()
	if cached {
		t.Fatal("the removed symbol's REST response is still cached")
	}
	if code, _ := do("DELETE", "/v1/symbols/C", "s3cret", ""); code != 404 {
		t.Fatalf("delete again: %d", code)
	}
	if resp, _ := get(t, f.URL+"/v1/quotes/C"); resp.StatusCode != 404 {
		t.Fatalf("deleted symbol still served: %d", resp.StatusCode)
	}
}

// TestAdminAddPastMaxConnectionsIs409: an upstream whose max_connections
// are taken has no room for another symbol.
func TestAdminAddPastMaxConnectionsIs409(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{edit: func(c *Config) { c.AdminToken = "s3cret-0123456789" },
		upstream: func(u *relay.UpstreamConfig) { u.MaxConnections = 2 }})
	req, _ := http.NewRequest(http.MethodPut, f.URL+"/v1/symbols/C", nil)
	req.Header.Set("Authorization", "Bearer s3cret-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e errBody
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || e.Error.Code != CodeUpstreamFull || !strings.Contains(e.Error.Message, "max_connections") {
		t.Fatalf("%d %+v", resp.StatusCode, e)
	}
}

// TestCORSAllowsOnlyTheConfiguredOrigins: preflights and responses allow the
// configured origins only, never credentials; an origin without scheme is
// refused by New.
func TestCORSAllowsOnlyTheConfiguredOrigins(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{edit: func(c *Config) { c.CORSOrigins = []string{"https://board.example"} }})
	req, _ := http.NewRequest(http.MethodOptions, f.URL+"/v1/stream?symbols=A", nil)
	req.Header.Set("Origin", "https://board.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "last-event-id")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://board.example" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Last-Event-ID") || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	resp, _ = get(t, f.URL+"/healthz", "Origin", "https://evil.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("foreign origin allowed")
	}
	resp, _ = get(t, f.URL+"/healthz", "Origin", "https://board.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://board.example" || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Fatalf("allowed origin: %v", resp.Header)
	}
	if _, err := New(Config{Broker: f.Broker, Upstreams: f.Relay, CORSOrigins: []string{"board.example"}}); err == nil {
		t.Fatal("origin without scheme accepted")
	}
}

// TestHealthReadinessAndMetrics: /healthz, /readyz (503 from shutdown on)
// and /metrics with every family, lint-clean.
func TestHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{})
	f.WaitQuotes(t, 3)
	if resp, _ := get(t, f.URL+"/healthz"); resp.StatusCode != 200 {
		t.Fatal("healthz")
	}
	if resp, body := get(t, f.URL+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz %d %s", resp.StatusCode, body)
	}
	get(t, f.URL+"/v1/quotes/A")
	resp, body := get(t, f.URL+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	for _, m := range []string{
		`wsrelay_upstream_connected{symbol="A",upstream="sim"} 1`,
		`wsrelay_upstream_quotes_total{symbol="A",upstream="sim"}`,
		`wsrelay_upstream_frames_total`, `wsrelay_upstream_reconnects_total`, `wsrelay_upstream_ignored_frames_total`,
		`wsrelay_upstream_last_quote_timestamp_seconds{symbol="B"`,
		`wsrelay_sse_clients 0`, `wsrelay_sse_events_sent_total`, `wsrelay_sse_disconnects_total{reason="queue_full"}`,
		`wsrelay_sse_resumes_total`, `wsrelay_sse_resets_total`, `wsrelay_relay_latency_seconds_bucket`,
		`wsrelay_http_requests_total{code="200",method="GET",route="/v1/quotes/{symbol}"} 1`,
		`wsrelay_http_request_duration_seconds_count{method="GET",route="/v1/quotes/{symbol}"} 1`,
	} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	problems, err := testutil.GatherAndLint(f.api.metrics.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	f.api.Shutdown(t.Context())
	if resp, _ := get(t, f.URL+"/readyz"); resp.StatusCode != 503 {
		t.Fatalf("readyz during shutdown: %d", resp.StatusCode)
	}
	if resp, _ := get(t, f.URL+"/healthz"); resp.StatusCode != 200 {
		t.Fatal("healthz during shutdown")
	}
}

// TestQuoteIsFlaggedStaleWhileUpstreamIsStale: while the upstream is stale
// the REST quote says so (and says so no longer once it is live again).
func TestQuoteIsFlaggedStaleWhileUpstreamIsStale(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{rate: -1})
	relaytest.Eventually(t, "a quote for A", func() bool {
		f.Feed.Push("A")
		st, _ := f.Relay.Status("A")
		return st.Quotes > 0
	})
	stale := func() bool {
		_, body := get(t, f.URL+"/v1/quotes/A")
		var q quoteBody
		if err := json.Unmarshal(body, &q); err != nil {
			t.Fatalf("%s", body)
		}
		return q.Stale
	}
	if stale() {
		t.Fatal("fresh quote marked stale")
	}
	f.Broker.PublishStatus("A", relay.StateStale, "no quote for 30s", time.Now())
	if !stale() {
		t.Fatal("stale upstream not reflected")
	}
	_, body := get(t, f.URL+"/v1/quotes?symbols=A")
	if !strings.Contains(string(body), `"stale":true`) {
		t.Fatalf("multi-quote snapshot: %s", body)
	}
	f.Broker.PublishStatus("A", relay.StateLive, "quotes flowing", time.Now())
	if stale() {
		t.Fatal("still stale after live")
	}
}

// TestRESTIsRateLimitedAndQueriesBounded: REST requests past the rate limit
// get 429 with Retry-After (streams and health are exempt); a query past
// maxQueryLength gets 414.
func TestRESTIsRateLimitedAndQueriesBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, opts{edit: func(c *Config) { c.RateLimit = RateLimit{Requests: 5, Window: time.Minute} }})
	f.WaitQuotes(t, 1)
	var last *http.Response
	var body []byte
	for range 6 {
		last, body = get(t, f.URL+"/v1/quotes/A")
	}
	var e errBody
	json.Unmarshal(body, &e)
	if last.StatusCode != 429 || e.Error.Code != CodeRateLimited || last.Header.Get("Retry-After") == "" {
		t.Fatalf("6th request: %d %s %v", last.StatusCode, body, last.Header)
	}
	// Streams and health probes are not rate-limited.
	if resp, _ := get(t, f.URL+"/healthz"); resp.StatusCode != 200 {
		t.Fatalf("healthz limited: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	openSSE(t, ctx, f.URL+"/v1/stream?symbols=A").Close()
	// An over-long query string.
	resp, body := get(t, f.URL+"/healthz?x="+strings.Repeat("a", maxQueryLength))
	json.Unmarshal(body, &e)
	if resp.StatusCode != 414 || e.Error.Code != CodeURITooLong || !strings.Contains(e.Error.Message, "query") {
		t.Fatalf("long query: %d %s", resp.StatusCode, body)
	}
	if _, err := New(Config{Broker: f.Broker, Upstreams: f.Relay, RateLimit: RateLimit{Requests: 5, Window: -time.Second}}); err == nil {
		t.Fatal("a negative rate limit window accepted")
	}
}
