package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"
)

// session is what "sks login" keeps in the user's cache directory.
type session struct {
	Server string `json:"server"`
	Realm  string `json:"realm"`
	User   string `json:"user"`
	Source string `json:"source"`
	Token  string `json:"token"`
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

var httpClient = &http.Client{Timeout: 30 * time.Second}

// post sends a form (never a query string: the password and token stay out
// of URLs and access logs) and returns status and body.
func post(ctx context.Context, server, path string, form url.Values) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", fmt.Errorf("bad server URL %q: %w", server, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("cannot reach %s: %w", server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("cannot read answer of %s: %w", server, err)
	}
	return resp.StatusCode, string(b), nil
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sks login [--realm R] [--server URL] [--module M] [user]")
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
	pw, err := readTTYPassword(fmt.Sprintf("Password for %s in realm %s: ", name, *realm))
	if err != nil {
		return err
	}
	form := url.Values{"realm": {*realm}, "user": {name}, "pwd": {pw}}
	if *module != "" {
		form.Set("module", *module)
	}
	status, body, err := post(ctx, *server, "/auth_token", form)
	if err != nil {
		return err
	}
	switch status {
	case http.StatusOK:
	case http.StatusForbidden:
		return errors.New("login failed: wrong user or password")
	default:
		return fmt.Errorf("login failed: server answered %d %s", status, strings.TrimSpace(body))
	}
	lines := strings.Split(body, "\n")
	if len(lines) < 3 || lines[0] == "" {
		return errors.New("login failed: unexpected answer from the server")
	}
	s := session{Server: *server, Realm: *realm, Token: lines[0], User: lines[1], Source: lines[2]}
	path, err := saveSession(s)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "logged in as %s (source %s) in realm %s; session in %s\n", s.User, s.Source, s.Realm, path)
	return nil
}

func runLogout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return errors.New("usage: sks logout")
	}
	s, path, err := loadSession()
	if err != nil {
		return err
	}
	status, body, err := post(ctx, s.Server, "/revoke", url.Values{"realm": {s.Realm}, "token": {s.Token}})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("cannot revoke the session: server answered %d %s (session kept in %s)", status, strings.TrimSpace(body), path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("session revoked but cannot delete %s: %w", path, err)
	}
	if strings.TrimSpace(body) == "OK" {
		fmt.Fprintf(stdout, "logged out %s from realm %s\n", s.User, s.Realm)
	} else {
		fmt.Fprintf(stdout, "session of %s was no longer valid; removed it\n", s.User)
	}
	return nil
}

func runWhoami(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return errors.New("usage: sks whoami")
	}
	s, _, err := loadSession()
	if err != nil {
		return err
	}
	status, body, err := post(ctx, s.Server, "/valid", url.Values{"realm": {s.Realm}, "token": {s.Token}})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("cannot check the session: server answered %d %s", status, strings.TrimSpace(body))
	}
	fmt.Fprintf(stdout, "%s", body)
	if !strings.HasSuffix(body, "\n") {
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "realm %s at %s\n", s.Realm, s.Server)
	return nil
}
