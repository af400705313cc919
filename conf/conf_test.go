package conf

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	c, err := Parse(strings.NewReader(`
listen = "127.0.0.1:9000"
data_dir = "/var/lib/sks"
[admin]
allow_loopback = false
[realms.rcloud]
modules = ["pam", "corp"]
default = "corp"
token_lifetime = "8h"
[modules.corp]
type = "static"
users = {}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.Admin.LoopbackAllowed() || c.Realms["rcloud"].TokenLifetime.Duration != 8*time.Hour ||
		c.Modules["corp"].Type != "static" || c.DefaultModule != "pam" || c.HTTP.ReadHeaderTimeout.Duration != 5*time.Second {
		t.Fatalf("parsed %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{`listn = ":1"`, "unknown setting listn"},
		{`[modules.x]` + "\n" + `users = {}`, "missing type"},
		{`[realms.r]` + "\n" + `modules = ["ldap"]`, `module "ldap" has no [modules.ldap] section`},
		{`[realms.r]` + "\n" + `modules = ["pam"]` + "\n" + `default = "x"`, "not in its modules list"},
		{`log_level = "loud"`, "log_level"},
		{`[realms.r]` + "\n" + `token_lifetime = "8 hours"`, "not a duration"},
		{`listen = `, "cannot parse"},
		{`[realms.r]` + "\n" + `max_sessions = -1`, "max_sessions = -1; use 1"},
		{`[realms.r]` + "\n" + `max_sessions = 1000`, "up to 100"},
	} {
		_, err := Parse(strings.NewReader(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.text, err, c.want)
		}
	}
}

// FuzzParse: any input gives a config or an error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add("listen = \":1\"\n[realms.r]\nmodules=[\"pam\"]\n")
	f.Add("[modules.x]\ntype=\"ldap\"\nurls=[\"ldap://h\"]\n")
	f.Add("[http]\nread_timeout = \"1s\"\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(strings.NewReader(s))
		if err == nil && c.Listen == "" {
			t.Fatal("parsed config without defaults")
		}
	})
}
