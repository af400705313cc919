// Package clientaddr works out who a request comes from when sks runs
// behind reverse proxies or relays ([http] trusted_proxies), and whether a
// loopback caller may still be trusted as local.
//
// Only a peer inside a trusted range is believed about anyone else's
// address. From such a peer the client is the rightmost X-Forwarded-For hop
// that is not itself trusted (every hop to its right was appended by a
// trusted proxy, everything to its left may be forged by the client).
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds client addresses. The nil *Resolver trusts no proxy: the
// client is always the TCP peer.
type Resolver struct {
	trusted []netip.Prefix
}

// ParsePrefixes reads CIDRs ("10.0.0.0/8", "::1/128") or single addresses
// ("127.0.0.1", taken as /32 or /128). name is used in error messages.
func ParsePrefixes(name string, cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, unmapPrefix(p.Masked()))
			continue
		}
		a, err := netip.ParseAddr(c)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%s: %q is neither an address nor a CIDR (such as 10.0.0.0/8)", name, c)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// unmapPrefix turns ::ffff:10.0.0.0/104 into 10.0.0.0/8, so that IPv4
// peers (always unmapped here) match it.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// New returns a Resolver trusting the given CIDRs (see ParsePrefixes). No
// CIDRs give a Resolver that trusts no one, like nil.
func New(cidrs []string) (*Resolver, error) {
	p, err := ParsePrefixes("trusted_proxies", cidrs)
	if err != nil {
		return nil, err
	}
	return &Resolver{trusted: p}, nil
}

// Contains reports whether a lies in one of prefixes.
func Contains(prefixes []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Configured reports whether any proxy is trusted.
func (r *Resolver) Configured() bool { return r != nil && len(r.trusted) > 0 }

// Peer is the TCP peer of req (IPv4-mapped IPv6 unmapped, zone dropped).
func Peer(req *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		// httptest and some listeners give a bare address.
		a, err := netip.ParseAddr(req.RemoteAddr)
		if err != nil {
			return netip.Addr{}, false
		}
		return a.Unmap().WithZone(""), true
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// TrustedPeer reports whether the TCP peer of req is a trusted proxy.
func (r *Resolver) TrustedPeer(req *http.Request) bool {
	if !r.Configured() {
		return false
	}
	p, ok := Peer(req)
	return ok && Contains(r.trusted, p)
}

// Forwarded reports whether req carries X-Forwarded-For or Forwarded, that
// is, claims to come through a proxy, whoever sent it.
func Forwarded(req *http.Request) bool {
	return len(req.Header["X-Forwarded-For"]) > 0 || len(req.Header["Forwarded"]) > 0
}

// Client returns the client address of req as text: from a trusted peer,
// the rightmost untrusted X-Forwarded-For hop; otherwise the peer. A
// request whose RemoteAddr is not an address (never from net/http's
// server) gives RemoteAddr itself.
func (r *Resolver) Client(req *http.Request) string {
	c, _ := r.Resolve(req)
	return c
}

// Resolve returns what Client does, and whether the TCP peer is a trusted
// proxy (TrustedPeer), parsing the peer once.
func (r *Resolver) Resolve(req *http.Request) (client string, trusted bool) {
	if r.Configured() {
		if peer, ok := Peer(req); ok && Contains(r.trusted, peer) {
			return r.Rightmost(req.Header["X-Forwarded-For"], peer).String(), true
		}
	}
	return peerText(req), false
}

// peerText is the peer's address as text, a substring of RemoteAddr where
// possible (no allocation on the hot path).
func peerText(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	if strings.HasPrefix(host, "::ffff:") || strings.IndexByte(host, '%') >= 0 {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("").String()
		}
	}
	return host
}

// Rightmost walks X-Forwarded-For values (each a comma-separated list;
// several header lines count as one list) from the right, starting from the
// trusted peer: the first hop that is not trusted is the client. A hop that
// is not an address stops the walk at the trusted hop that reported it; if
// every hop is trusted, the leftmost is the client.
func (r *Resolver) Rightmost(xff []string, peer netip.Addr) netip.Addr {
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for v != "" {
			var hop string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				hop, v = v, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue
			}
			a, ok := ParseHop(hop)
			if !ok {
				return client
			}
			client = a
			if !r.Configured() || !Contains(r.trusted, a) {
				return a
			}
		}
	}
	return client
}

// ParseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711") or in brackets.
func ParseHop(s string) (netip.Addr, bool) {
	if len(s) > 64 {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() && a.Zone() == "" {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// LocalCaller reports whether req may enjoy a loopback caller's privileges
// (admin endpoints with [admin] allow_loopback, /metrics): its peer is
// loopback, no proxy is configured (a proxy on the same host would make
// every client look local), and it carries no X-Forwarded-For or Forwarded
// header (a proxy that nobody configured here).
func (r *Resolver) LocalCaller(req *http.Request) bool {
	if r.Configured() || Forwarded(req) {
		return false
	}
	p, ok := Peer(req)
	return ok && p.IsLoopback()
}
