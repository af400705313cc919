// Package secretfile reads files that hold secrets (passwords, tokens, keys)
// and refuses them when group or others may read them, with a message that
// says how to fix the mode.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrLooseMode is returned for secret files accessible by group or others.
var ErrLooseMode = errors.New("file is accessible by group or others")

// MaxBytes bounds what is read from a secret file.
const MaxBytes = 1 << 20

// Read returns the content of path, a regular file only its owner can access.
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open secret file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot stat secret file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("secret file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by group or others (mode %04o): %w; run chmod 600 %s", path, perm, ErrLooseMode, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes))
	if err != nil {
		return nil, fmt.Errorf("cannot read secret file %s: %w", path, err)
	}
	return b, nil
}

// FirstLine returns the first line of a secret file (without \r\n), which
// must not be empty.
func FirstLine(path string) (string, error) {
	b, err := Read(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("secret file %s: first line is empty", path)
	}
	return line, nil
}
