package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/wsrelay/wsrelay/api"
)

// tail prints live quotes from a running relay, one line each, and keeps
// going across dropped connections by resuming from the last event ID.
func tail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	server := fs.String("server", envOr(getenv, "WSRELAY_SERVER", "http://localhost:8080"), "relay base URL (env WSRELAY_SERVER)")
	asJSON := fs.Bool("json", false, "print each quote's raw JSON")
	help, err := parseFlags(fs, "wsrelay tail [-server URL] [-json] SYMBOL...", args, stdout)
	if help || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("tail: name at least one symbol")
	}
	base, err := url.Parse(*server)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usagef("-server: %q is not an http(s):// URL", *server)
	}
	syms, err := api.ParseSymbols(strings.Join(fs.Args(), ","))
	if err != nil {
		return usagef("tail: %v", err)
	}
	list := strings.Join(syms, ",")
	// Check the symbols once, so a typo is an error and not an endless retry.
	if err := checkSymbols(ctx, base.JoinPath("/v1/quotes").String()+"?symbols="+url.QueryEscape(list)); err != nil {
		return err
	}

	client := sse.NewClient(base.JoinPath("/v1/stream").String()+"?symbols="+url.QueryEscape(list), sse.ClientMaxBufferSize(4<<20))
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0
	client.ReconnectStrategy = backoff.WithContext(b, ctx)
	client.ReconnectNotify = func(err error, d time.Duration) {
		fmt.Fprintf(stderr, "# connection lost (%v); retrying in %s\n", err, d.Round(time.Millisecond))
	}
	var fields *fieldsCache
	if !*asJSON {
		// Where each symbol's prices are (fields); without it the line
		// guesses from the data's keys.
		fields = newFieldsCache(base.JoinPath("/v1/symbols").String())
		if err := fields.refresh(ctx); err != nil {
			fmt.Fprintf(stderr, "# %v; guessing prices from the data\n", err)
		}
	}
	handle := func(m *sse.Event) {
		if len(m.Data) == 0 { // comments (keepalives) reach the handler empty
			return
		}
		switch string(m.Event) {
		case "quote":
			if *asJSON {
				fmt.Fprintf(stdout, "%s\n", m.Data)
				return
			}
			fmt.Fprintln(stdout, formatQuote(m.Data, func(sym string) *quoteFields { return fields.lookup(ctx, sym) }, time.Now()))
		case "status":
			var st struct{ Symbol, State, Reason string }
			if json.Unmarshal(m.Data, &st) == nil {
				fmt.Fprintf(stderr, "# %s is %s: %s\n", printable(st.Symbol, 64), printable(st.State, 32), printable(st.Reason, 300))
				if st.State == "removed" && fields != nil {
					fields.forget(st.Symbol) // it may come back on another upstream
				}
			}
		case "reset":
			fmt.Fprintf(stderr, "# reset (%s): quotes may have been missed; a snapshot follows\n", m.Data)
		}
	}
	for ctx.Err() == nil {
		// A cleanly ended response returns nil without reconnecting: loop,
		// and the client resends its last event ID.
		_ = client.SubscribeRawWithContext(ctx, handle)
		if ctx.Err() == nil {
			fmt.Fprintln(stderr, "# stream ended; resuming")
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return nil
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}

func checkSymbols(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return usagef("tail: %s", e.Error.Message)
	}
	return fmt.Errorf("tail: %s answered %s", u, resp.Status)
}

// fieldsCache holds each symbol's fields from GET /v1/symbols. A symbol
// it does not know makes it read the list again, at most once per
// refetchEvery. Not safe for concurrent use (the SSE client calls its
// handler from one goroutine).
type fieldsCache struct {
	url       string
	client    *http.Client
	known     map[string]*quoteFields // nil value: known, no fields
	fetchedAt time.Time
}

const refetchEvery = 5 * time.Second

func newFieldsCache(url string) *fieldsCache {
	return &fieldsCache{url: url, client: &http.Client{Timeout: 5 * time.Second}, known: map[string]*quoteFields{}}
}

// lookup returns the fields of symbol, reading /v1/symbols again when the
// symbol is new to it. A nil cache (tail -json) knows nothing.
func (c *fieldsCache) lookup(ctx context.Context, symbol string) *quoteFields {
	if c == nil {
		return nil
	}
	if f, ok := c.known[symbol]; ok {
		return f
	}
	if time.Since(c.fetchedAt) >= refetchEvery {
		c.refresh(ctx) // on failure the heuristic stands in
	}
	return c.known[symbol]
}

// forget drops a removed symbol: when it comes back (perhaps on another
// upstream, with other fields), its first quote reads the list at once.
func (c *fieldsCache) forget(symbol string) {
	delete(c.known, symbol)
	c.fetchedAt = time.Time{}
}

// refresh reads GET /v1/symbols.
func (c *fieldsCache) refresh(ctx context.Context) error {
	c.fetchedAt = time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("tail: reading the symbols' fields: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("tail: %s answered %s", c.url, resp.Status)
	}
	var body struct {
		Symbols []struct {
			Symbol string `json:"symbol"`
			Fields *struct {
				Last string `json:"last"`
				Bid  string `json:"bid"`
				Ask  string `json:"ask"`
			} `json:"fields"`
		} `json:"symbols"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body); err != nil {
		return fmt.Errorf("tail: reading %s: %w", c.url, err)
	}
	for _, s := range body.Symbols {
		var f *quoteFields
		if s.Fields != nil {
			f = parseFields(s.Fields.Last, s.Fields.Bid, s.Fields.Ask)
		}
		c.known[s.Symbol] = f
	}
	return nil
}
