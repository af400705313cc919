package server

import (
	"net/http"
	"net/netip"

	"github.com/sks-server/sks/clientaddr"
)

// clientOf returns the client address of q: behind a trusted proxy the
// address it reports (X-Forwarded-For, or the client= parameter of a relay
// that sends no X-Forwarded-For), else the TCP peer. A trusted caller's
// malformed client= is answered 400 here (ok false). From anyone else
// client= is ignored.
func (s *Server) clientOf(q *request) (string, bool) {
	client, trusted := s.o.Clients.Resolve(q.r)
	if !trusted {
		return client, true
	}
	if clientaddr.Forwarded(q.r) {
		// An HTTP proxy: the client's own query string reaches us
		// unchanged, so client= could be the client's invention.
		return client, true
	}
	v, ok := q.p.get("client")
	if !ok {
		return client, true
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		reply(q.w, http.StatusBadRequest, "ERR: invalid client (an IP address)\n")
		return "", false
	}
	return a.Unmap().String(), true
}

// relayAddr reports whether client is one of realm's relays ([realms.R]
// relays; realms without a section of their own follow "*").
func (s *Server) relayAddr(realm, client string) bool {
	if len(s.o.Relays) == 0 {
		return false
	}
	prefixes, ok := s.o.Relays[realm]
	if !ok {
		prefixes = s.o.Relays["*"]
	}
	if len(prefixes) == 0 {
		return false
	}
	a, err := netip.ParseAddr(client)
	return err == nil && clientaddr.Contains(prefixes, a)
}

// credentialRelay reports whether a login request presents an admin
// credential, which marks its caller as a relay. Loopback is no credential
// here: list 127.0.0.1 in the realm's relays for a relay on the same host.
func (s *Server) credentialRelay(q *request) bool {
	if q.r.TLS == nil && q.r.Header.Get("Authorization") == "" {
		return false // no credential to check: skip the checks' work
	}
	_, ok := s.adminCredential(q)
	return ok
}
