package testrig

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SKS is a real sks binary running with the demo realm, for end-to-end tests.
type SKS struct {
	*Proc
	// URL is the base URL, http://127.0.0.1:<port>.
	URL string
	// Addr is host:port.
	Addr string
	// Dir holds the binary, data and config.
	Dir string
	// DemoPassword is the password of user "demo" in realm "demo".
	DemoPassword string
}

// BuildSKS builds sks/cmd/sks into dir and returns the binary's path.
func BuildSKS(dir string) (string, error) {
	bin := filepath.Join(dir, "sks")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/sks-server/sks/cmd/sks").CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build sks: %v\n%s", err, out)
	}
	return bin, nil
}

// StartSKS builds ./cmd/sks and runs it on a free loopback port with the
// demo realm and a badger store under a temporary directory. config, if not
// empty, is written to a file passed with -c. The process stops when the
// test ends.
func StartSKS(t testing.TB, config string) *SKS {
	t.Helper()
	dir := t.TempDir()
	bin, err := BuildSKS(dir)
	if err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	args := []string{"-d", filepath.Join(dir, "data"), "-demo", "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-log-level", "debug"}
	if config != "" {
		cf := filepath.Join(dir, "sks.toml")
		if err := os.WriteFile(cf, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"-c", cf}, args...)
	}
	p := Start(t, dir, "sks", nil, bin, args...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.WaitTCP(t, addr, 20*time.Second)
	pw, err := os.ReadFile(filepath.Join(dir, "data", "demo-password"))
	if err != nil {
		t.Fatalf("no demo password: %v", err)
	}
	return &SKS{Proc: p, URL: "http://" + addr, Addr: addr, Dir: dir, DemoPassword: strings.TrimSpace(string(pw))}
}
