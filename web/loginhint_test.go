package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/sks-server/sks/conf"
)

// TestLoginHeaderContract is the contract the docs/web.md snippets rely on:
// a refusing /forward_auth names the login page in X-SKS-Login, with the
// URI the proxy passed (X-Original-URI from the nginx snippet,
// X-Forwarded-Uri from Caddy's forward_auth and Traefik) query-escaped as
// return_to, so that the proxy only copies the header into its redirect.
// Caddy is not installed here; this is what its snippet's
// redir * {rp.header.X-SKS-Login} uses.
func TestLoginHeaderContract(t *testing.T) {
	rg := newRig(t, conf.Web{DefaultRealm: "demo"})
	tok := rg.issue(t, "demo")
	for _, tc := range []struct {
		name, url string
		hdr       map[string]string
		cookie    string
		want      string // "" means no header
		returnTo  string
	}{
		{"nginx, & in the query", "/forward_auth?realm=demo", map[string]string{"X-Original-URI": "/app/report?from=1&to=2"}, "", "/login?realm=demo&return_to=%2Fapp%2Freport%3Ffrom%3D1%26to%3D2", "/app/report?from=1&to=2"},
		{"nginx, %2F stays escaped", "/forward_auth?realm=demo", map[string]string{"X-Original-URI": "/a%2Fb?x=%2F"}, "", "/login?realm=demo&return_to=%2Fa%252Fb%3Fx%3D%252F", "/a%2Fb?x=%2F"},
		{"caddy X-Forwarded-Uri", "/forward_auth?realm=demo", map[string]string{"X-Forwarded-Uri": "/app//x/./y?q=a+b"}, "", "/login?realm=demo&return_to=%2Fapp%2F%2Fx%2F.%2Fy%3Fq%3Da%2Bb", "/app//x/./y?q=a+b"},
		{"X-Original-URI wins", "/forward_auth?realm=demo", map[string]string{"X-Original-URI": "/one", "X-Forwarded-Uri": "/two"}, "", "/login?realm=demo&return_to=%2Fone", "/one"},
		{"default realm", "/forward_auth", map[string]string{"X-Original-URI": "/p"}, "", "/login?realm=demo&return_to=%2Fp", "/p"},
		{"no original URI", "/forward_auth?realm=demo", nil, "", "/login?realm=demo", ""},
		{"another site is left out", "/forward_auth?realm=demo", map[string]string{"X-Original-URI": "//evil.example/x"}, "", "/login?realm=demo", ""},
		{"absolute URL is left out", "/forward_auth?realm=demo", map[string]string{"X-Forwarded-Uri": "https://evil.example/"}, "", "/login?realm=demo", ""},
		{"backslash is left out", "/forward_auth?realm=demo", map[string]string{"X-Original-URI": "/\\evil.example"}, "", "/login?realm=demo", ""},
		{"signed in: no header", "/forward_auth?realm=demo", map[string]string{"X-Original-URI": "/p"}, tok, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "sks_token", Value: tc.cookie})
			}
			w := httptest.NewRecorder()
			rg.h.ForwardAuth(w, r)
			got := w.Header().Get("X-SKS-Login")
			if got != tc.want {
				t.Fatalf("X-SKS-Login %q, want %q (status %d)", got, tc.want, w.Code)
			}
			if tc.want == "" {
				return
			}
			if w.Code != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", w.Code)
			}
			u, err := url.Parse(got)
			if err != nil || u.Query().Get("return_to") != tc.returnTo {
				t.Errorf("return_to decodes to %q, want %q", u.Query().Get("return_to"), tc.returnTo)
			}
		})
	}
}

// TestLoginRedirectKeepsPath: after signing in the browser goes back to
// return_to exactly; http.Redirect would have cleaned "//" and "/./".
func TestLoginRedirectKeepsPath(t *testing.T) {
	rg := newRig(t, conf.Web{DefaultRealm: "demo"})
	target := "/app//x/./y/../z?q=%2F&r=1&s=2"
	h := http.HandlerFunc(rg.h.LoginPage)
	c, csrf := getForm(t, h, "/login?realm=demo&return_to="+url.QueryEscape(target))
	w := post(h, "/login", url.Values{"realm": {"demo"}, "user": {"alice"}, "password": {"secret"}, "csrf": {csrf}, "return_to": {target}}, c)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != target {
		t.Errorf("after login: %d to %q, want 303 to %q", w.Code, w.Header().Get("Location"), target)
	}
}

// TestLogoutRedirectKeepsPath: the same for return_to after signing out.
func TestLogoutRedirectKeepsPath(t *testing.T) {
	rg := newRig(t, conf.Web{DefaultRealm: "demo"})
	target := "/bye//x/./y?q=%2F&r=1"
	w := post(http.HandlerFunc(rg.h.Logout), "/logout", url.Values{"realm": {"demo"}, "return_to": {target}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != target {
		t.Errorf("after logout: %d to %q, want 303 to %q", w.Code, w.Header().Get("Location"), target)
	}
}
