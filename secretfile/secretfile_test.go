package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	os.WriteFile(p, []byte("s3cret\r\nsecond\n"), 0o600)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		os.Chmod(p, mode)
		_, err := FirstLine(p)
		if !errors.Is(err, ErrLooseMode) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %04o: got %v, want a refusal saying chmod 600", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		os.Chmod(p, mode)
		if got, err := FirstLine(p); err != nil || got != "s3cret" {
			t.Errorf("mode %04o: got %q, %v", mode, got, err)
		}
	}
	os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600)
	if _, err := FirstLine(filepath.Join(dir, "empty")); err == nil {
		t.Error("an empty first line was accepted")
	}
}

func TestWhatAndMessage(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	os.WriteFile(p, []byte("pw\n"), 0o600)
	for _, c := range []struct {
		mode os.FileMode
		want string
	}{
		{0o644, "bind_password_file " + p + " is readable by group or others (mode 0644); run chmod 600 " + p},
		{0o620, "bind_password_file " + p + " is accessible by group or others (mode 0620); run chmod 600 " + p},
		{0o601, "bind_password_file " + p + " is accessible by group or others (mode 0601); run chmod 600 " + p},
	} {
		os.Chmod(p, c.mode)
		_, err := FirstLineOf("bind_password_file", p)
		if err == nil || err.Error() != c.want {
			t.Errorf("mode %04o: got %v, want %q", c.mode, err, c.want)
		}
		var me *ModeError
		if !errors.Is(err, ErrLooseMode) || !errors.As(err, &me) || me.Mode != c.mode {
			t.Errorf("mode %04o: %v is not a *ModeError matching ErrLooseMode", c.mode, err)
		}
	}
	os.Chmod(p, 0o600)
	if _, err := ReadOf("keytab", filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "cannot open keytab: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: got %v, want a refusal", err)
	}
	if err := CheckMode("", p, 0o600); err != nil {
		t.Errorf("CheckMode 0600: %v", err)
	}
	if err := CheckMode("", p, 0o640); !errors.Is(err, ErrLooseMode) || !strings.HasPrefix(err.Error(), "secret file "+p) {
		t.Errorf("CheckMode 0640: %v", err)
	}
}

func TestOpenFileAppends(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keys")
	f, err := OpenFile("api keys file", p, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("a\n")
	f.Close()
	if got, err := FirstLine(p); err != nil || got != "a" {
		t.Errorf("got %q, %v", got, err)
	}
	os.Chmod(p, 0o660)
	if _, err := OpenFile("api keys file", p, os.O_RDWR|os.O_APPEND, 0); !errors.Is(err, ErrLooseMode) {
		t.Errorf("0660: got %v, want ErrLooseMode", err)
	}
}
