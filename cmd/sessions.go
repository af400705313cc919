package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/client"
	"github.com/sks-server/sks/secretfile"
)

const sessionsUsage = `usage: sks sessions list   [--realm R] [--server URL] [--admin-token-file FILE] [--json] USER
       sks sessions revoke [--realm R] [--server URL] [--admin-token-file FILE] USER

list shows USER's current sessions in realm R: a short hash of each token
(the one audit lines show; never the token), when it was issued, when it
expires and how it was obtained. revoke ends them all ("sign out
everywhere" for USER). Superseded tokens are not sessions and are not shown.

Both are admin calls to a running server: from the server's host they need
no credential while [admin] allow_loopback is true (the default); from
elsewhere give the admin bearer token file ([admin] token_file).
Environment: SKS_REALM, SKS_SERVER, SKS_ADMIN_TOKEN_FILE.`

// runSessions is "sks sessions list|revoke": an admin lists or revokes a
// user's sessions through the server's /sessions and /revoke_sessions.
func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, sessionsUsage)
		return errors.New("sks sessions: say list or revoke")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, sessionsUsage)
		return nil
	case "list", "revoke":
	default:
		fmt.Fprintln(stderr, sessionsUsage)
		return fmt.Errorf("sks sessions: unknown action %q (list or revoke)", args[0])
	}
	action := args[0]
	fs := flag.NewFlagSet("sks sessions "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	realm := fs.String("realm", os.Getenv("SKS_REALM"), "realm (default $SKS_REALM)")
	server := fs.String("server", defaultServer(), "server URL (default $SKS_SERVER or http://127.0.0.1:4431)")
	tokenFile := fs.String("admin-token-file", os.Getenv("SKS_ADMIN_TOKEN_FILE"), "file holding the admin bearer token, first line, mode 600 (default $SKS_ADMIN_TOKEN_FILE; none: loopback)")
	caFile := fs.String("ca-file", "", "PEM CA certificates to trust for an https:// server")
	asJSON := fs.Bool("json", false, "list: print the server's JSON answer")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), sessionsUsage); fs.PrintDefaults() }
	for _, a := range args[1:] {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout) // asked for: usage on stdout, exit 0
			fs.Usage()
			return nil
		}
	}
	// Flags may come before or after USER.
	var rest []string
	for a := args[1:]; ; {
		if help, err := parseFlags(fs, a); help || err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		a = fs.Args()[1:]
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, sessionsUsage)
		return fmt.Errorf("sks sessions %s: give exactly one user", action)
	}
	user := rest[0]
	if err := authn.ValidUser(user); err != nil {
		return fmt.Errorf("sks sessions %s: user %q: %w", action, user, err)
	}
	if *realm == "" {
		return errors.New("no realm: give --realm or set SKS_REALM")
	}
	var adminToken string
	if *tokenFile != "" {
		var err error
		if adminToken, err = secretfile.FirstLine(*tokenFile); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	c, err := newClient(*server, *caFile)
	if err != nil {
		return err
	}
	explain := func(err error) error {
		if errors.Is(err, client.ErrForbidden) {
			return fmt.Errorf("sks sessions %s: the server wants an admin credential (--admin-token-file, or run on the server's host with [admin] allow_loopback): %w", action, err)
		}
		if errors.Is(err, client.ErrNotFound) {
			return fmt.Errorf("sks sessions %s: the server at %s has no session endpoints (an older sks?): %w", action, *server, err)
		}
		return answerError("sks sessions "+action, *server, err)
	}
	if action == "revoke" {
		n, err := c.RevokeSessions(ctx, *realm, user, adminToken)
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "revoked %d %s of %s in realm %s\n", n, plural(n, "session"), user, *realm)
		return nil
	}
	ss, err := c.Sessions(ctx, *realm, user, adminToken)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(map[string]any{"realm": *realm, "user": user, "sessions": ss}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	if len(ss) == 0 {
		fmt.Fprintf(stdout, "%s has no current sessions in realm %s\n", user, *realm)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tISSUED (UTC)\tEXPIRES (UTC)\tSOURCE")
	for _, s := range ss {
		exp := "never"
		if !s.Expires.IsZero() {
			exp = s.Expires.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ID, s.Issued.UTC().Format(time.DateTime), exp, s.Source)
	}
	return tw.Flush()
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// logoutAll is "sks logout --all": the kept session's token ends every
// current session of its user, then the session file is deleted. A kept
// token that is no longer current cannot do that; the file is kept so that
// the user sees why.
func logoutAll(ctx context.Context, c *client.Client, s session, path string, stdout io.Writer) error {
	n, err := c.RevokeAll(ctx, s.Realm, s.Token)
	switch {
	case errors.Is(err, client.ErrForbidden):
		return fmt.Errorf("cannot sign out everywhere: the kept session of %s is no longer current (superseded, revoked or expired); run sks login, then sks logout --all", s.User)
	case errors.Is(err, client.ErrNotFound):
		return fmt.Errorf("cannot sign out everywhere: the server at %s has no /revoke_all (an older sks or the Java original); session kept in %s", s.Server, path)
	case err != nil:
		return fmt.Errorf("%w (session kept in %s)", answerError("cannot sign out everywhere", s.Server, err), path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("signed out everywhere but cannot delete %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "signed out everywhere: ended %d %s of %s in realm %s\n", n, plural(n, "session"), s.User, s.Realm)
	return nil
}
