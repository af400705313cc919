package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sks-server/sks/secretfile"
)

// runUnban lifts a brute-force ban through the server's admin endpoint
// POST /unban: "sks unban --realm R USER" or "sks unban --address ADDR".
// The admin credential is the [admin] token (--admin-token-file or
// SKS_ADMIN_TOKEN); without one only a loopback caller is admin.
func runUnban(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sks unban", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", defaultServer(), "sks server URL (or SKS_SERVER)")
	realm := fs.String("realm", "", "realm of the user")
	address := fs.String("address", "", "lift the ban of this client address (IPv6: its /64) instead of a user's")
	tokenFile := fs.String("admin-token-file", "", "file holding the [admin] token (or SKS_ADMIN_TOKEN); without one, only loopback is admin")
	caFile := fs.String("ca-file", "", "PEM CA certificates that sign the server's certificate")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: sks unban [--server URL] [--admin-token-file FILE] (--realm REALM USER | --address ADDR)")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	var realmArg, user, addr string
	switch {
	case *address != "" && fs.NArg() == 0:
		realmArg, addr = *realm, *address
	case *address == "" && fs.NArg() == 1 && *realm != "":
		realmArg, user = *realm, fs.Arg(0)
	default:
		fs.Usage()
		return errors.New("unban: give --realm REALM USER, or --address ADDR")
	}
	token := os.Getenv("SKS_ADMIN_TOKEN")
	if *tokenFile != "" {
		t, err := secretfile.FirstLine(*tokenFile)
		if err != nil {
			return fmt.Errorf("unban: admin token: %w", err)
		}
		token = t
	}
	c, err := newClient(*server, *caFile)
	if err != nil {
		return fmt.Errorf("unban: %w", err)
	}
	found, err := c.Unban(ctx, realmArg, user, addr, token)
	if err != nil {
		return answerError("unban", *server, err)
	}
	if !found {
		fmt.Fprintln(stdout, "nothing to lift: no ban or failures recorded")
		return nil
	}
	fmt.Fprintln(stdout, "ban lifted")
	return nil
}
