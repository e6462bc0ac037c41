package main

import (
	"bytes"
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
			fmt.Fprintln(stdout, formatQuote(m.Data, time.Now()))
		case "status":
			var st struct{ Symbol, State, Reason string }
			if json.Unmarshal(m.Data, &st) == nil {
				fmt.Fprintf(stderr, "# %s is %s: %s\n", st.Symbol, st.State, st.Reason)
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

// formatQuote renders one line: symbol, seq, a few fields of the data and
// the latency (from the relay's receipt, and from the upstream's send time
// when the frame carries one).
func formatQuote(raw []byte, now time.Time) string {
	var q struct {
		Symbol     string          `json:"symbol"`
		Seq        uint64          `json:"seq"`
		ReceivedAt time.Time       `json:"received_at"`
		Stale      bool            `json:"stale"`
		Data       json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &q); err != nil {
		return string(raw)
	}
	var line strings.Builder
	fmt.Fprintf(&line, "%-10s seq=%-7d", q.Symbol, q.Seq)
	fields, sentNS := pickFields(q.Data)
	for _, f := range fields {
		line.WriteString("  ")
		line.WriteString(f)
	}
	fmt.Fprintf(&line, "  relay+%s", now.Sub(q.ReceivedAt).Round(100*time.Microsecond))
	if sentNS > 0 {
		fmt.Fprintf(&line, "  e2e=%s", now.Sub(time.Unix(0, sentNS)).Round(100*time.Microsecond))
	}
	if q.Stale {
		line.WriteString("  STALE")
	}
	return line.String()
}

// pickFields finds the quote object (the data, or the first element of its
// "data" array) and returns up to four well-known price fields.
func pickFields(data json.RawMessage) ([]string, int64) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return nil, 0
	}
	if inner, ok := obj["data"]; ok {
		var arr []map[string]json.RawMessage
		var one map[string]json.RawMessage
		if json.Unmarshal(inner, &arr) == nil && len(arr) > 0 {
			obj = arr[0]
		} else if json.Unmarshal(inner, &one) == nil {
			obj = one
		}
	}
	var out []string
	for _, k := range []string{"last_price", "close", "price", "bid", "ask", "high", "low", "volume"} {
		if v, ok := obj[k]; ok && len(out) < 4 {
			out = append(out, k+"="+string(bytes.Trim(v, `"`)))
		}
	}
	var sent int64
	if v, ok := obj["sent_ns"]; ok {
		json.Unmarshal(v, &sent)
	}
	return out, sent
}
