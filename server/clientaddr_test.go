package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sks-server/sks/clientaddr"
	"github.com/sks-server/sks/guard"
	"github.com/sks-server/sks/server"
)

// seen records what the login hooks and the event hook were told.
type seen struct {
	mu     sync.Mutex
	client string
	relay  bool
	event  string
}

func hooksInto(s *seen) func(*server.Options) {
	return func(o *server.Options) {
		o.Hooks.BeforeLogin = func(ctx context.Context, realm, user, client string, relay bool) (time.Duration, bool, error) {
			s.mu.Lock()
			s.client, s.relay = client, relay
			s.mu.Unlock()
			return 0, false, nil
		}
		o.Hooks.Event = func(ctx context.Context, e server.Event) error {
			s.mu.Lock()
			s.event = e.Client
			s.mu.Unlock()
			return nil
		}
	}
}

func mustResolver(t *testing.T, cidrs ...string) *clientaddr.Resolver {
	t.Helper()
	r, err := clientaddr.New(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestClientAddressBehindProxies: the address that feeds bans, audit and
// the log is the peer, unless a trusted proxy reports another
// (X-Forwarded-For's rightmost untrusted hop, or a relay's client=).
func TestClientAddressBehindProxies(t *testing.T) {
	s := &seen{}
	e := newEnv(t, cfgFake, func(o *server.Options) {
		hooksInto(s)(o)
		o.Clients = mustResolver(t, "127.0.0.1", "10.0.0.0/8")
		o.Relays = map[string][]netip.Prefix{"relayed": {netip.MustParsePrefix("192.0.2.0/24")}, "*": nil}
	})
	cases := []struct {
		name, peer, query, auth string
		header                  map[string]string
		status                  int
		client                  string
		relay                   bool
	}{
		{"plain", "198.51.100.1:1", "", "", nil, 200, "198.51.100.1", false},
		{"xff from untrusted peer ignored", "198.51.100.1:1", "", "", map[string]string{"X-Forwarded-For": "203.0.113.5"}, 200, "198.51.100.1", false},
		{"xff from trusted proxy", "127.0.0.1:1", "", "", map[string]string{"X-Forwarded-For": "203.0.113.5"}, 200, "203.0.113.5", false},
		{"spoofed chain", "127.0.0.1:1", "", "", map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.5, 10.2.3.4"}, 200, "203.0.113.5", false},
		{"client= from trusted relay", "10.0.0.7:1", "&client=203.0.113.9", "", nil, 200, "203.0.113.9", false},
		{"client= from untrusted peer ignored", "198.51.100.1:1", "&client=203.0.113.9", "", nil, 200, "198.51.100.1", false},
		{"client= through an http proxy ignored", "127.0.0.1:1", "&client=203.0.113.9", "", map[string]string{"X-Forwarded-For": "203.0.113.5"}, 200, "203.0.113.5", false},
		{"malformed client= from trusted relay", "10.0.0.7:1", "&client=nonsense", "", nil, 400, "", false},
		{"malformed client= from anyone else ignored", "198.51.100.1:1", "&client=nonsense", "", nil, 200, "198.51.100.1", false},
		{"admin credential marks a relay", "198.51.100.1:1", "", "Bearer admin-secret", nil, 200, "198.51.100.1", true},
		{"wrong credential is no relay", "198.51.100.1:1", "", "Bearer wrong", nil, 200, "198.51.100.1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			*s = seen{}
			req := httptest.NewRequest("GET", "/auth_token?realm=r&user=alice&pwd=pw&module=Fake"+c.query, nil)
			req.RemoteAddr = c.peer
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			w := httptest.NewRecorder()
			e.srv.ServeHTTP(w, req)
			if w.Code != c.status {
				t.Fatalf("got %d %q, want %d", w.Code, w.Body, c.status)
			}
			if s.client != c.client || s.relay != c.relay {
				t.Fatalf("hook saw client %q relay %v, want %q %v", s.client, s.relay, c.client, c.relay)
			}
			if c.status == 200 && s.event != c.client {
				t.Fatalf("audit event client %q, want %q", s.event, c.client)
			}
		})
	}
	// A realm's relays: the client address decides, per realm.
	for _, c := range []struct {
		realm, peer string
		relay       bool
	}{{"relayed", "192.0.2.44:1", true}, {"other", "192.0.2.44:1", false}, {"relayed", "198.51.100.1:1", false}} {
		req := httptest.NewRequest("GET", "/auth_token?realm="+c.realm+"&user=alice&pwd=pw&module=Fake", nil)
		req.RemoteAddr = c.peer
		e.srv.ServeHTTP(httptest.NewRecorder(), req)
		if s.relay != c.relay {
			t.Errorf("realm %s from %s: relay %v, want %v", c.realm, c.peer, s.relay, c.relay)
		}
	}
}

// TestRelayDoesNotLockOutOthers is issue 12.3: 20 wrong passwords for 20
// users from one relay address must not lock out a 21st user, while the
// same from an ordinary address bans the address.
func TestRelayDoesNotLockOutOthers(t *testing.T) {
	withGuard := func(o *server.Options) {
		g := guard.New(guard.Config{Default: guard.Limits{UserFailures: 5, AddrFailures: 20}})
		o.Hooks.BeforeLogin = g.LoginGate
		o.Hooks.AfterLogin = g.LoginDone
		o.Relays = map[string][]netip.Prefix{"*": {netip.MustParsePrefix("192.0.2.10/32")}}
	}
	e := newEnv(t, cfgFake, withGuard)
	try := func(peer, auth, user, pwd string) int {
		req := httptest.NewRequest("GET", "/auth_token?realm=r&module=Fake&user="+user+"&pwd="+pwd, nil)
		req.RemoteAddr = peer
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		return w.Code
	}
	for _, c := range []struct {
		name, peer, auth string
		want21           int
	}{
		{"ordinary address is banned", "198.51.100.1:1", "", http.StatusTooManyRequests},
		{"relay by address", "192.0.2.10:1", "", http.StatusOK},
		{"relay by admin credential", "198.51.100.2:1", "Bearer admin-secret", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := range 20 {
				if got := try(c.peer, c.auth, fmt.Sprintf("%s-user%d", c.peer, i), "wrong"); got != http.StatusForbidden {
					t.Fatalf("failure %d: got %d, want 403", i, got)
				}
			}
			if got := try(c.peer, c.auth, "twentyfirst", "pw"); got != c.want21 {
				t.Fatalf("21st user: got %d, want %d", got, c.want21)
			}
		})
	}
	// Per-user limits still hold for relays.
	for range 5 {
		try("192.0.2.10:1", "", "victim", "wrong")
	}
	if got := try("192.0.2.10:1", "", "victim", "pw"); got != http.StatusTooManyRequests {
		t.Fatalf("user limit through a relay: got %d, want 429", got)
	}
}

// TestLoopbackNotAdminBehindProxy: a reverse proxy on the same host makes
// every client look like loopback, so loopback is no admin credential when
// trusted_proxies is set or the request is forwarded.
func TestLoopbackNotAdminBehindProxy(t *testing.T) {
	plain := newEnv(t, cfgFake, nil)
	proxied := newEnv(t, cfgFake, func(o *server.Options) { o.Clients = mustResolver(t, "10.0.0.0/8") })
	for _, c := range []struct {
		name   string
		e      *env
		peer   string
		header map[string]string
		auth   string
		status int
	}{
		{"loopback", plain, "127.0.0.1:1", nil, "", 200},
		{"loopback v6", plain, "[::1]:1", nil, "", 200},
		{"loopback with x-forwarded-for", plain, "127.0.0.1:1", map[string]string{"X-Forwarded-For": "203.0.113.5"}, "", 403},
		{"loopback with x-forwarded-for of loopback", plain, "127.0.0.1:1", map[string]string{"X-Forwarded-For": "127.0.0.1"}, "", 403},
		{"loopback with forwarded", plain, "[::1]:1", map[string]string{"Forwarded": "for=203.0.113.5"}, "", 403},
		{"loopback, trusted_proxies set", proxied, "127.0.0.1:1", nil, "", 403},
		{"admin token behind a proxy", proxied, "127.0.0.1:1", map[string]string{"X-Forwarded-For": "203.0.113.5"}, "Bearer admin-secret", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/stored_token?realm=r&user=u&token=chosen-token-123", nil)
			req.RemoteAddr = c.peer
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			w := httptest.NewRecorder()
			c.e.srv.ServeHTTP(w, req)
			if w.Code != c.status {
				t.Fatalf("got %d %q, want %d", w.Code, w.Body, c.status)
			}
		})
	}
}
