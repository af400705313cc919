package cmd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
	"github.com/sks-server/sks/tokens"
)

// TestUnitFilesVerify checks dist/sks.service and dist/sks.socket with
// systemd-analyze. ExecStart must name an existing executable, so the
// units are copied with the path of the test's binary.
func TestUnitFilesVerify(t *testing.T) {
	analyze := testrig.Program(t, "systemd-analyze")
	dir := t.TempDir()
	for _, name := range []string{"sks.service", "sks.socket"} {
		b, err := os.ReadFile(filepath.Join("..", "dist", name))
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "/usr/local/bin/sks", sksBinary))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "sks.service"), filepath.Join(dir, "sks.socket")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestExampleConfigParses checks that dist/sks.toml is a valid configuration.
func TestExampleConfigParses(t *testing.T) {
	f := newServeFlags(io.Discard)
	if err := f.fs.Parse([]string{"-c", filepath.Join("..", "dist", "sks.toml")}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.apply()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Audit.Path != "/var/log/sks/audit.log" || !cfg.Limits.On() || cfg.Limits.UserFailures != 5 {
		t.Errorf("unexpected example config: %+v", cfg)
	}
}

// TestSocketActivationAndNotify runs the real binary as systemd would: the
// listening socket passed by systemd-socket-activate (LISTEN_FDS and
// LISTEN_PID), readiness and stopping reported on NOTIFY_SOCKET.
func TestSocketActivationAndNotify(t *testing.T) {
	activate := testrig.Program(t, "systemd-socket-activate")
	dir := t.TempDir()
	notifyPath := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed before %s", want)
				}
				for _, line := range strings.Split(m, "\n") {
					if line == want {
						return
					}
				}
			case <-timeout:
				t.Fatalf("no %s on the notify socket", want)
			}
		}
	}

	port := testrig.FreePort(t)
	data := filepath.Join(dir, "data")
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	defer logf.Close()
	c := exec.Command(activate, "-l", fmt.Sprintf("127.0.0.1:%d", port), "-E", "NOTIFY_SOCKET="+notifyPath,
		sksBinary, "-d", data, "-demo", "-p", "1") // -p 1 would fail: the passed socket must be used
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Process.Kill()
		c.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server log:\n%s", b)
		}
	}()
	// systemd-socket-activate starts sks on the first connection.
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		if resp, err = http.Get(base + "/version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp.Body.Close()
	expect("READY=1")
	pw, err := os.ReadFile(filepath.Join(data, "demo-password"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.PostForm(base+"/auth_token", url.Values{"realm": {"demo"}, "user": {"demo"}, "pwd": {strings.TrimSpace(string(pw))}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	tok, _, _ := strings.Cut(string(body), "\n")

	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1")
	werr := make(chan error, 1)
	go func() { werr <- c.Wait() }()
	select {
	case err := <-werr:
		if err != nil {
			t.Fatalf("sks did not exit cleanly: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sks did not exit after SIGTERM")
	}

	// The store was closed cleanly: it opens again and keeps the session.
	store, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: data})
	if err != nil {
		t.Fatalf("reopen data dir: %v", err)
	}
	defer store.Close()
	_, st, err := tokens.NewService(store).Validate(context.Background(), "demo", tok)
	if err != nil || st != tokens.Current {
		t.Errorf("after restart the session is %v (err %v), want current", st, err)
	}
}
