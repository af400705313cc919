package cmd

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
)

// TestMakeInstall: "make install" into a DESTDIR installs the binary, the
// units, the configuration and PAM service (without replacing existing
// ones) and the document the unit's Documentation= points to.
func TestMakeInstall(t *testing.T) {
	makeBin := testrig.Program(t, "make")
	dest := t.TempDir()
	install := func() {
		t.Helper()
		c := exec.Command(makeBin, "-C", "..", "install", "DESTDIR="+dest, "BIN="+sksBinary)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	install()
	for path, mode := range map[string]os.FileMode{
		"/usr/local/bin/sks":                   0o755,
		"/etc/systemd/system/sks.service":      0o644,
		"/etc/systemd/system/sks.socket":       0o644,
		"/etc/sks/sks.toml":                    0o644,
		"/etc/pam.d/sks":                       0o644,
		"/usr/local/share/doc/sks/README.md":   0o644,
		"/usr/local/share/doc/sks/docs/web.md": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(dest, path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "/etc/systemd/system/sks.service"))
	docs := regexp.MustCompile(`(?m)^Documentation=file://(\S+)$`).FindAllStringSubmatch(string(unit), -1)
	if len(docs) == 0 {
		t.Error("the unit has no Documentation=file:// line")
	}
	for _, d := range docs {
		if _, err := os.Stat(filepath.Join(dest, d[1])); err != nil {
			t.Errorf("Documentation= names %s, which make install does not install: %v", d[1], err)
		}
	}
	// An administrator's configuration survives a second install.
	cf := filepath.Join(dest, "/etc/sks/sks.toml")
	os.WriteFile(cf, []byte("# mine\n"), 0o600)
	install()
	if b, _ := os.ReadFile(cf); string(b) != "# mine\n" {
		t.Errorf("make install replaced the configuration: %q", b)
	}
}

// TestDistConfig: dist/sks.toml passes check-config as shipped, and the
// binary starts with it (its /var paths moved into a temporary directory)
// and is ready.
func TestDistConfig(t *testing.T) {
	dist := filepath.Join("..", "dist", "sks.toml")
	if out, err := exec.Command(sksBinary, "check-config", "-c", dist).CombinedOutput(); err != nil || strings.Contains(string(out), ": error:") {
		t.Fatalf("check-config %s: %v\n%s", dist, err, out)
	}
	dir := t.TempDir()
	b, err := os.ReadFile(dist)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("/var/lib/sks", filepath.Join(dir, "lib"), "/var/log/sks", filepath.Join(dir, "log")).Replace(string(b))
	os.MkdirAll(filepath.Join(dir, "log"), 0o700)
	cf := filepath.Join(dir, "sks.toml")
	os.WriteFile(cf, []byte(text), 0o600)
	port := testrig.FreePort(t)
	p := testrig.Start(t, dir, "sks", nil, sksBinary, "-c", cf, "-l", "127.0.0.1", "-p", strconv.Itoa(port))
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.WaitTCP(t, addr, 20*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %s\n%s", resp.StatusCode, body, p.Output())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "lib", "tokens")); err != nil {
		t.Errorf("no token store under data_dir: %v", err)
	}
}
