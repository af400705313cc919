package tls

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/testrig"
)

func TestReadPasswordFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		wantErr string
	}{
		{"0600", "pass word\nsecond line\n", 0o600, "pass word", ""},
		{"0400", "pw", 0o400, "pw", ""},
		{"crlf", "pw\r\nx", 0o600, "pw", ""},
		{"bom", "\xef\xbb\xbfpw\n", 0o600, "pw", ""},
		{"trailing spaces kept", "pw  \n", 0o600, "pw  ", ""},
		{"0644 refused", "pw\n", 0o644, "", "password file $F is readable by group or others (mode 0644); run chmod 600 $F"},
		{"0640 refused", "pw\n", 0o640, "", "password file $F is readable by group or others (mode 0640); run chmod 600 $F"},
		{"0604 refused", "pw\n", 0o604, "", "(mode 0604)"},
		{"0620 refused", "pw\n", 0o620, "", "password file $F is accessible by group or others (mode 0620); run chmod 600 $F"},
		{"empty", "", 0o600, "", "password file $F: first line is empty"},
		{"empty first line", "\npw\n", 0o600, "", "first line is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := readPasswordFile(p)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "$F", p)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want one containing %q", err, want)
				}
				if tt.mode&0o044 != 0 && !errors.Is(err, ErrInsecurePermissions) {
					t.Errorf("error %v does not match ErrInsecurePermissions", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("password %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPasswordFileModeAtLoad checks -PF through Load: 0644 is refused with
// the chmod advice, 0600 loads.
func TestPasswordFileModeAtLoad(t *testing.T) {
	f := newFixture(t)
	ks := f.p12(t, "server.p12", "file-password")
	pf := writeFile(t, f.dir, "pw", []byte("file-password\n"))
	os.Chmod(pf, 0o644)
	log, buf := testLogger(t)
	_, err := Load(conf.TLS{Keystore: ks, PasswordFile: pf}, WithLogger(log))
	want := fmt.Sprintf("password file %s is readable by group or others (mode 0644); run chmod 600 %s", pf, pf)
	if err == nil || err.Error() != want {
		t.Fatalf("Load error %v,\nwant %q", err, want)
	}
	os.Chmod(pf, 0o600)
	mustLoad(t, conf.TLS{Keystore: ks, PasswordFile: pf})
	if strings.Contains(buf.String(), "file-password") {
		t.Error("the password appeared in the log")
	}
}

// TestHelperPrompt is not a test: the tests below run the test binary with
// this function under a pseudo-terminal or without any terminal.
func TestHelperPrompt(t *testing.T) {
	if os.Getenv("SKS_TLS_PROMPT_HELPER") != "1" {
		return // run as a helper process only; a skip would count as a missing test
	}
	pw, err := PromptTerminal("Password for keystore test: ")
	if err != nil {
		fmt.Printf("ERR:%v\n", err)
		return
	}
	fmt.Printf("GOT:%s\n", pw)
}

// TestPromptTerminalPTY drives -PP through a real pseudo-terminal made by
// script(1): the password is read from the terminal and not echoed.
func TestPromptTerminalPTY(t *testing.T) {
	cmd := exec.Command(testrig.Program(t, "script"), "-qec", "'"+os.Args[0]+"' -test.run='^TestHelperPrompt$'", "/dev/null")
	cmd.Env = append(os.Environ(), "SKS_TLS_PROMPT_HELPER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var out bytes.Buffer
	r := bufio.NewReader(io.TeeReader(stdout, &out))
	prompted := make(chan error, 1)
	go func() {
		for !strings.Contains(out.String(), "Password for keystore test: ") {
			if _, err := r.ReadByte(); err != nil {
				prompted <- err
				return
			}
		}
		prompted <- nil
	}()
	select {
	case err := <-prompted:
		if err != nil {
			t.Fatalf("no prompt: %v; output %q", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no prompt within 30s; output %q", out.String())
	}
	time.Sleep(500 * time.Millisecond) // let the helper turn echo off
	io.WriteString(stdin, "typed secret\n")
	io.ReadAll(r) // the TeeReader copies the rest into out
	cmd.Wait()
	stdin.Close()
	all := out.String()
	if !strings.Contains(all, "GOT:typed secret") {
		t.Fatalf("helper did not read the password; output %q", all)
	}
	if n := strings.Count(all, "typed secret"); n != 1 {
		t.Errorf("the password appears %d times in the terminal output (echoed?): %q", n, all)
	}
}

// TestPromptNoTerminal runs the prompt in a new session without a
// controlling terminal and with stdin from /dev/null.
func TestPromptNoTerminal(t *testing.T) {
	cmd := exec.Command(testrig.Program(t, "setsid"), "-w", os.Args[0], "-test.run=^TestHelperPrompt$")
	cmd.Env = append(os.Environ(), "SKS_TLS_PROMPT_HELPER=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ERR:no terminal: the password prompt (-PP) needs a terminal") ||
		!strings.Contains(string(out), "use -PF <file> or tls.password_file instead") {
		t.Errorf("output %q lacks the no-terminal error", out)
	}
}
