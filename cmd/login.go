package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/sks-server/sks/client"
)

// session is what "sks login" keeps in the user's cache directory.
type session struct {
	Server string `json:"server"`
	Realm  string `json:"realm"`
	User   string `json:"user"`
	Source string `json:"source"`
	Token  string `json:"token"`
	// CAFile is the login's --ca-file, used again by logout and whoami.
	CAFile string `json:"ca_file,omitempty"`
}

// sessionPath is $XDG_CACHE_HOME/sks/token (os.UserCacheDir).
func sessionPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a cache directory: %w", err)
	}
	return filepath.Join(dir, "sks", "token"), nil
}

func loadSession() (session, string, error) {
	path, err := sessionPath()
	if err != nil {
		return session{}, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return session{}, path, errors.New("not logged in (run: sks login)")
	}
	if err != nil {
		return session{}, path, fmt.Errorf("cannot read session: %w", err)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil || s.Token == "" {
		return session{}, path, fmt.Errorf("cannot read session %s: not an sks session file", path)
	}
	return s, path, nil
}

// saveSession writes the session with mode 0600 in a 0700 directory,
// through a temporary file so that a crash leaves no half-written token.
func saveSession(s session) (string, error) {
	path, err := sessionPath()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot restrict %s: %w", dir, err)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	f, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return "", fmt.Errorf("cannot write session: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", fmt.Errorf("cannot write session: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return "", fmt.Errorf("cannot write session: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("cannot write session: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("cannot write session: %w", err)
	}
	return path, nil
}

// newClient returns the sks client for server, with a bound long enough
// for a slow login backend; caFile, if set, holds the CA certificates to
// trust for an https:// server.
func newClient(server, caFile string) (*client.Client, error) {
	opts := []client.Option{client.WithTimeout(30 * time.Second)}
	if caFile != "" {
		opts = append(opts, client.WithCAFile(caFile))
	}
	return client.New(server, opts...)
}

// answerError explains a failed call: the server's refusal with its
// status and message, or that the server could not be reached.
func answerError(what, server string, err error) error {
	var e *client.Error
	if errors.As(err, &e) {
		return fmt.Errorf("%s: server answered %d %s", what, e.Status, e.Message)
	}
	return fmt.Errorf("%s: cannot reach %s: %w", what, server, err)
}

func defaultServer() string {
	if s := os.Getenv("SKS_SERVER"); s != "" {
		return s
	}
	return "http://127.0.0.1:4431"
}

// readTTYPassword prompts on the terminal (/dev/tty, so that stdin and stdout
// may be redirected) and reads without echo.
func readTTYPassword(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("cannot open the terminal to ask for the password: %w", err)
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("cannot read the password: %w", err)
	}
	return string(b), nil
}

func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sks login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	realm := fs.String("realm", os.Getenv("SKS_REALM"), "realm to log in to (default $SKS_REALM)")
	server := fs.String("server", defaultServer(), "server URL (default $SKS_SERVER or http://127.0.0.1:4431)")
	module := fs.String("module", "", "login module (default: the realm's)")
	caFile := fs.String("ca-file", os.Getenv("SKS_CA_FILE"), "PEM CA certificates to trust for an https:// server (default $SKS_CA_FILE; else the system's)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sks login [--realm R] [--server URL] [--ca-file FILE] [--module M] [user]")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *realm == "" {
		return errors.New("no realm: give --realm or set SKS_REALM")
	}
	name := fs.Arg(0)
	if name == "" {
		u, err := user.Current()
		if err != nil {
			return fmt.Errorf("no user given and cannot find the current user: %w", err)
		}
		name = u.Username
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(1))
	}
	c, err := newClient(*server, *caFile)
	if err != nil {
		return err
	}
	// A wrong URL or an untrusted certificate is found out before the
	// password is typed, not after.
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = c.Version(vctx)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot use server %s: %w (check --server, and --ca-file for a private CA)", *server, err)
	}
	pw, err := readTTYPassword(fmt.Sprintf("Password for %s in realm %s: ", name, *realm))
	if err != nil {
		return err
	}
	sess, err := c.Login(ctx, *realm, name, pw, *module)
	switch {
	case errors.Is(err, client.ErrForbidden):
		return errors.New("login failed: wrong user or password")
	case errors.Is(err, client.ErrProtocol):
		return errors.New("login failed: unexpected answer from the server")
	case err != nil:
		return answerError("login failed", *server, err)
	}
	s := session{Server: *server, Realm: *realm, Token: sess.Token, User: sess.Identity.User, Source: sess.Identity.Source, CAFile: absPathIf(*caFile)}
	path, err := saveSession(s)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "logged in as %s (source %s) in realm %s; session in %s\n", s.User, s.Source, s.Realm, path)
	return nil
}

func runLogout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sks logout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "sign out everywhere: end every current session of the user in the realm, not only this one")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: sks logout [--all]")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (usage: sks logout [--all])", fs.Arg(0))
	}
	s, path, err := loadSession()
	if err != nil {
		return err
	}
	c, err := newClient(s.Server, s.CAFile)
	if err != nil {
		return err
	}
	if *all {
		return logoutAll(ctx, c, s, path, stdout)
	}
	revoked, err := c.Revoke(ctx, s.Realm, s.Token)
	if err != nil {
		return fmt.Errorf("%w (session kept in %s)", answerError("cannot revoke the session", s.Server, err), path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("session revoked but cannot delete %s: %w", path, err)
	}
	if revoked {
		fmt.Fprintf(stdout, "logged out %s from realm %s\n", s.User, s.Realm)
	} else {
		fmt.Fprintf(stdout, "session of %s was no longer valid; removed it\n", s.User)
	}
	return nil
}

// errSessionNotCurrent makes "sks whoami" exit non-zero, so scripts can
// test "sks whoami >/dev/null && ...".
var errSessionNotCurrent = errors.New("the kept session is not current (run: sks login)")

func runWhoami(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sks whoami", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sks whoami\n\n"+
			"Checks the session kept by sks login: prints YES, SUPERCEDED or NO, the identity,\n"+
			"and when the session was issued and ends. Exit status 0 only for YES.")
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("usage: sks whoami")
	}
	s, _, err := loadSession()
	if err != nil {
		return err
	}
	c, err := newClient(s.Server, s.CAFile)
	if err != nil {
		return err
	}
	res, err := c.Valid(ctx, s.Realm, s.Token)
	if err != nil {
		return answerError("cannot check the session", s.Server, err)
	}
	// The protocol's answer, as /valid gives it.
	switch res.Status {
	case client.Valid:
		fmt.Fprintf(stdout, "YES\n%s\n", res.Identity.Text)
	case client.Superseded:
		fmt.Fprintf(stdout, "SUPERCEDED\n%s\n", res.Identity.Text)
	default:
		fmt.Fprintln(stdout, "NO")
	}
	if res.Status != client.Invalid {
		// Servers before /session answer 404: leave the times out.
		if si, err := c.SessionInfo(ctx, s.Realm, s.Token); err == nil && si.Status != client.Invalid {
			fmt.Fprintf(stdout, "issued  %s\n", si.Issued.Local().Format(time.RFC1123))
			if si.Expires.IsZero() {
				fmt.Fprintln(stdout, "expires never (no token_lifetime in this realm)")
			} else {
				fmt.Fprintf(stdout, "expires %s (in %s)\n", si.Expires.Local().Format(time.RFC1123), time.Until(si.Expires).Round(time.Second))
			}
		}
	}
	fmt.Fprintf(stdout, "realm %s at %s\n", s.Realm, s.Server)
	if res.Status != client.Valid {
		return errSessionNotCurrent
	}
	return nil
}

// absPathIf is absPath for a path that may be empty.
func absPathIf(path string) string {
	if path == "" {
		return ""
	}
	return absPath(path)
}
