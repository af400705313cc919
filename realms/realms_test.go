package realms

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sks-server/sks/conf"
)

func router(t *testing.T, toml string, pamDir string) *Router {
	t.Helper()
	c, err := conf.Parse(strings.NewReader(toml))
	if err != nil {
		t.Fatal(err)
	}
	c.PAMDir = pamDir
	r, err := Open(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolve(t *testing.T) {
	pamDir := t.TempDir()
	os.WriteFile(filepath.Join(pamDir, "rcloud"), []byte("auth required pam_unix.so\n"), 0o644)
	os.WriteFile(filepath.Join(pamDir, "other"), []byte("auth required pam_unix.so\n"), 0o644)
	os.WriteFile(filepath.Join(pamDir, "login"), []byte("auth required pam_unix.so\n"), 0o644)
	r := router(t, `
[modules.demo]
type = "static"
users = {}
[realms.web]
modules = ["demo"]
default = "demo"
[realms.mixed]
modules = ["pam", "demo"]
pam_service = "login"
`, pamDir)
	cases := []struct {
		realm, module string
		wantSource    string
		wantErr       bool
	}{
		{"rcloud", "", "auth/pam", false},          // compat: realm name is the PAM service, file exists
		{"rcloud", "PAM", "auth/PAM", false},       // module as the client spelled it
		{"nosuchservice", "pam", "auth/pam", true}, // no file: never PAM's "other"
		{"other", "pam", "auth/pam", true},         // "other" is never selectable
		{"../rcloud", "pam", "auth/pam", true},
		{"web", "", "auth/demo", false},
		{"web", "pam", "auth/pam", true}, // not allowed in this realm
		{"mixed", "pam", "auth/pam", false},
		{"mixed", "Demo", "auth/Demo", false},
		{"rcloud", "ldap", "auth/ldap", true}, // not configured
	}
	for _, c := range cases {
		m, src, err := r.Resolve(c.realm, c.module)
		if src != c.wantSource || (err != nil) != c.wantErr || (err == nil && m == nil) {
			t.Errorf("Resolve(%q, %q) = %v, %q, %v; want source %q, error %v", c.realm, c.module, m, src, err, c.wantSource, c.wantErr)
		}
		if err != nil && !errors.Is(err, ErrNoModule) {
			t.Errorf("Resolve(%q, %q): error %v is not ErrNoModule", c.realm, c.module, err)
		}
	}
}

func TestPAMAppOverridesRealm(t *testing.T) {
	pamDir := t.TempDir()
	os.WriteFile(filepath.Join(pamDir, "login"), []byte("auth required pam_unix.so\n"), 0o644)
	r := router(t, `pam_app = "login"`, pamDir)
	if _, _, err := r.Resolve("anything", "pam"); err != nil {
		t.Fatalf("with pam_app, any realm uses it: %v", err)
	}
}

func TestUnknownModuleSetting(t *testing.T) {
	c, err := conf.Parse(strings.NewReader("[modules.x]\ntype = \"static\"\nuserz = {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(c, nil); err == nil || !strings.Contains(err.Error(), "userz") {
		t.Fatalf("a misspelt module setting was accepted: %v", err)
	}
}
