package cmd

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sks-server/sks/authn/static"
	"github.com/sks-server/sks/client"
	"github.com/sks-server/sks/tokens"
)

// sessionsServer runs sks with realm "team" (static user alice, password
// "pw", three sessions at once), loopback not trusted as admin, and an
// admin token file; it returns the server URL and the token file's path.
func sessionsServer(t *testing.T) (srv, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	hash, err := static.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	tokenFile = filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte("the-admin-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sks.toml")
	text := "[admin]\nallow_loopback = false\ntoken_file = \"" + tokenFile + "\"\n" +
		"[modules.st]\ntype = \"static\"\nusers = { alice = \"" + hash + "\", bob = \"" + hash + "\" }\n" +
		"[realms.team]\nmodules = [\"st\"]\ndefault = \"st\"\nmax_sessions = 3\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, _, _ = demoServer(t, "-c", cfg)
	return srv, tokenFile
}

func runSKS(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	c := exec.Command(sksBinary, args...)
	c.Env = append(os.Environ(), env...)
	b, err := c.CombinedOutput()
	return string(b), err
}

func TestSessionsCommand(t *testing.T) {
	srv, tokenFile := sessionsServer(t)
	ctx := context.Background()
	c, err := client.New(srv)
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for range 3 {
		s, err := c.Login(ctx, "team", "alice", "pw", "")
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, s.Token)
	}
	bob, err := c.Login(ctx, "team", "bob", "pw", "")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"SKS_SERVER=" + srv}

	// Without the admin credential (loopback is not trusted here).
	out, err := runSKS(t, env, "sessions", "list", "--realm", "team", "alice")
	if err == nil || !strings.Contains(out, "admin credential") {
		t.Fatalf("list without a credential: %v %q; want an error naming the admin credential", err, out)
	}

	out, err = runSKS(t, env, "sessions", "list", "--realm", "team", "--admin-token-file", tokenFile, "alice")
	if err != nil {
		t.Fatalf("sessions list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "SESSION") {
		t.Fatalf("sessions list: got %q, want a header and 3 sessions", out)
	}
	row := regexp.MustCompile(`^[0-9a-f]{8}  +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  +never  +auth/st$`)
	for i, tok := range toks {
		if strings.Contains(out, tok) {
			t.Fatal("sessions list prints a full token")
		}
		if !row.MatchString(lines[i+1]) || !strings.HasPrefix(lines[i+1], tokens.HashToken(tok).Short()) {
			t.Errorf("row %d: got %q, want %s, issued, never, auth/st", i, lines[i+1], tokens.HashToken(tok).Short())
		}
	}
	// Flags after the user, and --json.
	out, err = runSKS(t, append(env, "SKS_ADMIN_TOKEN_FILE="+tokenFile), "sessions", "list", "alice", "--realm", "team", "--json")
	if err != nil {
		t.Fatalf("sessions list --json: %v\n%s", err, out)
	}
	var js struct {
		Sessions []client.SessionEntry `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || len(js.Sessions) != 3 || js.Sessions[0].ID != tokens.HashToken(toks[0]).Short() {
		t.Fatalf("sessions list --json: got %q, %v", out, err)
	}

	out, err = runSKS(t, env, "sessions", "revoke", "--realm", "team", "--admin-token-file", tokenFile, "alice")
	if err != nil || strings.TrimSpace(out) != "revoked 3 sessions of alice in realm team" {
		t.Fatalf("sessions revoke: %v %q", err, out)
	}
	for _, tok := range toks {
		if r, err := c.Valid(ctx, "team", tok); err != nil || r.Status != client.Invalid {
			t.Errorf("alice's token after sessions revoke: %+v, %v; want invalid", r, err)
		}
	}
	if r, err := c.Valid(ctx, "team", bob.Token); err != nil || r.Status != client.Valid {
		t.Errorf("bob's token after alice's revoke: %+v, %v; want valid", r, err)
	}
	out, err = runSKS(t, env, "sessions", "list", "--realm", "team", "--admin-token-file", tokenFile, "alice")
	if err != nil || strings.TrimSpace(out) != "alice has no current sessions in realm team" {
		t.Fatalf("list after revoke: %v %q", err, out)
	}
}

func TestSessionsUsage(t *testing.T) {
	for _, args := range [][]string{{"sessions", "-h"}, {"sessions", "--help"}, {"sessions", "list", "-h"}, {"sessions", "revoke", "--help"}, {"logout", "-h"}} {
		c := exec.Command(sksBinary, args...)
		var stdout, stderr strings.Builder
		c.Stdout, c.Stderr = &stdout, &stderr
		err := c.Run()
		got := stdout.String() + stderr.String()
		if err != nil || !strings.Contains(got, "usage: sks") {
			t.Errorf("sks %s: %v, output %q; want usage and exit 0", strings.Join(args, " "), err, got)
		}
	}
	for _, args := range [][]string{{"sessions"}, {"sessions", "drop"}, {"sessions", "list"}, {"sessions", "list", "a", "b"}, {"logout", "extra"}} {
		if out, err := runSKS(t, nil, args...); err == nil {
			t.Errorf("sks %s: exit 0, want an error; output %q", strings.Join(args, " "), out)
		}
	}
	if out, _ := runSKS(t, nil, "sessions", "-h"); !strings.Contains(out, "sks sessions list") || !strings.Contains(out, "sks sessions revoke") {
		t.Errorf("sks sessions -h: %q", out)
	}
}

func TestLogoutAll(t *testing.T) {
	srv, _ := sessionsServer(t)
	ctx := context.Background()
	c, err := client.New(srv)
	if err != nil {
		t.Fatal(err)
	}
	login := func() string {
		s, err := c.Login(ctx, "team", "alice", "pw", "")
		if err != nil {
			t.Fatal(err)
		}
		return s.Token
	}
	other, mine := login(), login()
	cache := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + cache}
	path := filepath.Join(cache, "sks", "token")
	keep := func(tok string) {
		t.Helper()
		b, _ := json.Marshal(session{Server: srv, Realm: "team", User: "alice", Source: "auth/st", Token: tok})
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keep(mine)
	out, err := runSKS(t, env, "logout", "--all")
	if err != nil || strings.TrimSpace(out) != "signed out everywhere: ended 2 sessions of alice in realm team" {
		t.Fatalf("logout --all: %v %q", err, out)
	}
	for _, tok := range []string{other, mine} {
		if r, err := c.Valid(ctx, "team", tok); err != nil || r.Status != client.Invalid {
			t.Errorf("token after logout --all: %+v, %v; want invalid", r, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("session file after logout --all: %v", err)
	}
	// A kept token that is no longer current cannot sign out everywhere;
	// the file stays.
	keep(mine)
	out, err = runSKS(t, env, "logout", "--all")
	if err == nil || !strings.Contains(out, "no longer current") {
		t.Fatalf("logout --all with a revoked token: %v %q", err, out)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("session file removed after a failed logout --all: %v", err)
	}
}
