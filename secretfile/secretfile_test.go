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
