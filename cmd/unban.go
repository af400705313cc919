package cmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

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
	form := url.Values{}
	switch {
	case *address != "" && fs.NArg() == 0:
		form.Set("address", *address)
		if *realm != "" {
			form.Set("realm", *realm)
		}
	case *address == "" && fs.NArg() == 1 && *realm != "":
		form.Set("realm", *realm)
		form.Set("user", fs.Arg(0))
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
	hc := &http.Client{Timeout: 30 * time.Second}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("unban: cannot read ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("unban: no certificate in %s", *caFile)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*server, "/")+"/unban", strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("unban: bad server url: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("unban: cannot reach %s: %w", *server, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	answer := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unban: server answered %d %s", resp.StatusCode, answer)
	}
	if answer == "NONE" {
		fmt.Fprintln(stdout, "nothing to lift: no ban or failures recorded")
		return nil
	}
	fmt.Fprintln(stdout, "ban lifted")
	return nil
}
