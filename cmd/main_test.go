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
	_, url, _ = startOn(t, append([]string{"-d", filepath.Join(dir, "data"), "-demo"}, extra...)...)
	b, err := os.ReadFile(filepath.Join(dir, "data", "demo-password"))
	if err != nil {
		t.Fatal(err)
	}
	return url, dir, strings.TrimSpace(string(b))
}

// startOn runs the binary with args on a free loopback port until the
// test ends; it returns a function that kills it and waits for its exit,
// the base URL and the log file's path.
func startOn(t *testing.T, args ...string) (func(), string, string) {
	t.Helper()
	port := testrig.FreePort(t)
	logPath := filepath.Join(t.TempDir(), "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(sksBinary, append(args, "-l", "127.0.0.1", "-p", fmt.Sprint(port))...)
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { c.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		c.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
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
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("sks exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	kill := func() {
		c.Process.Kill()
		<-exited
	}
	return kill, "http://" + addr, logPath
}
