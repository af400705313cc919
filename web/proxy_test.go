package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sks-server/sks/clientaddr"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/tokens"
)

// TestCrossOriginRefused: every state-changing web endpoint refuses a
// browser request from another origin before doing anything, whether the
// browser says so with Sec-Fetch-Site or only with Origin (issue 12.11:
// POST /logout with Origin https://evil.example revoked the session).
func TestCrossOriginRefused(t *testing.T) {
	rg := newRig(t, conf.Web{TrustedOrigins: []string{"https://app.example.org"}})
	paths := rg.h.Paths()
	loginForm := func() (*http.Cookie, url.Values) {
		ck, field := getForm(t, paths["/login"], "/login?realm=demo")
		return ck, url.Values{"realm": {"demo"}, "user": {"alice"}, "password": {"secret"}, "csrf": {field}}
	}
	cases := []struct {
		name    string
		headers map[string]string
		allowed bool
	}{
		{"origin of another site, no sec-fetch-site", map[string]string{"Origin": "https://evil.example"}, false},
		{"sec-fetch-site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"sec-fetch-site same-site", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://evil.sks.example"}, false},
		{"null origin", map[string]string{"Origin": "null"}, false},
		{"same origin by sec-fetch-site", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"same origin by origin", map[string]string{"Origin": "http://sks.example"}, true},
		{"trusted origin", map[string]string{"Origin": "https://app.example.org", "Sec-Fetch-Site": "cross-site"}, true},
		{"no browser headers", nil, true},
	}
	for _, c := range cases {
		t.Run("logout/"+c.name, func(t *testing.T) {
			tok := rg.issue(t, "demo")
			r := httptest.NewRequest("POST", "http://sks.example/logout", strings.NewReader("realm=demo"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			r.AddCookie(&http.Cookie{Name: "sks_token", Value: tok})
			w := httptest.NewRecorder()
			paths["/logout"].ServeHTTP(w, r)
			_, st, _ := rg.svc.Validate(context.Background(), "demo", tok)
			if c.allowed {
				if w.Code != http.StatusSeeOther || st != tokens.Invalid {
					t.Fatalf("got %d, token %v; want 303 and the session revoked", w.Code, st)
				}
				return
			}
			if w.Code != http.StatusForbidden || st != tokens.Current {
				t.Fatalf("got %d, token %v; want 403 and the session kept", w.Code, st)
			}
			if got := w.Result().Cookies(); len(got) != 0 {
				t.Fatalf("cookies set on a refusal: %v", got)
			}
		})
		t.Run("login/"+c.name, func(t *testing.T) {
			ck, f := loginForm()
			r := httptest.NewRequest("POST", "http://sks.example/login", strings.NewReader(f.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			r.AddCookie(ck)
			before := rg.logins
			w := httptest.NewRecorder()
			paths["/login"].ServeHTTP(w, r)
			if c.allowed {
				if w.Code != http.StatusSeeOther {
					t.Fatalf("got %d, want 303", w.Code)
				}
				return
			}
			if w.Code != http.StatusForbidden || rg.logins != before {
				t.Fatalf("got %d with %d logins tried; want 403 and none", w.Code, rg.logins-before)
			}
		})
	}
	// Safe methods pass: the form still shows for a link from elsewhere.
	r := httptest.NewRequest("GET", "http://sks.example/login?realm=demo", nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	w := httptest.NewRecorder()
	paths["/login"].ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("cross-site GET of the form: got %d, want 200", w.Code)
	}
}

func newProxyRig(t *testing.T, trusted ...string) *rig {
	t.Helper()
	rg := newRig(t, conf.Web{DefaultRealm: "dflt"})
	res, err := clientaddr.New(trusted)
	if err != nil {
		t.Fatal(err)
	}
	rg.h.o.Clients = res
	return rg
}

// TestRealmHeaderOnlyFromTrustedProxy: X-SKS-Realm chooses the realm only
// when a trusted proxy sends it (issue 12.10: any client could pick a realm
// other than default_realm).
func TestRealmHeaderOnlyFromTrustedProxy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		peer    string
		code    int
	}{
		{"no trusted proxies", nil, "127.0.0.1:4000", http.StatusUnauthorized},
		{"untrusted peer", []string{"10.0.0.0/8"}, "192.0.2.9:4000", http.StatusUnauthorized},
		{"trusted proxy", []string{"10.0.0.0/8"}, "10.1.1.1:4000", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg := newProxyRig(t, tc.trusted...)
			tok := rg.issue(t, "krb")
			r := httptest.NewRequest("GET", "/forward_auth", nil)
			r.RemoteAddr = tc.peer
			r.Header.Set("X-SKS-Realm", "krb")
			r.AddCookie(&http.Cookie{Name: "sks_token", Value: tok})
			w := httptest.NewRecorder()
			rg.h.Paths()["/forward_auth"].ServeHTTP(w, r)
			if w.Code != tc.code {
				t.Fatalf("got %d, want %d", w.Code, tc.code)
			}
			if tc.code == http.StatusOK && w.Header().Get("X-SKS-Realm") != "krb" {
				t.Fatalf("realm %q", w.Header().Get("X-SKS-Realm"))
			}
		})
	}
}

// TestLoginClientBehindProxy: the login page hands Login the client that a
// trusted proxy reports, and the peer for anyone else.
func TestLoginClientBehindProxy(t *testing.T) {
	for _, tc := range []struct {
		name, peer, xff, want string
	}{
		{"trusted proxy", "127.0.0.1:1", "6.6.6.6, 198.51.100.7", "198.51.100.7"},
		{"untrusted peer", "192.0.2.9:1", "198.51.100.7", "192.0.2.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg := newProxyRig(t, "127.0.0.1")
			var got string
			rg.h.o.Login = func(ctx context.Context, realm, user, pwd, client string) (string, int) {
				got = client
				return "", http.StatusForbidden
			}
			h := rg.h.Paths()["/login"]
			ck, field := getForm(t, h, "/login?realm=demo")
			f := url.Values{"realm": {"demo"}, "user": {"alice"}, "password": {"x"}, "csrf": {field}}
			r := httptest.NewRequest("POST", "/login", strings.NewReader(f.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.RemoteAddr = tc.peer
			r.Header.Set("X-Forwarded-For", tc.xff)
			r.AddCookie(ck)
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tc.want {
				t.Fatalf("client %q, want %q", got, tc.want)
			}
		})
	}
}
