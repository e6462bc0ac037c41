package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/wsrelay/wsrelay"
)

func loadSpec(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(wsrelay.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is invalid: %v", err)
	}
	doc.Servers = nil // match any host
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/yaml", openapi3filter.FileBodyDecoder)
	return doc, router
}

type call struct {
	method, path string
	hdr          map[string]string
	body         string
	status       int
	stream       int // read this many SSE events, then hang up
}

// TestEveryResponseMatchesOpenAPI (the contract test) runs real requests
// and validates every response, and every SSE event's data, against
// openapi.yaml.
func TestEveryResponseMatchesOpenAPI(t *testing.T) {
	doc, router := loadSpec(t)
	f := newFixture(t, opts{edit: func(c *Config) {
		c.AdminToken = "tok"
		c.RateLimit = RateLimit{Requests: 1000, Window: time.Minute}
	}})
	f.WaitQuotes(t, 3)
	latest, _ := f.Broker.Latest("A")
	admin := map[string]string{"Authorization": "Bearer tok"}
	calls := []call{
		{method: "GET", path: "/v1/symbols", status: 200},
		{method: "GET", path: "/v1/quotes", status: 200},
		{method: "GET", path: "/v1/quotes?symbols=A,B", status: 200},
		{method: "GET", path: "/v1/quotes?symbols=A,NOPE", status: 404},
		{method: "GET", path: "/v1/quotes?symbols=a%20b", status: 400},
		{method: "GET", path: "/v1/quotes/A", status: 200},
		{method: "GET", path: "/v1/quotes/A", hdr: map[string]string{"If-None-Match": "*"}, status: 304},
		{method: "GET", path: "/v1/quotes/NOPE", status: 404},
		{method: "GET", path: "/v1/quotes/A/history", status: 200},
		{method: "GET", path: "/v1/quotes/A/history?limit=2&after=" + latest.ID.String(), status: 200},
		{method: "GET", path: "/v1/quotes/A/history?after=1-1", status: 200},
		{method: "GET", path: "/v1/quotes/A/history?limit=0", status: 400},
		{method: "GET", path: "/v1/quotes/NOPE/history", status: 404},
		{method: "PUT", path: "/v1/symbols/C", status: 401},
		{method: "PUT", path: "/v1/symbols/C", hdr: admin, body: `{"upstream":"nope"}`, status: 400},
		{method: "PUT", path: "/v1/symbols/C", hdr: admin, status: 201},
		{method: "PUT", path: "/v1/symbols/C", hdr: admin, body: `{"upstream":"sim"}`, status: 200},
		{method: "DELETE", path: "/v1/symbols/C", hdr: admin, status: 204},
		{method: "DELETE", path: "/v1/symbols/C", hdr: admin, status: 404},
		{method: "GET", path: "/v1/stream?symbols=A,B", status: 200, stream: 120},
		{method: "GET", path: "/v1/quotes/A/stream", hdr: map[string]string{"Last-Event-ID": "1-1"}, status: 200, stream: 4},
		{method: "GET", path: "/v1/quotes/A/stream?max_rate=50&snapshot=false", status: 200, stream: 3},
		{method: "GET", path: "/v1/stream?symbols=NOPE", status: 404},
		{method: "GET", path: "/v1/stream?max_rate=-1", status: 400},
		{method: "GET", path: "/healthz", status: 200},
		{method: "GET", path: "/readyz", status: 200},
		{method: "GET", path: "/metrics", status: 200},
		{method: "GET", path: "/openapi.yaml", status: 200},
		{method: "GET", path: "/healthz?q=" + strings.Repeat("x", 5000), status: 414},
	}

	events := map[string]int{}
	check := func(c call) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, c.method, f.URL+c.path, strings.NewReader(c.body))
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		if c.stream > 0 && strings.Contains(c.path, "symbols=A,B") {
			go func() { time.Sleep(100 * time.Millisecond); f.Feed.Drop("B") }() // provoke status events
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		if c.stream > 0 {
			r := &sseReader{resp: resp, br: bufio.NewReader(resp.Body)}
			var raw bytes.Buffer
			for n := 0; n < c.stream; {
				ev, err := r.next()
				if err != nil {
					t.Fatalf("%s: %v", c.path, err)
				}
				if ev.Event == "" {
					continue
				}
				n++
				events[ev.Event]++
				schema := map[string]string{"quote": "Quote", "status": "StatusEvent", "reset": "ResetEvent"}[ev.Event]
				if schema == "" {
					t.Fatalf("%s: undocumented event %q", c.path, ev.Event)
				}
				var v any
				if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
					t.Fatalf("%s: data is not JSON: %q", c.path, ev.Data)
				}
				if err := doc.Components.Schemas[schema].Value.VisitJSON(v); err != nil {
					t.Errorf("%s: %s event drifts from %s: %v\n%s", c.path, ev.Event, schema, err, ev.Data)
				}
				raw.WriteString(ev.Data)
			}
			body = raw.Bytes()
		} else {
			body, _ = io.ReadAll(resp.Body)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: status %d, want %d: %s", c.method, c.path, resp.StatusCode, c.status, body)
			return
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: no route in openapi.yaml: %v", c.method, c.path, err)
			return
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 resp.StatusCode,
			Header:                 resp.Header,
			Options:                &openapi3filter.Options{IncludeResponseStatus: true},
		}
		in.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("%s %s: response drifts from openapi.yaml: %v", c.method, c.path, err)
		}
	}
	for _, c := range calls {
		check(c)
	}
	// Use up the REST budget, then check the documented 429.
	for range 1000 {
		resp, err := http.Get(f.URL + "/v1/symbols")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	check(call{method: "GET", path: "/v1/quotes/A", status: 429})

	for _, e := range []string{"quote", "status", "reset"} {
		if events[e] == 0 {
			t.Errorf("no %s event was checked", e)
		}
	}
	// Admin disabled is documented as 403.
	f2 := newFixture(t, opts{rate: -1})
	req, _ := http.NewRequest("DELETE", f2.URL+"/v1/symbols/A", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	route, params, _ := router.FindRoute(req)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(body)
	if resp.StatusCode != 403 {
		t.Fatalf("admin disabled: %d", resp.StatusCode)
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("403: %v", err)
	}
}
