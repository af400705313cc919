// Package cmd is the sks command line: the original SessionKeyServer's flags
// (which start the server, as before) and subcommands for everything else.
package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Version is the sks release.
var Version = "0.1.0"

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":           {"run the server (the default; takes the original's flags)", runServe},
		"version":         {"print the version", runVersion},
		"copy-keys":       {"copy /gen_key keys from one login source to another (the original's CopyKeys)", runCopyKeys},
		"hash-password":   {"print a bcrypt hash for a static module's users", runHashPassword},
		"gen-keypair":     {"write a new JWT signing key pair", runGenKeypair},
		"generate-secret": {"print a strong random secret (a master token)", runGenerateSecret},
		"obtain-token":    {"mint a JWT from a server with the master token", runObtainToken},
		"token":           {"mint a JWT offline from the configured signing key", runOfflineToken},
		"jwks-key":        {"print the signing key's public JWK, or -raw for ClusterCockpit", runJWKSKey},
		"apikey":          {"manage HMAC API keys: apikey new <id>", runAPIKey},
		"migrate":         {"copy a token store between badger and Redis", runMigrate},
		"repair":          {"salvage a damaged badger store into a new directory", runRepair},
		"login":           {"log in (password asked on the terminal) and keep the session token", runLogin},
		"logout":          {"revoke the kept session and delete it (--all: every session of the user)", runLogout},
		"whoami":          {"check the kept session: YES, SUPERCEDED or NO and the identity", runWhoami},
		"unban":           {"lift a brute-force ban of a user or an address (admin)", runUnban},
		"sessions":        {"list or revoke a user's sessions (admin): sessions list|revoke --realm R USER", runSessions},
		"check-config":    {"check a configuration file: every error with its line (--connect: backends too)", runCheckConfig},
	}
}

// Run runs the sks command line. Without a subcommand, or with a first
// argument that is a flag, it serves, so that the original's command lines
// (SessionKeyServer -d db -p 4431 ...) work unchanged.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(ctx, nil, stdout, stderr)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if wantsHelp(args) {
			// Asked for: the usage goes to stdout.
			stderr = stdout
		}
		return runServe(ctx, args, stdout, stderr)
	}
	if args[0] == "help" {
		if len(args) > 1 {
			if _, ok := cmds[args[1]]; ok {
				return Run(ctx, []string{args[1], "-h"}, stdout, stderr)
			}
		}
		usage(stdout, cmds)
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown command %q", args[0])
	}
	if wantsHelp(args[1:]) {
		if printHelp(stdout, args[0]) {
			return nil
		}
		// Commands with flags print their own usage; asked for, it goes to stdout.
		stderr = stdout
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: sks [serve] [flags]    (sks serve -h for the flags)\n       sks <command> [args]   (sks <command> -h for its usage)\n       sks --version\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, cmds[n].summary)
	}
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "sks %s (SessionKeyServer 1.5 protocol)\n", Version)
	return nil
}

// parseFlags parses fs and turns -h into a clean exit.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	return false, err
}
