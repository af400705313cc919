package cmd

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
)

// TestPAMUnprivilegedWarns runs the real binary as nobody (as the shipped
// unit's DynamicUser does) with a pam_unix realm: it cannot read
// /etc/shadow, so every other user's correct password is refused. Before,
// that was an INFO "login failed" indistinguishable from a wrong password;
// now start-up logs a WARN naming the fix, and so does each refusal.
// check-config run as nobody reports the same as a warning.
func TestPAMUnprivilegedWarns(t *testing.T) {
	pamDir := testrig.PAMStack(t)
	setpriv := testrig.Program(t, "setpriv")
	// Everything nobody needs must be reachable by nobody.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir), pamDir, filepath.Dir(pamDir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "sks")
	b, err := os.ReadFile(sksBinary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(dir, "sks.toml")
	config := fmt.Sprintf("[modules.pam]\ntype = \"pam\"\nservice = \"sks-fast\"\ndir = %q\n\n[realms.sys]\nmodules = [\"pam\"]\ndefault = \"pam\"\n", pamDir)
	if err := os.WriteFile(cf, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	asNobody := []string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", bin}

	// As root: no warning.
	if out, err := exec.Command(bin, "check-config", "-c", cf).CombinedOutput(); err != nil || strings.Contains(string(out), "shadow") {
		t.Errorf("check-config as root: %v\n%s", err, out)
	}
	// As nobody: a warning with the line of the module, exit 0.
	out, err := exec.Command(setpriv, append(asNobody, "check-config", "-c", cf)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), cf+":1: warning: pam service uses pam_unix but this process cannot read /etc/shadow") ||
		!strings.Contains(string(out), "run sks as root") {
		t.Errorf("check-config as nobody: %v\n%s", err, out)
	}

	port := testrig.FreePort(t)
	p := testrig.Start(t, dir, "sks", nil, setpriv, append(asNobody, "-c", cf, "-l", "127.0.0.1", "-p", strconv.Itoa(port))...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.WaitTCP(t, addr, 20*time.Second)
	if !strings.Contains(p.Output(), "level=WARN msg=\"pam service uses pam_unix but this process cannot read /etc/shadow") ||
		!strings.Contains(p.Output(), "DynamicUser=no") {
		t.Errorf("no start-up WARN naming the fix:\n%s", p.Output())
	}
	resp, err := http.PostForm("http://"+addr+"/auth_token", url.Values{"realm": {"sys"}, "user": {testrig.PAMUser}, "pwd": {testrig.PAMPassword}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// pam_unix refuses (403) or, when its helper cannot run, fails as a
	// system error (503), depending on how privileges were dropped.
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("login as nobody = %d; expected pam_unix to fail", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Output(), "possibly only because this process cannot read /etc/shadow") &&
		!strings.Contains(p.Output(), "likely because this process cannot read /etc/shadow") {
		if time.Now().After(deadline) {
			t.Fatalf("no WARN on the refused login:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(p.Output(), testrig.PAMPassword) {
		t.Error("the password is in the log")
	}
}
