// Package testrig starts real backend servers (slapd, krb5kdc, redis-server)
// as private processes on loopback for tests, and stops them afterwards.
//
// A test that needs a backend calls Require first. Outside the project's test
// command a missing program skips the test; under the test command
// (SKS_REQUIRE_BACKENDS=1, set by scripts/test.sh) it fails, because a
// real-backend test that skips in CI is a missing test.
package testrig

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Strict reports whether missing backends must fail tests rather than skip them.
func Strict() bool { return os.Getenv("SKS_REQUIRE_BACKENDS") == "1" }

// Require checks that each program is on PATH (or an absolute path that
// exists). It skips the test when one is missing, or fails it under Strict.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := LookPath(p); err != nil {
			if Strict() {
				t.Fatalf("%s is required (run scripts/test.sh as root to install it): %v", p, err)
			}
			t.Skipf("%s not installed; scripts/test.sh installs it", p)
		}
	}
}

// Program returns the path of program, found as LookPath finds it; when it
// is missing the test skips, or fails under Strict, as Require does.
func Program(t testing.TB, program string) string {
	t.Helper()
	Require(t, program)
	path, err := LookPath(program)
	if err != nil {
		t.Fatal(err) // Require found it a moment ago
	}
	return path
}

// RequireRoot skips (or fails under Strict) when the test is not run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if Strict() {
			t.Fatal("this test needs root (it uses the system PAM stack)")
		}
		t.Skip("needs root")
	}
}

// LookPath finds a program on PATH, also in the sbin directories that
// Debian's server packages use and a non-root PATH may lack.
func LookPath(p string) (string, error) {
	if filepath.IsAbs(p) {
		if _, err := os.Stat(p); err != nil {
			return "", err
		}
		return p, nil
	}
	if path, err := exec.LookPath(p); err == nil {
		return path, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if _, err := os.Stat(filepath.Join(d, p)); err == nil {
			return filepath.Join(d, p), nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH", p)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Callers that race for it should retry their start on failure.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Proc is a background server process whose output goes to a log file.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
}

// Start runs program with args in the background, output to dir/<name>.log.
// The process is stopped when the test ends.
func Start(t testing.TB, dir, name string, env []string, program string, args ...string) *Proc {
	t.Helper()
	path, err := LookPath(program)
	if err != nil {
		t.Fatalf("cannot start %s: %v", name, err)
	}
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("cannot create %s: %v", logPath, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("cannot start %s: %v", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); lf.Close(); close(p.done) }()
	t.Cleanup(p.Stop)
	return p
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process: TERM, then KILL after three seconds.
func (p *Proc) Stop() {
	if p == nil || p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Kill ends the process at once with SIGKILL, as a crash would.
func (p *Proc) Kill() {
	if p == nil || p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Freeze stops the process with SIGSTOP, as a hung server would be:
// connections are still accepted by the kernel but nothing answers. It
// returns once every thread has stopped (the signal is delivered
// asynchronously, and a thread running on another core could otherwise
// answer one more request), and thaws the process when the test ends.
func (p *Proc) Freeze(t testing.TB) {
	t.Helper()
	pid := p.Cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("cannot freeze %s: %v", p.Name, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	deadline := time.Now().Add(5 * time.Second)
	for !allStopped(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) did not stop within 5s of SIGSTOP", p.Name, pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// Thaw resumes a frozen process.
func (p *Proc) Thaw(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(p.Cmd.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatalf("cannot thaw %s: %v", p.Name, err)
	}
}

// allStopped reports whether every thread of pid is in state T (stopped).
func allStopped(pid int) bool {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			return false
		}
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Output returns what the process has written to its log so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// WaitFor polls ready every 20 ms until it returns nil or timeout passes, and
// fails the test with the process log if the process exits or time runs out.
func (p *Proc) WaitFor(t testing.TB, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ready(); err == nil {
			return
		}
		if p.Exited() {
			t.Fatalf("%s exited before it was ready: %v\n%s", p.Name, err, tail(p.Output()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %v\n%s", p.Name, timeout, err, tail(p.Output()))
}

// WaitTCP waits until addr accepts TCP connections.
func (p *Proc) WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	p.WaitFor(t, timeout, func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// Run runs a command to completion and fails the test with its output on error.
func Run(t testing.TB, env []string, program string, args ...string) string {
	t.Helper()
	path, err := LookPath(program)
	if err != nil {
		t.Fatalf("%v", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, tail(string(out)))
	}
	return string(out)
}

func tail(s string) string {
	if len(s) > 4000 {
		return "...\n" + s[len(s)-4000:]
	}
	return s
}
