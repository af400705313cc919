package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestLines(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const password = "s3cret-Passw0rd"
	path := filepath.Join(t.TempDir(), "audit.log")
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	l, err := Open(Config{Path: path, FailClosed: true, Sync: true, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	l.Login("corp", "alice", "10.0.0.1", "ldap", true, nil, 42*time.Millisecond)
	l.Login("corp", "alice", "10.0.0.1", "ldap", false, nil, time.Millisecond)
	l.Login("corp", "alice", "10.0.0.1", "ldap", false, errors.New("ldap: connection refused"), time.Millisecond)
	if err := l.Write(Event{Kind: "issue", Realm: "corp", User: "alice", Source: "auth/ldap", Client: "10.0.0.1", Token: "ab12cd34"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	wantKinds := []string{"login", "login_failed", "login_error", "issue"}
	if len(lines) != len(wantKinds) {
		t.Fatalf("got %d lines, want %d", len(lines), len(wantKinds))
	}
	for i, k := range wantKinds {
		if got := lines[i]["kind"]; got != k {
			t.Errorf("line %d kind = %v, want %s", i, got, k)
		}
		if got := lines[i]["time"]; got != "2025-03-01T12:00:00Z" {
			t.Errorf("line %d time = %v", i, got)
		}
	}
	if got := lines[0]["took_ms"]; got != float64(42) {
		t.Errorf("took_ms = %v, want 42", got)
	}
	issue := lines[3]
	for k, want := range map[string]string{"realm": "corp", "user": "alice", "source": "auth/ldap", "client": "10.0.0.1", "token": "ab12cd34"} {
		if issue[k] != want {
			t.Errorf("issue %s = %v, want %s", k, issue[k], want)
		}
	}
	raw, _ := os.ReadFile(path)
	for _, secret := range []string{token, password} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("audit log contains a secret %q", secret)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestFailClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for _, closed := range []bool{true, false} {
		l, err := Open(Config{Path: path, FailClosed: closed})
		if err != nil {
			t.Fatal(err)
		}
		// /dev/full fails every write with ENOSPC, as a full disk would.
		full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Skip("no /dev/full")
		}
		l.f.Close()
		l.f, l.w = full, full
		err = l.Write(Event{Kind: "issue"})
		if closed && err == nil {
			t.Error("fail_closed: write to a full disk returned no error")
		}
		if !closed && err != nil {
			t.Errorf("fail open: write returned %v", err)
		}
		l.Close()
	}
}

func TestUnwritableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	os.WriteFile(path, nil, 0o400)
	if os.Getuid() == 0 {
		// root ignores file modes: use a path under a file instead.
		path = filepath.Join(path, "sub")
	}
	if _, err := Open(Config{Path: path, FailClosed: true}); err == nil {
		t.Error("opening an unwritable audit log succeeded")
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(Config{Path: path, FailClosed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write(Event{Kind: "issue"})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write(Event{Kind: "revoke"})
	if n := len(readLines(t, path+".1")); n != 1 {
		t.Errorf("rotated file has %d lines, want 1", n)
	}
	if lines := readLines(t, path); len(lines) != 1 || lines[0]["kind"] != "revoke" {
		t.Errorf("new file = %v, want one revoke line", lines)
	}
}

// TestReserveFullDisk: on a full tmpfs, Reserve fails before anything is
// changed, and every line written after a Reserve that succeeded is
// written (the room was preallocated before the disk filled).
func TestReserveFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("SKS_REQUIRE_BACKENDS") == "1" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount tmpfs (needs root): %v: %s", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	l, err := Open(Config{Path: filepath.Join(mnt, "audit.log"), FailClosed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Reserve(); err != nil {
		t.Fatalf("reserve on an empty disk: %v", err)
	}
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	refused := false
	for i := range 100000 {
		if err := l.Reserve(); err != nil {
			refused = true
			break
		}
		if err := l.Write(Event{Kind: "issue", User: "u", Detail: strings.Repeat("x", 200)}); err != nil {
			t.Fatalf("line %d after a successful Reserve: %v", i, err)
		}
	}
	if !refused {
		t.Fatal("Reserve never failed on a full disk")
	}
	open, err := Open(Config{Path: filepath.Join(mnt, "open.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := open.Reserve(); err != nil {
		t.Errorf("Reserve without FailClosed: %v", err)
	}
}
