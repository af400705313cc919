// Package secretfile reads files that hold secrets (passwords, tokens, keys)
// and refuses them when group or others may access them, with a message
// that says how to fix the mode.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// ErrLooseMode is returned for secret files accessible by group or others.
var ErrLooseMode = errors.New("file is accessible by group or others")

// MaxBytes bounds what is read from a secret file.
const MaxBytes = 1 << 20

// defaultWhat names the file in messages when the caller does not.
const defaultWhat = "secret file"

// ModeError reports a secret file that group or others may access. It
// matches ErrLooseMode with errors.Is.
type ModeError struct {
	What string      // what the file is, e.g. "password file"
	Path string      // the file
	Mode fs.FileMode // its permission bits
}

// Error says what is wrong and how to fix it, e.g. "password file /p is
// readable by group or others (mode 0644); run chmod 600 /p".
func (e *ModeError) Error() string {
	how := "accessible"
	if e.Mode&0o044 != 0 {
		how = "readable"
	}
	return fmt.Sprintf("%s %s is %s by group or others (mode %04o); run chmod 600 %s", e.What, e.Path, how, e.Mode.Perm(), e.Path)
}

// Is reports whether target is ErrLooseMode.
func (e *ModeError) Is(target error) bool { return target == ErrLooseMode }

// CheckMode returns a *ModeError when mode gives group or others any
// access to the file at path, and nil otherwise. what names the file in
// the message ("secret file" if empty).
func CheckMode(what, path string, mode fs.FileMode) error {
	if what == "" {
		what = defaultWhat
	}
	if perm := mode.Perm(); perm&0o077 != 0 {
		return &ModeError{What: what, Path: path, Mode: perm}
	}
	return nil
}

// OpenFile opens path as os.OpenFile does and refuses it unless it is a
// regular file that only its owner can access. what names the file in
// messages ("secret file" if empty). The caller closes the file.
func OpenFile(what, path string, flag int, perm fs.FileMode) (*os.File, error) {
	if what == "" {
		what = defaultWhat
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", what, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot stat %s %s: %w", what, path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if err := CheckMode(what, path, st.Mode()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Read returns the content (at most MaxBytes) of path, a regular file only
// its owner can access.
func Read(path string) ([]byte, error) { return ReadOf(defaultWhat, path) }

// ReadOf is Read with what (e.g. "bind_password_file") naming the file in
// messages.
func ReadOf(what, path string) ([]byte, error) {
	if what == "" {
		what = defaultWhat
	}
	f, err := OpenFile(what, path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s %s: %w", what, path, err)
	}
	return b, nil
}

// FirstLine returns the first line of a secret file (without \r\n), which
// must not be empty.
func FirstLine(path string) (string, error) { return FirstLineOf(defaultWhat, path) }

// FirstLineOf is FirstLine with what (e.g. "bind_password_file") naming the
// file in messages.
func FirstLineOf(what, path string) (string, error) {
	if what == "" {
		what = defaultWhat
	}
	b, err := ReadOf(what, path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s %s: first line is empty", what, path)
	}
	return line, nil
}
