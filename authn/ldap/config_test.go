package ldap

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/conf"
)

func TestDecodeAndDefaults(t *testing.T) {
	spec, err := conf.NewModuleSpec("corp", `
type = "ldap"
urls = ["ldaps://ldap1.example.org", "ldap://ldap2.example.org:3389"]
start_tls = true
bind_dn = "cn=reader,dc=example,dc=org"
bind_password = "x"
base_dn = "dc=example,dc=org"
user_filter = "(uid=%s)"
group_attribute = "memberOf"
attributes = { uidNumber = "uid", gidNumber = "gid" }
`)
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := spec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Timeout.Duration != 5*time.Second || c.PoolSize != 4 {
		t.Errorf("defaults: timeout %s pool_size %d, want 5s and 4", c.Timeout.Duration, c.PoolSize)
	}
	want := map[string]string{"uidNumber": "uid", "gidNumber": "gid"}
	if !reflect.DeepEqual(c.Attributes, want) {
		t.Errorf("attributes = %v, want %v", c.Attributes, want)
	}
	s, err := parseURL(c.URLs[0])
	if err != nil || s.addr != "ldap1.example.org:636" || !s.ldaps {
		t.Errorf("parseURL(%q) = %+v, %v", c.URLs[0], s, err)
	}

	spec, err = conf.NewModuleSpec("corp", "type = \"ldap\"\nurls = [\"ldap://x\"]\nuser_dn_templat = \"uid=%s\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Decode(&Config{}); err == nil || !strings.Contains(err.Error(), "user_dn_templat") {
		t.Errorf("a misspelt key was accepted: %v", err)
	}
}

func TestValidate(t *testing.T) {
	good := func() Config {
		return Config{URLs: []string{"ldap://127.0.0.1:389"}, UserDNTemplate: "uid=%s,dc=example,dc=org"}
	}
	cases := []struct {
		name, want string
		edit       func(c *Config)
	}{
		{"no urls", "urls", func(c *Config) { c.URLs = nil }},
		{"http url", "ldap:// or ldaps://", func(c *Config) { c.URLs = []string{"http://x"} }},
		{"url with dn", "scheme://host", func(c *Config) { c.URLs = []string{"ldap://x/dc=example"} }},
		{"no mode", "user_dn_template", func(c *Config) { c.UserDNTemplate = "" }},
		{"both modes", "only one", func(c *Config) { c.BaseDN, c.UserFilter = "dc=x", "(uid=%s)" }},
		{"template without %s", "exactly once", func(c *Config) { c.UserDNTemplate = "uid=x,dc=y" }},
		{"filter without base", "both base_dn", func(c *Config) { c.UserDNTemplate, c.UserFilter = "", "(uid=%s)" }},
		{"filter without %s", "must contain %s", func(c *Config) { c.UserDNTemplate, c.BaseDN, c.UserFilter = "", "dc=x", "(uid=x)" }},
		{"bad filter", "not a valid filter", func(c *Config) { c.UserDNTemplate, c.BaseDN, c.UserFilter = "", "dc=x", "(uid=%s" }},
		{"bind dn without password", "needs bind_password", func(c *Config) { c.BindDN = "cn=r,dc=x" }},
		{"password without bind dn", "without bind_dn", func(c *Config) { c.BindPassword = "x" }},
		{"two passwords", "only one", func(c *Config) { c.BindDN, c.BindPassword, c.BindPasswordFile = "cn=r", "x", "/f" }},
		{"cert without key", "go together", func(c *Config) { c.ClientCertFile = "/c" }},
		{"group base without filter", "go together", func(c *Config) { c.GroupBaseDN = "dc=x" }},
		{"bad line name", "lower-case", func(c *Config) { c.Attributes = map[string]string{"uidNumber": "UID\n"} }},
		{"bad attribute", "not an attribute", func(c *Config) { c.Attributes = map[string]string{"uid number": "uid"} }},
		{"negative timeout", "negative", func(c *Config) { c.Timeout.Duration = -time.Second }},
		{"huge pool", "pool_size", func(c *Config) { c.PoolSize = 100000 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error saying %q", err, tc.want)
			}
		})
	}
	c := good()
	if err := c.Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func TestBindPasswordFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pw")
	if err := os.WriteFile(path, []byte("s3cret\nignored\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{URLs: []string{"ldap://127.0.0.1"}, UserDNTemplate: "uid=%s,dc=x", BindDN: "cn=r,dc=x", BindPasswordFile: path}
	_, err := Open(c, nil)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("Open with a world-readable password file: %v, want a chmod 600 hint", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.d.bindPW != "s3cret" {
		t.Errorf("password read as %q", l.d.bindPW)
	}
}

func TestFirstRDNValue(t *testing.T) {
	for dn, want := range map[string]string{
		"cn=staff,ou=groups,dc=example,dc=org": "staff",
		`cn=a\,b+ou=x,dc=org`:                  "a,b",
		"CN=Domain Users,CN=Users,DC=corp":     "Domain Users",
		"cn=line\\0abreak,dc=org":              "",
		"not a dn":                             "",
	} {
		got, ok := firstRDNValue(dn)
		if got != want && !(want == "" && !ok) {
			t.Errorf("firstRDNValue(%q) = %q, %v; want %q", dn, got, ok, want)
		}
	}
}

// FuzzUserFilter checks that a user name put into the user filter is
// escaped exactly once: the filter always compiles to an equality match of
// exactly the user name, whatever it holds.
func FuzzUserFilter(f *testing.F) {
	for _, s := range []string{"alice", "*", ")(uid=*", `\`, "alice)(|(uid=*", `\2a`, "é", "\x00", "a\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		filter := substitute("(uid=%s)", goldap.EscapeFilter(user))
		p, err := goldap.CompileFilter(filter)
		if err != nil {
			t.Fatalf("filter %q for %q does not compile: %v", filter, user, err)
		}
		if p.Tag != goldap.FilterEqualityMatch || len(p.Children) != 2 {
			t.Fatalf("filter %q for %q is not one equality match", filter, user)
		}
		if got := p.Children[1].Data.String(); got != user {
			t.Fatalf("filter %q matches %q, want %q", filter, got, user)
		}
	})
}

// FuzzUserDN checks that every acceptable user name put into the DN
// template gives a DN whose first RDN is uid=<that name> and nothing else.
func FuzzUserDN(f *testing.F) {
	for _, s := range []string{"alice", "a,b", "#x", "a+cn=b", `a\`, "a=b", `"q"`, "<>;", weirdUID} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		if authn.ValidUser(user) != nil {
			return // refused before any bind
		}
		dn := substitute("uid=%s,ou=people,dc=example,dc=org", goldap.EscapeDN(user))
		d, err := goldap.ParseDN(dn)
		if err != nil {
			t.Fatalf("DN %q for %q does not parse: %v", dn, user, err)
		}
		if len(d.RDNs) != 4 || len(d.RDNs[0].Attributes) != 1 || d.RDNs[0].Attributes[0].Value != user {
			t.Fatalf("DN %q for %q parses as %v", dn, user, d)
		}
	})
}

// FuzzFirstRDNValue checks that role names taken from group DNs are always
// clean single-line text.
func FuzzFirstRDNValue(f *testing.F) {
	f.Add("cn=staff,ou=groups,dc=example,dc=org")
	f.Add(`cn=a\0ab,dc=org`)
	f.Fuzz(func(t *testing.T, dn string) {
		if v, ok := firstRDNValue(dn); ok && !cleanValue(v) {
			t.Fatalf("firstRDNValue(%q) = %q, not clean", dn, v)
		}
	})
}
