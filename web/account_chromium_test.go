package web_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sks-server/sks/authn/static"
	"github.com/sks-server/sks/client"
	"github.com/sks-server/sks/testrig"
	"github.com/sks-server/sks/tokens"
)

// TestAccountPageInChromium opens /login directly (no realm, no return_to)
// in a real browser, signs in and lands on the account page, which says who
// is signed in; then signs out everywhere, which ends a second session of
// the same user opened elsewhere. The screenshot of the account page is
// kept (and copied to $SKS_ACCOUNT_SHOT when set) to be looked at.
func TestAccountPageInChromium(t *testing.T) {
	testrig.Require(t, "chromium", "chromedriver")
	hash, err := static.Hash("alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	auditDir := t.TempDir()
	audit := filepath.Join(auditDir, "audit.log")
	sks := testrig.StartSKS(t, `
[web]
enabled = true
default_realm = "team"
[audit]
path = "`+audit+`"
[modules.st]
type = "static"
users = { alice = "`+hash+`" }
[realms.team]
modules = ["st"]
default = "st"
max_sessions = 3
token_lifetime = "12h"
`)
	ctx := context.Background()
	c, err := client.New(sks.URL)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := c.Login(ctx, "team", "alice", "alice-pw", "")
	if err != nil {
		t.Fatal(err)
	}
	dir := artifactDir(t)
	wd := startWebDriver(t)

	wd.navigate(sks.URL + "/login")
	wd.waitPage("/login", "Sign in")
	wd.typeInto("#user", "alice")
	wd.typeInto("#password", "alice-pw")
	wd.click(`form[action="/login"] button[type="submit"]`)

	wd.waitPage("/account", "Signed in as alice")
	if u := wd.url(); u.Query().Get("realm") != "team" {
		t.Fatalf("account page at %s, want realm=team", u)
	}
	var cookie struct {
		Value string `json:"value"`
	}
	wd.do("GET", "/cookie/sks_token", nil, &cookie)
	text := wd.text()
	for _, want := range []string{"Your account", "Realm\nteam", "Signed in with\nauth/st", "Session started", "Session ends",
		"Session ID\n" + tokens.HashToken(cookie.Value).Short(), "Your sessions\n2 in this realm", "Sign out", "Sign out everywhere"} {
		if !strings.Contains(text, want) {
			t.Errorf("account page lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "ERR:") || strings.Contains(text, cookie.Value) {
		t.Fatalf("account page shows an error or the token:\n%s", text)
	}
	wd.screenshot(dir, "account.png")
	if dst := os.Getenv("SKS_ACCOUNT_SHOT"); dst != "" {
		b, err := os.ReadFile(filepath.Join(dir, "account.png"))
		if err == nil {
			err = os.WriteFile(dst, b, 0o644)
		}
		if err != nil {
			t.Fatalf("copying the screenshot: %v", err)
		}
	}

	// The login page, opened again, says who is signed in.
	wd.navigate(sks.URL + "/login?realm=team")
	wd.waitPage("/login", "Signed in as alice")
	wd.screenshot(dir, "login-signed-in.png")
	wd.navigate(sks.URL + "/logout?realm=team")
	wd.waitPage("/logout", "Sign out everywhere")
	wd.screenshot(dir, "sign-out.png")

	wd.navigate(sks.URL + "/account?realm=team")
	wd.waitPage("/account", "Signed in as alice")
	wd.click("#everywhere")
	wd.waitPage("/login", "Sign in")
	wd.screenshot(dir, "after-sign-out-everywhere.png")
	for name, tok := range map[string]string{"browser": cookie.Value, "elsewhere": elsewhere.Token} {
		if r, err := c.Valid(ctx, "team", tok); err != nil || r.Status != client.Invalid {
			t.Errorf("%s session after sign out everywhere: %+v, %v; want invalid", name, r, err)
		}
	}
	wd.navigate(sks.URL + "/account?realm=team")
	wd.waitPage("/login", "Sign in")

	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"kind":"revoke_all"`) || !strings.Contains(string(b), `by=self sessions=2`) {
		t.Errorf("audit log lacks the sign out everywhere:\n%s", b)
	}
	if strings.Contains(string(b), cookie.Value) || strings.Contains(sks.Output(), cookie.Value) {
		t.Error("a full token is in the audit log or the server log")
	}
}
