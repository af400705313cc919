package cmd

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sks-server/sks/testrig"
	"github.com/sks-server/sks/tokens"
)

// TestAuditFailClosedFullDisk: with the audit log on a full tmpfs and
// fail_closed, every state-changing endpoint answers 503 and changes
// nothing (no change without its audit line); once space is freed the
// same requests succeed.
func TestAuditFailClosedFullDisk(t *testing.T) {
	mnt := testrig.Tmpfs(t, "1m")
	auditPath := filepath.Join(mnt, "audit.log")
	cfg := filepath.Join(t.TempDir(), "sks.toml")
	os.WriteFile(cfg, []byte("[audit]\npath = \""+auditPath+"\"\nfail_closed = true\n[web]\nenabled = true\n"), 0o600)
	srv, _, pw := demoServer(t, "-c", cfg)

	q := func(path string, kv ...string) (int, string) {
		t.Helper()
		v := url.Values{"realm": {"demo"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return get(t, srv, path+"?"+v.Encode())
	}
	valid := func(tok string) string {
		t.Helper()
		_, body := q("/valid", "token", tok)
		first, _, _ := strings.Cut(body, "\n")
		return first
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	logout := func(tok string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv+"/logout", strings.NewReader("realm=demo"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Before the disk fills: a session, a key, a group, and a stored
	// token of another user.
	tok := demoLogin(t, srv, pw)
	if code, key := q("/gen_key", "token", tok); code != 200 || len(key) != 128 {
		t.Fatalf("gen_key: %d %q", code, key)
	}
	_, key := q("/get_key", "token", tok)
	if code, body := q("/create_group", "group", "g1", "token", tok); code != 200 {
		t.Fatalf("create_group: %d %q", code, body)
	}
	bob := "bob-token-0123456789abcdef0123456789"
	if code, body := q("/stored_token", "user", "bob", "token", bob); code != 200 {
		t.Fatalf("stored_token: %d %q", code, body)
	}

	filler := filepath.Join(mnt, "filler")
	testrig.FillDisk(t, filler)

	// The log keeps room preallocated (fallocate) for the lines of changes
	// in flight: logins go on until it is used up, then answer 503.
	refused := false
	for range 5000 {
		code, body := q("/auth_token", "user", "demo", "pwd", pw)
		if code == 503 {
			refused = true
			break
		}
		if code != 200 {
			t.Fatalf("auth_token: %d %q", code, body)
		}
		tok, _, _ = strings.Cut(body, "\n")
	}
	if !refused {
		t.Fatal("logins never refused on a full audit disk")
	}
	if got := valid(tok); got != "YES" {
		t.Errorf("after a refused login the old token answers %s, want YES", got)
	}
	carol := "carol-token-0123456789abcdef012345678"
	if code, _ := q("/stored_token", "user", "carol", "token", carol); code != 503 {
		t.Errorf("stored_token: %d, want 503", code)
	}
	if got := valid(carol); got != "NO" {
		t.Errorf("refused stored token answers %s, want NO", got)
	}
	if code, _ := q("/revoke", "token", tok); code != 503 {
		t.Errorf("revoke: %d, want 503", code)
	}
	if got := valid(tok); got != "YES" {
		t.Errorf("after a refused revoke the token answers %s, want YES", got)
	}
	if code, _ := q("/replace", "token", tok); code != 503 {
		t.Errorf("replace: %d, want 503", code)
	}
	if got := valid(tok); got != "YES" {
		t.Errorf("after a refused replace the token answers %s, want YES", got)
	}
	if code, _ := q("/gen_key", "token", tok); code != 503 {
		t.Errorf("gen_key: %d, want 503", code)
	}
	if _, got := q("/get_key", "token", tok); got != key {
		t.Error("a refused gen_key changed the key")
	}
	if code, _ := q("/create_group", "group", "g2", "token", tok); code != 503 {
		t.Errorf("create_group: %d, want 503", code)
	}
	if code, _ := q("/mod_group", "group", "g1", "token", tok, "add_members", "bob"); code != 503 {
		t.Errorf("mod_group: %d, want 503", code)
	}
	if code, _ := q("/group_hash", "group", "g1", "token", bob); code != 403 {
		t.Errorf("after a refused mod_group bob's group_hash answers %d, want 403", code)
	}

	if code := logout(tok); code != 503 {
		t.Errorf("web logout: %d, want 503", code)
	}
	if got := valid(tok); got != "YES" {
		t.Errorf("after a refused web logout the token answers %s, want YES", got)
	}

	// Space again: the same requests succeed.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code, body := q("/create_group", "group", "g2", "token", tok); code != 200 {
		t.Errorf("create_group after freeing space: %d %q (a refused one must not have created it)", code, body)
	}
	if code, _ := q("/mod_group", "group", "g1", "token", tok, "add_members", "bob"); code != 200 {
		t.Errorf("mod_group after freeing space: %d", code)
	}
	if code, _ := q("/revoke", "token", tok); code != 200 {
		t.Errorf("revoke after freeing space: %d", code)
	}
	if got := valid(tok); got != "NO" {
		t.Errorf("revoked token answers %s", got)
	}
	tok = demoLogin(t, srv, pw)
	if code := logout(tok); code >= 400 {
		t.Errorf("web logout after freeing space: %d", code)
	}
	if got := valid(tok); got != "NO" {
		t.Errorf("logged-out token answers %s", got)
	}
	log, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kind":"create_group"`, `"kind":"mod_group"`, `"kind":"revoke"`, `"detail":"logout"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// TestDamagedStoreRefusedThenRepaired: sks refuses to start on a store
// whose WAL lost acknowledged commits, saying why and pointing to the
// repair; sks repair salvages the readable part into a new directory that
// sks then serves.
func TestDamagedStoreRefusedThenRepaired(t *testing.T) {
	ctx := t.Context()
	live := t.TempDir()
	s, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: live})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 1000 {
		user := fmt.Sprintf("u%d", i)
		if _, err := s.Issue(ctx, "demo", tokens.HashToken(fmt.Sprint("tok-", i)), tokens.Record{User: user, Identity: user + "\npam\n"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	// What kill -9 leaves, then a WAL cut short.
	damaged := filepath.Join(t.TempDir(), "data")
	if err := copyFiles(live, mkdir(t, damaged)); err != nil {
		t.Fatal(err)
	}
	mems, _ := filepath.Glob(filepath.Join(damaged, "*.mem"))
	if len(mems) == 0 {
		t.Fatal("no WAL")
	}
	if err := os.Truncate(mems[len(mems)-1], 64<<10); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(sksBinary, "-d", damaged, "-l", "127.0.0.1", "-p", fmt.Sprint(testrig.FreePort(t))).CombinedOutput()
	if err == nil {
		t.Fatal("sks started on a damaged store")
	}
	for _, want := range []string{"damaged", damaged, "Repairing the token store"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("start-up error lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "panic") {
		t.Errorf("start-up panicked:\n%s", out)
	}

	repaired := filepath.Join(t.TempDir(), "repaired")
	out, err = exec.Command(sksBinary, "repair", "-d", damaged, "-o", repaired).CombinedOutput()
	if err != nil {
		t.Fatalf("sks repair: %v\n%s", err, out)
	}
	t.Logf("sks repair: %s", out)
	r, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: repaired})
	if err != nil {
		t.Fatalf("repaired store: %v", err)
	}
	defer r.Close()
	if _, err := r.Get(ctx, "demo", tokens.HashToken("tok-0")); err != nil {
		t.Errorf("the first token, before the damage, is not in the repaired store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(damaged, "MANIFEST")); err != nil {
		t.Errorf("repair changed the damaged directory: %v", err)
	}
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFullDiskAnswers503: the real binary with its store on a small tmpfs
// that fills up answers 503 (never a dropped connection), logs the data
// directory, keeps every acknowledged token valid and takes writes again
// once space is freed, without a restart; a restart on the full disk
// refuses with a message saying so.
func TestFullDiskAnswers503(t *testing.T) {
	mnt := testrig.Tmpfs(t, "48m")
	data := filepath.Join(mnt, "data")
	kill, base, logPath := startOn(t, "-d", data)
	// Leave about 7 MiB above the 16 MiB reserve: the first writes create
	// badger's value log and WAL files (several MiB), then tokens fill the
	// rest.
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	if n := int64(st.Bavail)*int64(st.Bsize) - 23<<20; n > 0 {
		if err := os.WriteFile(ballast, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	store := func(i int) (int, string) {
		v := url.Values{"realm": {"r"}, "user": {fmt.Sprint("user", i%100)}, "token": {fmt.Sprintf("token-%040d", i)}}
		resp, err := http.Get(base + "/stored_token?" + v.Encode())
		if err != nil {
			t.Fatalf("stored_token %d: %v (connection dropped?)", i, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	valid := func(i int) string {
		_, body := get(t, base, "/valid?realm=r&token="+fmt.Sprintf("token-%040d", i))
		first, _, _ := strings.Cut(body, "\n")
		return first
	}
	acked := 0
	for ; ; acked++ {
		code, body := store(acked)
		if code == 503 {
			if !strings.Contains(body, "token store") {
				t.Errorf("503 body %q", body)
			}
			break
		}
		if code != 200 {
			t.Fatalf("stored_token %d: %d %q", acked, code, body)
		}
		if acked > 50000 {
			t.Fatal("the disk never filled")
		}
	}
	t.Logf("%d tokens stored before the disk filled", acked)
	logText, _ := os.ReadFile(logPath)
	if !strings.Contains(string(logText), "token store full") || !strings.Contains(string(logText), data) {
		t.Errorf("no log line naming the data directory:\n%s", logText)
	}
	// user<i%100> has max_sessions 1: only the last 100 are current.
	for i := max(acked-100, 0); i < acked; i++ {
		if got := valid(i); got != "YES" {
			t.Fatalf("acknowledged token %d answers %s on a full disk", i, got)
		}
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if code, body := store(acked); code != 200 {
		t.Fatalf("after freeing space: %d %q", code, body)
	}

	kill()
	testrig.FillDisk(t, ballast)
	out, err := exec.Command(sksBinary, "-d", data, "-l", "127.0.0.1", "-p", fmt.Sprint(testrig.FreePort(t))).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not enough free disk space") || !strings.Contains(string(out), data) {
		t.Errorf("start on a full disk: %v\n%s", err, out)
	}
	os.Remove(ballast)
	_, base, _ = startOn(t, "-d", data)
	for i := max(acked-99, 0); i <= acked; i++ {
		if got := valid(i); got != "YES" {
			t.Fatalf("after restart token %d answers %s", i, got)
		}
	}
}
