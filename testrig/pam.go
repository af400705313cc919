package testrig

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// PAMUser is the system user the PAM tests log in as, created by
// EnsurePAMUser. It has no home and no shell.
const PAMUser = "sks-pamtest"

// PAMPassword is PAMUser's password. It is a test fixture on a test machine.
const PAMPassword = "pam-test-Pa55word"

// PAMStack makes a private PAM service directory with two services using
// pam_unix against the system's users: "sks-test" (with pam_unix's failure
// delay) and "sks-fast" (nodelay). It ensures PAMUser exists with
// PAMPassword. It needs root: it creates the user, and pam_unix can only
// check other users' passwords as root.
func PAMStack(t testing.TB) (dir string) {
	t.Helper()
	RequireRoot(t)
	EnsurePAMUser(t)
	dir = t.TempDir()
	write := func(name, opts string) {
		body := "auth required pam_unix.so " + opts + "\naccount required pam_unix.so\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sks-test", "")
	write("sks-fast", "nodelay")
	return dir
}

// EnsurePAMUser creates PAMUser if needed and sets its password.
func EnsurePAMUser(t testing.TB) {
	t.Helper()
	if _, err := user.Lookup(PAMUser); err != nil {
		Require(t, "useradd", "chpasswd")
		if out, err := exec.Command(mustLook(t, "useradd"), "-M", "-s", "/usr/sbin/nologin", PAMUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", PAMUser, err, out)
		}
	}
	cmd := exec.Command(mustLook(t, "chpasswd"))
	cmd.Stdin = strings.NewReader(PAMUser + ":" + PAMPassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
}

func mustLook(t testing.TB, p string) string {
	t.Helper()
	path, err := LookPath(p)
	if err != nil {
		t.Fatal(err)
	}
	return path
}
