package tls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/sks-server/sks/secretfile"
)

// DefaultPassword is the keystore password the original SessionKeyServer
// used when neither -P, -PF nor -PP was given.
const DefaultPassword = "SessionKeyServer"

// maxPasswordFile bounds the size of a password file.
const maxPasswordFile = 64 << 10

// PromptFunc asks the operator for a password without echoing it and
// returns what was typed, without the line ending. The default reads the
// controlling terminal; tests substitute their own with WithPrompt.
type PromptFunc func(prompt string) ([]byte, error)

// readPasswordFile returns the first line of the file at path (the -PF
// option), refusing a file that group or others may read.
func readPasswordFile(path string) ([]byte, error) {
	b, err := secretfile.ReadOf("password file", path)
	if err != nil {
		return nil, err
	}
	if len(b) > maxPasswordFile {
		return nil, fmt.Errorf("password file %s is larger than %d bytes; it should hold the password on its first line", path, maxPasswordFile)
	}
	pw, err := firstLine(b)
	if err != nil {
		return nil, fmt.Errorf("password file %s: %w", path, err)
	}
	return pw, nil
}

// firstLine returns b up to the first line ending (\n, \r\n or a lone \r,
// as Java's BufferedReader.readLine, which the original used, accepts).
// Spaces are part of the password and kept. An empty first line is an
// error: an empty keystore password is almost always a mistake.
func firstLine(b []byte) ([]byte, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 BOM from Windows editors
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return nil, errors.New("first line is empty")
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, errors.New("first line contains a NUL byte (is it a binary file?)")
	}
	return bytes.Clone(b), nil
}

// PromptTerminal is the default PromptFunc (the -PP option). It writes the
// prompt to and reads the password from /dev/tty, or, without one, from
// standard input when that is a terminal; echo is off while typing.
func PromptTerminal(prompt string) ([]byte, error) {
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		defer tty.Close()
		return promptOn(tty, tty, prompt)
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		return promptOn(os.Stdin, os.Stderr, prompt)
	}
	return nil, fmt.Errorf("%w: the password prompt (-PP) needs a terminal, but there is no /dev/tty and standard input is not a terminal; use -PF <file> or tls.password_file instead", ErrNoTerminal)
}

func promptOn(in *os.File, out io.Writer, prompt string) ([]byte, error) {
	fmt.Fprint(out, prompt)
	pw, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return nil, fmt.Errorf("cannot read the password from the terminal: %w", err)
	}
	return pw, nil
}
