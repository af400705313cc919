package conf

import (
	"strings"
	"testing"
)

func TestWebSection(t *testing.T) {
	c, err := Parse(strings.NewReader("[web]\nenabled = true\ndefault_realm = \"demo\"\nallowed_return_hosts = [\"app.example.org\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Web.Enabled || c.Web.CookieName != "sks_token" || c.Web.LoginPath != "/login" || c.Web.DefaultRealm != "demo" || len(c.Web.AllowedReturnHosts) != 1 {
		t.Fatalf("got %+v", c.Web)
	}
	for _, bad := range []string{`login_path = "login"`, `login_path = "//x"`, `login_path = "/valid"`, `cookie_name = "a b"`} {
		if _, err := Parse(strings.NewReader("[web]\nenabled = true\n" + bad + "\n")); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
