package web

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/tokens"
)

type rig struct {
	h      *Handler
	svc    *tokens.Service
	logins int
}

func newRig(t *testing.T, cfg conf.Web) *rig {
	t.Helper()
	store, err := tokens.OpenBadger(tokens.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rg := &rig{svc: tokens.NewService(store)}
	rg.h, err = New(Options{Tokens: rg.svc, Config: cfg, Login: func(ctx context.Context, realm, user, pwd, client string) (string, int) {
		rg.logins++
		if user != "alice" || pwd != "secret" {
			return "", http.StatusForbidden
		}
		tok, _, err := rg.svc.Issue(ctx, realm, user, user+"\nauth/test\n", []string{"staff", "ops"}, tokens.Policy{})
		if err != nil {
			return "", http.StatusServiceUnavailable
		}
		return tok, http.StatusOK
	}})
	if err != nil {
		t.Fatal(err)
	}
	return rg
}

func (rg *rig) issue(t *testing.T, realm string) string {
	t.Helper()
	tok, _, err := rg.svc.Issue(context.Background(), realm, "alice", "alice\nauth/test\n", []string{"staff", "ops"}, tokens.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestForwardAuth(t *testing.T) {
	rg := newRig(t, conf.Web{DefaultRealm: "dflt"})
	tok := rg.issue(t, "demo")
	dtok := rg.issue(t, "dflt")
	for _, tc := range []struct {
		name  string
		url   string
		set   func(*http.Request)
		code  int
		realm string
	}{
		{"cookie", "/forward_auth?realm=demo", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sks_token", Value: tok}) }, 200, "demo"},
		{"bearer", "/forward_auth?realm=demo", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, 200, "demo"},
		{"default realm", "/forward_auth", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sks_token", Value: dtok}) }, 200, "dflt"},
		{"wrong realm", "/forward_auth?realm=other", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sks_token", Value: tok}) }, 401, ""},
		{"no token", "/forward_auth?realm=demo", func(*http.Request) {}, 401, ""},
		{"unknown token", "/forward_auth?realm=demo", func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			tc.set(r)
			w := httptest.NewRecorder()
			rg.h.ForwardAuth(w, r)
			if w.Code != tc.code {
				t.Fatalf("got %d, want %d", w.Code, tc.code)
			}
			if tc.code != 200 {
				if w.Header().Get("X-SKS-User") != "" {
					t.Fatal("identity headers on a refusal")
				}
				return
			}
			got := [4]string{w.Header().Get("X-SKS-User"), w.Header().Get("X-SKS-Realm"), w.Header().Get("X-SKS-Roles"), w.Header().Get("X-SKS-Source")}
			want := [4]string{"alice", tc.realm, "staff,ops", "auth/test"}
			if got != want {
				t.Fatalf("headers: got %q, want %q", got, want)
			}
		})
	}
	// A superseded token is refused.
	rg.issue(t, "demo")
	r := httptest.NewRequest("GET", "/forward_auth?realm=demo", nil)
	r.AddCookie(&http.Cookie{Name: "sks_token", Value: tok})
	w := httptest.NewRecorder()
	rg.h.ForwardAuth(w, r)
	if w.Code != 401 {
		t.Fatalf("superseded token: got %d, want 401", w.Code)
	}
}

func BenchmarkForwardAuth(b *testing.B) {
	store, _ := tokens.OpenBadger(tokens.BadgerOptions{})
	defer store.Close()
	svc := tokens.NewService(store)
	h, _ := New(Options{Tokens: svc, Login: func(context.Context, string, string, string, string) (string, int) { return "", 403 }})
	tok, _, _ := svc.Issue(context.Background(), "demo", "alice", "alice\nauth/test\n", []string{"staff"}, tokens.Policy{})
	r := httptest.NewRequest("GET", "/forward_auth?realm=demo", nil)
	r.AddCookie(&http.Cookie{Name: "sks_token", Value: tok})
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ForwardAuth(w, r)
	}
}

func TestSafeReturn(t *testing.T) {
	h, _ := New(Options{Tokens: &tokens.Service{}, Login: func(context.Context, string, string, string, string) (string, int) { return "", 0 },
		Config: conf.Web{AllowedReturnHosts: []string{"app.example.org", "Other.example.org:8443"}}})
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"/", true},
		{"/app/page?x=1#frag", true},
		{"https://app.example.org/x", true},
		{"http://APP.example.org:8080/x", true},
		{"https://other.example.org:8443/", true},
		{"", false},
		{"//evil.example", false},
		{"///evil.example", false},
		{"/\\evil.example", false},
		{"\\\\evil.example", false},
		{"https://evil.example/", false},
		{"https://app.example.org@evil.example/", false},
		{"https://evil.example\\@app.example.org/", false},
		{"https://other.example.org/", false},
		{"javascript:alert(1)", false},
		{"JavaScript:alert(1)", false},
		{"data:text/html,x", false},
		{"evil.example", false},
		{"/\t/evil.example", false},
		{"/x\r\nSet-Cookie: a=b", false},
		{"https:evil.example", false},
		{"ftp://app.example.org/", false},
	} {
		if got := h.safeReturn(tc.in); got != tc.ok {
			t.Errorf("safeReturn(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// getForm loads the login page and returns its CSRF cookie and field.
func getForm(t *testing.T, h http.Handler, url string) (*http.Cookie, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", url, nil))
	if w.Code != 200 {
		t.Fatalf("GET %s: %d", url, w.Code)
	}
	m := csrfRE.FindStringSubmatch(w.Body.String())
	var c *http.Cookie
	for _, ck := range w.Result().Cookies() {
		if ck.Name == "sks_token_csrf" {
			c = ck
		}
	}
	if m == nil || c == nil {
		t.Fatalf("no csrf field or cookie in the login page")
	}
	if c.SameSite != http.SameSiteStrictMode || !c.HttpOnly {
		t.Errorf("csrf cookie: got SameSite=%v HttpOnly=%v, want Strict and HttpOnly", c.SameSite, c.HttpOnly)
	}
	return c, m[1]
}

func post(h http.Handler, path string, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestLoginPage(t *testing.T) {
	rg := newRig(t, conf.Web{})
	h := http.HandlerFunc(rg.h.LoginPage)
	ck, field := getForm(t, h, "/login?realm=demo&return_to=/app")
	good := url.Values{"realm": {"demo"}, "user": {"alice"}, "password": {"secret"}, "return_to": {"/app"}, "csrf": {field}}

	t.Run("csrf", func(t *testing.T) {
		_, other := getForm(t, h, "/login?realm=demo")
		forged := *ck
		forged.Value = "1.2.3"
		for name, tc := range map[string]struct {
			field  string
			cookie *http.Cookie
		}{
			"no field":          {"", ck},
			"no cookie":         {field, nil},
			"mismatch":          {other, ck},
			"forged pair":       {"1.2.3", &forged},
			"foreign signature": {"1.aa.bb", &http.Cookie{Name: "sks_token_csrf", Value: "1.aa.bb"}},
		} {
			f := url.Values{}
			for k, v := range good {
				f[k] = v
			}
			f.Set("csrf", tc.field)
			var cs []*http.Cookie
			if tc.cookie != nil {
				cs = append(cs, tc.cookie)
			}
			before := rg.logins
			w := post(h, "/login", f, cs...)
			if w.Code != http.StatusForbidden || rg.logins != before {
				t.Errorf("%s: got %d (logins tried %d), want 403 without a login", name, w.Code, rg.logins-before)
			}
			for _, c := range w.Result().Cookies() {
				if c.Name == "sks_token" {
					t.Errorf("%s: session cookie set", name)
				}
			}
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		f := url.Values{}
		for k, v := range good {
			f[k] = v
		}
		f.Set("password", "nope")
		w := post(h, "/login", f, ck)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Sign-in failed") {
			t.Fatalf("got %d %q", w.Code, w.Body.String())
		}
		if strings.Contains(w.Body.String(), "nope") {
			t.Fatal("the page echoes the password")
		}
	})

	t.Run("success", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			tls    bool
			secure bool
		}{{"plain", false, false}, {"tls", true, true}} {
			r := httptest.NewRequest("POST", "/login", strings.NewReader(good.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.AddCookie(ck)
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/app" {
				t.Fatalf("%s: got %d to %q, want 303 to /app", tc.name, w.Code, w.Header().Get("Location"))
			}
			var sess *http.Cookie
			for _, c := range w.Result().Cookies() {
				if c.Name == "sks_token" {
					sess = c
				}
			}
			if sess == nil || len(sess.Value) != 64 {
				t.Fatalf("%s: no session cookie", tc.name)
			}
			if !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" || sess.Secure != tc.secure {
				t.Errorf("%s: cookie flags: HttpOnly=%v SameSite=%v Path=%q Secure=%v", tc.name, sess.HttpOnly, sess.SameSite, sess.Path, sess.Secure)
			}
			if _, st, _ := rg.svc.Validate(context.Background(), "demo", sess.Value); st != tokens.Current {
				t.Errorf("%s: cookie token is %v", tc.name, st)
			}
		}
	})

	t.Run("secure_cookie config", func(t *testing.T) {
		rg2 := newRig(t, conf.Web{SecureCookie: true})
		h2 := http.HandlerFunc(rg2.h.LoginPage)
		ck2, f2 := getForm(t, h2, "/login?realm=demo")
		if !ck2.Secure {
			t.Error("csrf cookie not Secure")
		}
		g := url.Values{"realm": {"demo"}, "user": {"alice"}, "password": {"secret"}, "csrf": {f2}}
		w := post(h2, "/login", g, ck2)
		for _, c := range w.Result().Cookies() {
			if c.Name == "sks_token" && !c.Secure {
				t.Error("session cookie not Secure")
			}
		}
	})

	t.Run("open redirect refused", func(t *testing.T) {
		for _, target := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
			f := url.Values{}
			for k, v := range good {
				f[k] = v
			}
			f.Set("return_to", target)
			w := post(h, "/login", f, ck)
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/account?realm=demo" {
				t.Errorf("return_to %q: got %d to %q, want 303 to the account page", target, w.Code, w.Header().Get("Location"))
			}
		}
	})

	t.Run("page", func(t *testing.T) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/login?realm=%3Cscript%3E&return_to=javascript:x", nil))
		b := w.Body.String()
		for _, want := range []string{`<label for="user">`, `<label for="password">`, `autocomplete="current-password"`, `&lt;script&gt;`, `name="return_to" value=""`} {
			if !strings.Contains(b, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if strings.Contains(b, "<script>") {
			t.Error("realm not escaped")
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("CSP %q", csp)
		}
	})
}

func TestLogout(t *testing.T) {
	rg := newRig(t, conf.Web{})
	tok := rg.issue(t, "demo")
	h := http.HandlerFunc(rg.h.Logout)
	w := post(h, "/logout", url.Values{"realm": {"demo"}}, &http.Cookie{Name: "sks_token", Value: tok})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?realm=demo" {
		t.Fatalf("got %d to %q", w.Code, w.Header().Get("Location"))
	}
	cleared := false
	for _, c := range w.Result().Cookies() {
		if c.Name == "sks_token" && c.MaxAge < 0 && c.Value == "" {
			cleared = true
		}
	}
	if !cleared {
		t.Error("session cookie not cleared")
	}
	if _, st, _ := rg.svc.Validate(context.Background(), "demo", tok); st != tokens.Invalid {
		t.Fatalf("token after logout: %v, want invalid", st)
	}

	tok = rg.issue(t, "demo")
	r := httptest.NewRequest("POST", "/logout", strings.NewReader("realm=demo"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r.AddCookie(&http.Cookie{Name: "sks_token", Value: tok})
	w = httptest.NewRecorder()
	rg.h.Paths()["/logout"].ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("cross-site logout: got %d, want 403", w.Code)
	}
	if _, st, _ := rg.svc.Validate(context.Background(), "demo", tok); st != tokens.Current {
		t.Fatal("cross-site logout revoked the token")
	}
}
