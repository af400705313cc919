package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/tokens"
)

// issueN logs alice in with a cap of three sessions.
func (rg *rig) issueN(t *testing.T, realm string) string {
	t.Helper()
	tok, _, err := rg.svc.Issue(context.Background(), realm, "alice", "alice\nauth/test\n", nil, tokens.Policy{MaxSessions: 3, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func get(h http.Handler, target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", target, nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func session(tok string) *http.Cookie { return &http.Cookie{Name: "sks_token", Value: tok} }

func TestAccountPage(t *testing.T) {
	rg := newRig(t, conf.Web{})
	h := http.HandlerFunc(rg.h.Account)
	toLogin := "/login?realm=demo&return_to=%2Faccount%3Frealm%3Ddemo"

	if w := get(h, "/account?realm=demo"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != toLogin {
		t.Fatalf("without a session: got %d to %q, want 303 to %s", w.Code, w.Header().Get("Location"), toLogin)
	}
	if w := get(h, "/account", session("x")); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "No realm given") {
		t.Fatalf("without a realm: got %d %q", w.Code, w.Body)
	}
	first := rg.issueN(t, "demo")
	tok := rg.issueN(t, "demo")
	w := get(h, "/account?realm=demo", session(tok))
	body := w.Body.String()
	if w.Code != 200 {
		t.Fatalf("account page: got %d %q", w.Code, body)
	}
	for _, want := range []string{"<title>Your account</title>", "Signed in as <strong>alice</strong>", "<dd>demo</dd>", "<dd>auth/test</dd>",
		"<code>" + tokens.HashToken(tok).Short() + "</code>", "<dd>2 in this realm</dd>", `<time datetime="`,
		`name="everywhere" value="1"`, `>Sign out everywhere</button>`, `>Sign out</button>`, `name="csrf" value="`} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %s", want)
		}
	}
	if strings.Contains(body, tok) || strings.Contains(body, first) {
		t.Fatal("the account page shows a full token")
	}
	var csrf *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "sks_token_csrf" {
			csrf = c
		}
	}
	if csrf == nil || csrf.Path != "/logout" || !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Fatalf("form token cookie: %+v, want HttpOnly, SameSite=Strict, Path=/logout", csrf)
	}
	if w.Header().Get("Cache-Control") != "no-store" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("account page headers: %v", w.Header())
	}
	// A superseded or unknown session goes to the login page.
	for range 3 {
		rg.issueN(t, "demo")
	}
	if w := get(h, "/account?realm=demo", session(tok)); w.Code != http.StatusSeeOther || w.Header().Get("Location") != toLogin {
		t.Fatalf("superseded session: got %d to %q", w.Code, w.Header().Get("Location"))
	}
	if w := get(h, "/account?realm=demo", session(tok+"x")); w.Code != http.StatusSeeOther {
		t.Fatalf("unknown session: got %d", w.Code)
	}
	if w := post(h, "/account?realm=demo", url.Values{}); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /account: got %d, want 405", w.Code)
	}
}

// formToken returns the form token of a page and its cookie.
func formToken(t *testing.T, w *httptest.ResponseRecorder) (string, *http.Cookie) {
	t.Helper()
	m := csrfRE.FindStringSubmatch(w.Body.String())
	for _, c := range w.Result().Cookies() {
		if c.Name == "sks_token_csrf" && m != nil {
			return m[1], c
		}
	}
	t.Fatalf("no form token in %q", w.Body)
	return "", nil
}

func TestSignOutEverywhere(t *testing.T) {
	rg := newRig(t, conf.Web{})
	var calls []string
	rg.h.o.RevokeAll = func(ctx context.Context, realm, token, client string) (int, int) {
		calls = append(calls, realm+" "+client)
		return rg.h.revokeAllDirect(ctx, realm, token)
	}
	account, logout := http.HandlerFunc(rg.h.Account), http.HandlerFunc(rg.h.Logout)
	a, b := rg.issueN(t, "demo"), rg.issueN(t, "demo")
	other := rg.issueN(t, "elsewhere")
	field, ck := formToken(t, get(account, "/account?realm=demo", session(b)))
	valid := func(realm, tok string) tokens.Status {
		_, st, err := rg.svc.Validate(context.Background(), realm, tok)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	// Without the form token, or with another one, nothing ends.
	_, otherCk := formToken(t, get(http.HandlerFunc(rg.h.LoginPage), "/login?realm=demo"))
	for name, c := range map[string]struct {
		field  string
		cookie *http.Cookie
	}{"no token": {"", ck}, "no cookie": {field, nil}, "login form's cookie": {field, otherCk}, "forged": {"1.2.3", &http.Cookie{Name: "sks_token_csrf", Value: "1.2.3"}}} {
		cs := []*http.Cookie{session(b)}
		if c.cookie != nil {
			cs = append(cs, c.cookie)
		}
		w := post(logout, "/logout", url.Values{"realm": {"demo"}, "everywhere": {"1"}, "csrf": {c.field}}, cs...)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "expired") {
			t.Errorf("%s: got %d, want 403 and the form-expired page", name, w.Code)
		}
		if valid("demo", a) != tokens.Current || valid("demo", b) != tokens.Current {
			t.Fatalf("%s: a session ended", name)
		}
	}
	if len(calls) != 0 {
		t.Fatalf("RevokeAll called without a good form token: %q", calls)
	}

	w := post(logout, "/logout", url.Values{"realm": {"demo"}, "everywhere": {"1"}, "csrf": {field}}, session(b), ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?realm=demo" {
		t.Fatalf("sign out everywhere: got %d to %q, want 303 to /login?realm=demo", w.Code, w.Header().Get("Location"))
	}
	if valid("demo", a) != tokens.Invalid || valid("demo", b) != tokens.Invalid {
		t.Fatal("a session of alice in demo survived sign out everywhere")
	}
	if valid("elsewhere", other) != tokens.Current {
		t.Fatal("sign out everywhere ended a session in another realm")
	}
	if len(calls) != 1 || calls[0] != "demo 192.0.2.1" {
		t.Fatalf("RevokeAll calls: %q, want one for demo from the client's address", calls)
	}
	cleared := map[string]bool{}
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			cleared[c.Name+" "+c.Path] = true
		}
	}
	if !cleared["sks_token /"] || !cleared["sks_token_csrf /logout"] {
		t.Errorf("cookies cleared: %v, want the session and the spent form token", cleared)
	}

	// The sign-out page offers it too.
	w = get(logout, "/logout?realm=demo", session(other))
	if !strings.Contains(w.Body.String(), ">Sign out everywhere</button>") || !strings.Contains(w.Body.String(), `name="csrf"`) {
		t.Errorf("sign-out page lacks sign out everywhere:\n%s", w.Body)
	}
}

func TestLoginPageSaysWhoIsSignedIn(t *testing.T) {
	rg := newRig(t, conf.Web{})
	h := http.HandlerFunc(rg.h.LoginPage)
	tok := rg.issueN(t, "demo")
	body := get(h, "/login?realm=demo", session(tok)).Body.String()
	if !strings.Contains(body, "Signed in as <strong>alice</strong>") || !strings.Contains(body, `href="/account?realm=demo"`) {
		t.Errorf("login page with a session does not say who is signed in:\n%s", body)
	}
	if body := get(h, "/login?realm=other", session(tok)).Body.String(); strings.Contains(body, "Signed in as") {
		t.Error("login page of another realm says the user is signed in")
	}
}
