package cmd

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/sks-server/sks/testrig"
)

func loginStatus(t *testing.T, base, realm, user, pwd string) int {
	t.Helper()
	return postWith(t, base+"/auth_token", url.Values{"realm": {realm}, "user": {user}, "pwd": {pwd}}, nil)
}

// TestBanSurvivesRestartAndUnban: on badger a ban outlives a kill -9 and a
// restart; "sks unban" (loopback admin) lifts it and says whether there
// was anything to lift.
func TestBanSurvivesRestartAndUnban(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeFile(t, dir, "sks.toml", "[limits]\nuser_failures = 3\nmin_failure_latency = \"1ms\"\n", 0o600)
	node, base := startSKS(t, "-d", data, "-demo", "-c", cfg)
	pw, err := os.ReadFile(filepath.Join(data, "demo-password"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if st := loginStatus(t, base, "demo", "demo", fmt.Sprint("wrong", i)); st != 403 {
			t.Fatalf("wrong password %d: %d, want 403", i, st)
		}
	}
	if st := loginStatus(t, base, "demo", "demo", strings.TrimSpace(string(pw))); st != 429 {
		t.Fatalf("right password after 3 failures: %d, want 429", st)
	}
	node.Process.Kill()
	node.Wait()

	_, base = startSKS(t, "-d", data, "-demo", "-c", cfg)
	pw, _ = os.ReadFile(filepath.Join(data, "demo-password"))
	if st := loginStatus(t, base, "demo", "DEMO", strings.TrimSpace(string(pw))); st != 429 {
		t.Fatalf("right password after a restart: %d, want 429 (the ban kept)", st)
	}
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"unban", "--server", base, "--realm", "demo", "Demo"}, &out, &errb); err != nil {
		t.Fatalf("sks unban: %v\n%s", err, errb.String())
	}
	if out.String() != "ban lifted\n" {
		t.Errorf("sks unban printed %q", out.String())
	}
	if st := loginStatus(t, base, "demo", "demo", strings.TrimSpace(string(pw))); st != 200 {
		t.Fatalf("right password after the unban: %d, want 200", st)
	}
	out.Reset()
	if err := Run(context.Background(), []string{"unban", "--server", base, "--address", "127.0.0.1"}, &out, &errb); err != nil {
		t.Fatalf("sks unban --address: %v", err)
	}
	if err := Run(context.Background(), []string{"unban", "--server", base, "demo"}, &out, &errb); err == nil {
		t.Error("sks unban without --realm succeeded")
	}
}

// TestTwoNodesOnRedisShareBans: two sks processes on one Redis count the
// failures of one user together (N nodes do not allow N times the
// guesses), and an unban through one node lifts the ban on the other.
func TestTwoNodesOnRedisShareBans(t *testing.T) {
	dir := t.TempDir()
	port := testrig.FreePort(t)
	startRedis(t, dir, port)
	pwFile := writeFile(t, dir, "redis.pw", redisTestPassword+"\n", 0o600)
	hash, err := bcrypt.GenerateFromPassword([]byte("right-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	adminFile := writeFile(t, dir, "admin.token", "admin-token-for-unban-test\n", 0o600)
	cfg := writeFile(t, dir, "sks.toml", fmt.Sprintf(`default_module = "users"
[admin]
allow_loopback = false
token_file = %q
[limits]
user_failures = 4
min_failure_latency = "1ms"
[tokens.redis]
addrs = ["127.0.0.1:%d"]
password_file = %q
timeout = "1s"
[modules.users]
type = "static"
users = { carol = %q }
`, adminFile, port, pwFile, hash), 0o600)
	_, a := startSKS(t, "-c", cfg)
	_, b := startSKS(t, "-c", cfg)
	for i := range 4 {
		node := []string{a, b}[i%2]
		if st := loginStatus(t, node, "r", "carol", fmt.Sprint("wrong", i)); st != 403 {
			t.Fatalf("wrong password %d: %d, want 403", i, st)
		}
	}
	for _, node := range []string{a, b} {
		if st := loginStatus(t, node, "r", "carol", "right-pw"); st != 429 {
			t.Fatalf("right password after 4 failures over two nodes: %d, want 429", st)
		}
	}
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"unban", "--server", a, "--realm", "r", "carol"}, &out, &errb); err == nil {
		t.Fatal("sks unban without the admin token succeeded (loopback admin is off)")
	}
	if err := Run(context.Background(), []string{"unban", "--server", a, "--admin-token-file", adminFile, "--realm", "r", "carol"}, &out, &errb); err != nil {
		t.Fatalf("sks unban: %v", err)
	}
	if st := loginStatus(t, b, "r", "carol", "right-pw"); st != 200 {
		t.Fatalf("right password on the other node after the unban: %d, want 200", st)
	}
}
