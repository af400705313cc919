package server_test

import (
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestSessionInfo(t *testing.T) {
	e := newEnv(t, cfgFake+"[realms.short]\ndefault = \"Fake\"\ntoken_lifetime = \"1h\"\n", nil)
	tok := e.login(t, "r", "alice")
	when := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	a := e.do(t, "POST", "/session", "realm=r&token="+tok)
	if !regexp.MustCompile(`^YES\nissued=`+when+`\nexpires=never\n$`).MatchString(a.body) || a.status != 200 {
		t.Errorf("/session = %d %q", a.status, a.body)
	}
	short := e.login(t, "short", "alice")
	a = e.get(t, "/session?realm=short&token="+short)
	if !regexp.MustCompile(`^YES\nissued=` + when + `\nexpires=` + when + `\n$`).MatchString(a.body) {
		t.Errorf("/session with a lifetime = %q", a.body)
	}
	e.login(t, "r", "alice") // supersedes tok
	if a := e.get(t, "/session?realm=r&token="+tok); !strings.HasPrefix(a.body, "SUPERCEDED\nissued=") {
		t.Errorf("/session of a superseded token = %q", a.body)
	}
	expect(t, "unknown token", e.get(t, "/session?realm=r&token="+strings.Repeat("0", 64)), 200, "NO\n")
	expect(t, "no token", e.get(t, "/session?realm=r"), 200, "NO\n")
	expect(t, "bad token", e.get(t, "/session?realm=r&token="+url.QueryEscape("a\nb")), 400, "ERR: invalid token\n")
	expect(t, "no realm", e.get(t, "/session?token="+tok), 400, "ERR: missing realm\n")
}

// TestUnknownRealmWarns: a login to a realm whose module the configuration
// does not provide is refused (403) and logged at WARN, not INFO.
func TestUnknownRealmWarns(t *testing.T) {
	e := newEnv(t, "[realms.only]\nmodules = [\"pam\"]\n", nil)
	a := e.get(t, "/auth_token?realm=only&user=alice&pwd=pw&module=Fake")
	if a.status != 403 {
		t.Errorf("login with a module the realm does not allow = %d", a.status)
	}
	a = e.get(t, "/auth_token?realm=nowhere&user=alice&pwd=pw")
	if a.status != 403 {
		t.Errorf("login to a realm without a PAM service = %d", a.status)
	}
	if n := strings.Count(e.logs.String(), `level=WARN msg="login refused"`); n != 2 {
		t.Errorf("%d WARN lines, want 2:\n%s", n, e.logs.String())
	}
}

// TestIsAdmin: /readyz's JSON detail goes to admin callers elsewhere than
// loopback; IsAdmin is the admin endpoints' own decision.
func TestIsAdmin(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	r := httptest.NewRequest("GET", "/readyz", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	if e.srv.IsAdmin(r) {
		t.Error("a remote caller without a credential is admin")
	}
	r.Header.Set("Authorization", "Bearer admin-secret")
	if !e.srv.IsAdmin(r) {
		t.Error("a remote caller with the admin token is not admin")
	}
	r.Header.Set("Authorization", "Bearer admin-secreT")
	if e.srv.IsAdmin(r) {
		t.Error("a wrong admin token is accepted")
	}
}
