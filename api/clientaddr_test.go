package api

import (
	"net/http"
	"net/netip"
	"testing"
)

// TestClientAddr: the address the per-address limits count is the peer's,
// or, behind trusted proxies, the first untrusted one X-Forwarded-For
// names from the right.
func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no trusted proxies: the peer, whatever the header", nil, "10.1.1.1:5000", []string{"1.2.3.4"}, "10.1.1.1"},
		{"untrusted peer: its header is ignored", trusted, "8.8.8.8:5000", []string{"1.2.3.4"}, "8.8.8.8"},
		{"trusted peer without header", trusted, "127.0.0.1:5000", nil, "127.0.0.1"},
		{"one proxy", trusted, "127.0.0.1:5000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"a client's own header is not believed", trusted, "127.0.0.1:5000", []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"},
		{"a chain of trusted proxies", trusted, "10.0.0.1:5000", []string{"1.2.3.4, 10.0.0.7", "10.9.9.9"}, "1.2.3.4"},
		{"every hop trusted: the left-most", trusted, "10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"malformed entry stops at the last trusted hop", trusted, "10.0.0.1:5000", []string{"1.2.3.4, junk, 10.0.0.2"}, "10.0.0.2"},
		{"IPv6 peer and client", trusted, "[::1]:5000", []string{" 2001:db8::1 "}, "2001:db8::1"},
		{"IPv4-mapped client", trusted, "127.0.0.1:5000", []string{"::ffff:1.2.3.4"}, "1.2.3.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := (clientAddrs{trusted: tc.trusted}).of(r); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.local", "", "fe80::1%eth0"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
