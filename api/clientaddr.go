package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddrs finds the address the per-address limits count: the
// connection's peer, or, when the peer is a trusted proxy, the client its
// X-Forwarded-For names. The header is read from the right (the entry the
// nearest proxy appended) and the first address outside the trusted ranges
// is the client, so a client cannot pick its address by sending the header
// itself. A malformed entry stops the walk at the last trusted hop.
type clientAddrs struct {
	trusted []netip.Prefix
}

type clientAddrKey struct{}

// middleware computes the request's client address once and keeps it in
// the request's context for clientAddr.
func (c clientAddrs) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), clientAddrKey{}, c.of(r))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// clientAddr returns the client address the middleware stored, or the
// peer's when it did not run.
func clientAddr(r *http.Request) string {
	if a, ok := r.Context().Value(clientAddrKey{}).(string); ok {
		return a
	}
	return clientAddrs{}.of(r)
}

// of computes r's client address.
func (c clientAddrs) of(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if len(c.trusted) == 0 {
		return peer
	}
	hop, err := netip.ParseAddr(peer)
	if err != nil || !c.isTrusted(hop.Unmap()) {
		return peer
	}
	hop = hop.Unmap()
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(entry))
			if err != nil {
				return hop.String()
			}
			hop = a.Unmap()
			if !c.isTrusted(hop) {
				return hop.String()
			}
		}
	}
	return hop.String() // every hop trusted: the left-most is the client
}

func (c clientAddrs) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads trusted_proxies entries: CIDR prefixes or
// single addresses.
func ParseTrustedProxies(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address or CIDR prefix", trunc(e, 80))
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
