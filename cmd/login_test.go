package cmd

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
)

// TestLoginWhoamiLogout drives "sks login" through a pseudo-terminal
// (util-linux script), typing the password only once the prompt is shown
// so that echo is already off, then checks whoami and logout.
func TestLoginWhoamiLogout(t *testing.T) {
	scriptBin := testrig.Program(t, "script")
	srv, _, pw := demoServer(t)
	cache := t.TempDir()
	env := append(os.Environ(), "XDG_CACHE_HOME="+cache)

	c := exec.Command(scriptBin, "-qec", sksBinary+" login --realm demo --server "+srv+" demo", "/dev/null")
	c.Env = env
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out testrig.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Password for demo in realm demo:") {
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("no password prompt; output %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	io.WriteString(stdin, pw+"\n")
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		c.Process.Kill()
		t.Fatalf("sks login did not finish; output %q", out.String())
	}
	stdin.Close()
	got := out.String()
	if err != nil {
		t.Fatalf("sks login: %v; output %q", err, got)
	}
	if strings.Contains(got, pw) {
		t.Errorf("password echoed on the terminal: %q", got)
	}
	if !strings.Contains(got, "logged in as demo (source auth/demo) in realm demo") {
		t.Errorf("login output %q", got)
	}

	path := filepath.Join(cache, "sks", "token")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("token dir mode %v, want 0700", di.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	var s session
	if err := json.Unmarshal(raw, &s); err != nil || s.Token == "" || s.Realm != "demo" || s.Server != srv {
		t.Fatalf("session file %s: %v", raw, err)
	}
	if strings.Contains(string(raw), pw) {
		t.Error("session file contains the password")
	}

	run := func(args ...string) string {
		t.Helper()
		c := exec.Command(sksBinary, args...)
		c.Env = env
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("sks %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	if w := run("whoami"); !strings.HasPrefix(w, "YES\ndemo\nauth/demo\n") || !strings.Contains(w, "\nissued  ") || !strings.Contains(w, "\nexpires never") {
		t.Errorf("whoami = %q, want YES, the identity, issued and expiry", w)
	}
	// A second login elsewhere supersedes the kept session: whoami says so
	// and exits non-zero.
	resp0, err := http.PostForm(srv+"/auth_token", url.Values{"realm": {"demo"}, "user": {"demo"}, "pwd": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	b0, _ := io.ReadAll(resp0.Body)
	resp0.Body.Close()
	c = exec.Command(sksBinary, "whoami")
	c.Env = env
	if w, err := c.CombinedOutput(); err == nil || !strings.HasPrefix(string(w), "SUPERCEDED\n") || !strings.Contains(string(w), "not current") {
		t.Errorf("whoami of a superseded session: %v %q, want SUPERCEDED and a non-zero exit", err, w)
	}
	newTok, _, _ := strings.Cut(string(b0), "\n")
	s.Token = newTok
	raw, _ = json.Marshal(s)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if l := run("logout"); !strings.Contains(l, "logged out demo") {
		t.Errorf("logout = %q", l)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("session file still there after logout: %v", err)
	}
	resp, err := http.PostForm(srv+"/valid", url.Values{"realm": {"demo"}, "token": {s.Token}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "NO\n" {
		t.Errorf("revoked token is %q, want NO", b)
	}
	c = exec.Command(sksBinary, "whoami")
	c.Env = env
	if b, err := c.CombinedOutput(); err == nil || !strings.Contains(string(b), "not logged in") {
		t.Errorf("whoami after logout: %v %q", err, b)
	}
}
