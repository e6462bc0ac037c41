package testsite

import (
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestPage(t *testing.T) {
	srv := httptest.NewServer(Page())
	defer srv.Close()
	c := PageConfig{Proto: "okx", WS: "ws://127.0.0.1:1/ws/v5/public", Symbols: []string{"BTC-USDT", "ETH-USDT"}, PingMillis: 300}
	u, err := url.Parse(c.URL(srv.URL))
	if err != nil || u.Query().Get("symbols") != "BTC-USDT,ETH-USDT" || u.Query().Get("ping") != "300" || u.Query().Get("ws") != c.WS {
		t.Fatalf("URL %s: %v", u, err)
	}
	resp, err := srv.Client().Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "new WebSocket(") {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	resp, err = srv.Client().Get(srv.URL + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("favicon: %d", resp.StatusCode)
	}
}
