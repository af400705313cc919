package pam_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sks-server/sks/authn/pam"
)

func TestUsesPamUnix(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"direct":     "auth required pam_unix.so nodelay\naccount required pam_unix.so\n",
		"path":       "auth\t[success=1 default=ignore]\t/lib/x86_64-linux-gnu/security/pam_unix.so\n",
		"common":     "# the Debian way\nauth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\n",
		"at-include": "@include common\naccount required pam_permit.so\n",
		"substack":   "auth substack common\n",
		"ldap-only":  "auth required pam_ldap.so\naccount required pam_unix.so\n",
		"commented":  "# auth required pam_unix.so\nauth required pam_permit.so\n",
		"loop":       "@include loop\n",
		"optional":   "-auth optional pam_unix.so\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]bool{
		"direct": true, "path": true, "common": true, "at-include": true, "substack": true, "optional": true,
		"ldap-only": false, "commented": false, "loop": false, "missing": false,
	} {
		if got := pam.UsesPamUnix(dir, name); got != want {
			t.Errorf("UsesPamUnix(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestCheckShadow(t *testing.T) {
	old := pam.ShadowFile
	defer func() { pam.ShadowFile = old }()
	pam.ShadowFile = filepath.Join(t.TempDir(), "missing")
	if err := pam.CheckShadow(); err == nil {
		t.Error("CheckShadow of a missing file succeeded")
	}
}
