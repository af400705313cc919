package cmd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
)

// sksBinary is the sks binary built once for the tests that run it.
var sksBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sks-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if sksBinary, err = testrig.BuildSKS(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// demoServer runs "sks -d dir -demo" on a free port until the test ends
// and returns its URL, data directory and the demo password.
func demoServer(t *testing.T, extra ...string) (url, dir, password string) {
	t.Helper()
	dir = t.TempDir()
	port := testrig.FreePort(t)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(sksBinary, append([]string{"-d", filepath.Join(dir, "data"), "-demo", "-l", "127.0.0.1", "-p", fmt.Sprint(port)}, extra...)...)
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process.Kill()
		c.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server log:\n%s", b)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(dir, "data", "demo-password"))
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr, dir, strings.TrimSpace(string(b))
}
