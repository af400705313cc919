package cmd

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/sks-server/sks/authn/static"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/jwtauth"
	"github.com/sks-server/sks/secretfile"
	"github.com/sks-server/sks/tokens"
)

// runCopyKeys copies per-identity keys from one login source to another, as
// the original's CopyKeys did, so that data encrypted under a user's key
// stays readable after the site changes login backend (e.g. pam to
// auth/ldap). The target identity is the source identity with its source
// line replaced; its attribute lines (uid=, gid=) are kept unless
// -drop-attrs is given. Keys are global per identity, as in the original,
// so there is no realm to choose; -realm is accepted and ignored for
// scripts written for earlier versions.
func runCopyKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("copy-keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("d", "", "token store directory (required; sks must not be running on it)")
	realm := fs.String("realm", "", "ignored: keys are global per identity")
	from := fs.String("from", "", "source to copy from, e.g. pam (required)")
	to := fs.String("to", "", "source to copy to, e.g. auth/ldap (required)")
	overwrite := fs.Bool("overwrite", false, "replace keys the target already has")
	dropAttrs := fs.Bool("drop-attrs", false, "leave out uid=/gid= lines in the target identity")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *dir == "" || *from == "" || *to == "" {
		fs.Usage()
		return errors.New("copy-keys needs -d, -from and -to")
	}
	if *realm != "" {
		fmt.Fprintf(stderr, "copy-keys: -realm %s ignored: keys are global per identity, in every realm\n", *realm)
	}
	cfg := conf.Default()
	cfg.DataDir = *dir
	store, err := openStore(cfg, nil)
	if err != nil {
		return err
	}
	defer store.Close()
	copied, skipped, err := CopyKeys(ctx, store, *from, *to, *overwrite, *dropAttrs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %d keys from %s to %s; %d left alone (target has a key; -overwrite replaces)\n", copied, *from, *to, skipped)
	return nil
}

// CopyKeys copies every key whose identity has source from to the same
// identity with source to.
func CopyKeys(ctx context.Context, store tokens.Store, from, to string, overwrite, dropAttrs bool) (copied, skipped int, err error) {
	type pair struct {
		id  string
		key []byte
	}
	var todo []pair
	err = store.ForEachKey(ctx, func(identity string, key []byte) error {
		lines := strings.SplitAfter(identity, "\n")
		if len(lines) < 2 || lines[1] != from+"\n" {
			return nil
		}
		lines[1] = to + "\n"
		if dropAttrs {
			lines = lines[:2]
		}
		todo = append(todo, pair{strings.Join(lines, ""), key})
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("cannot list keys: %w", err)
	}
	for _, p := range todo {
		if !overwrite {
			if _, err := store.GetKey(ctx, p.id); err == nil {
				skipped++
				continue
			} else if !errors.Is(err, tokens.ErrNotFound) {
				return copied, skipped, err
			}
		}
		if err := store.PutKey(ctx, p.id, p.key); err != nil {
			return copied, skipped, fmt.Errorf("cannot write key: %w", err)
		}
		copied++
	}
	return copied, skipped, nil
}

// readPassword reads a password without echo from the terminal, or a line
// from stdin when it is not a terminal.
func readPassword(prompt string, stderr io.Writer) (string, error) {
	if term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("cannot read password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func runHashPassword(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	pw, err := readPassword("Password: ", stderr)
	if err != nil {
		return err
	}
	if pw == "" {
		return errors.New("empty password")
	}
	h, err := static.Hash(pw)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h)
	return nil
}

func runGenKeypair(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen-keypair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory for the key files")
	alg := fs.String("alg", "ES256", "ES256, RS256 or EdDSA")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	priv, pub, err := jwtauth.GenKeypair(*dir, *alg)
	if err != nil {
		return err
	}
	// The config is read from another directory than the shell's: print
	// absolute paths, as the config must name them.
	priv, pub = absPath(priv), absPath(pub)
	fmt.Fprintf(stdout, "private key: %s (mode 600)\npublic key:  %s\nset [jwt] signing_key = %q\n", priv, pub, priv)
	return nil
}

// absPath returns path made absolute, or path itself if that fails.
func absPath(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}

func runGenerateSecret(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate-secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the secret to this new file (mode 600) instead of printing it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sks generate-secret [--out FILE]\n\n"+
			"Prints a strong random secret (a master token, an admin token), or writes it\n"+
			"to a new file only its owner can read and prints the file's absolute path.")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (write the file with --out FILE)", fs.Arg(0))
	}
	secret := jwtauth.GenerateSecret()
	if *out == "" {
		fmt.Fprintln(stdout, secret)
		return nil
	}
	if err := writeSecretFile(*out, secret+"\n"); err != nil {
		return err
	}
	p := absPath(*out)
	fmt.Fprintf(stdout, "secret written to %s (mode 600)\nname it in the config, e.g. [jwt] master_token_file = %q or [admin] token_file = %q\n", p, p, p)
	return nil
}

// writeSecretFile creates path with mode 0600 and writes body; it refuses
// to replace an existing file, whose secret may be in use.
func writeSecretFile(path, body string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create secret file: %w (an existing file is never replaced)", err)
	}
	// The umask cannot widen 0600, but a file system may ignore modes.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("cannot restrict %s to mode 600: %w", path, err)
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

func runObtainToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("obtain-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverURL := fs.String("server-url", "https://localhost:4431", "sks server")
	typ := fs.String("type", "client", "token type claim")
	sub := fs.String("sub", "", "subject")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	masterFile := fs.String("master-file", "", "read the master token from the first line of this file (mode 600)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sks obtain-token --master-file FILE [--server-url URL] [--type T] [--sub S] [--ttl 1h]\n"+
			"       SKS_MASTER_TOKEN=... sks obtain-token [flags]\n\n"+
			"Mints a JWT with POST /token. The master token comes from --master-file or\n"+
			"$SKS_MASTER_TOKEN; on the command line (OPAL's form) it is visible to every\n"+
			"user in ps and shell history, and is deprecated.")
		fs.PrintDefaults()
	}
	// OPAL's CLI puts the master token first: obtain-token <master> --server-url=...
	var master string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		master, args = args[0], args[1:]
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if master == "" && fs.NArg() > 0 {
		master = fs.Arg(0)
	}
	switch {
	case master != "":
		fmt.Fprintln(stderr, "sks obtain-token: warning: a master token on the command line is visible in ps and shell history; use --master-file FILE or SKS_MASTER_TOKEN (deprecated form)")
		if *masterFile != "" {
			return errors.New("give the master token once: on the command line or with --master-file")
		}
	case *masterFile != "":
		var err error
		if master, err = secretfile.FirstLineOf("master token file", *masterFile); err != nil {
			return err
		}
	default:
		master = os.Getenv("SKS_MASTER_TOKEN")
	}
	if master == "" {
		fs.Usage()
		return errors.New("no master token: give --master-file FILE or set SKS_MASTER_TOKEN")
	}
	req := jwtauth.TokenRequest{Type: *typ, Sub: *sub, TTL: jwtauth.TTL{Duration: *ttl}}
	resp, err := jwtauth.ObtainToken(ctx, master, *serverURL, req, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, resp.Token)
	return nil
}

func runOfflineToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("c", "/etc/sks/sks.toml", "configuration file with the [jwt] signing key")
	roles := fs.String("roles", "", "comma-separated roles")
	ttl := fs.Duration("ttl", 0, "lifetime (default: jwt.max_ttl)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: sks token [-c config] [-roles a,b] [-ttl 1h] <user>")
	}
	cfg, err := conf.Load(*config)
	if err != nil {
		return err
	}
	var rs []string
	if *roles != "" {
		rs = strings.Split(*roles, ",")
	}
	tok, _, err := jwtauth.OfflineToken(cfg.JWT, fs.Arg(0), rs, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func runAPIKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apikey new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keys.properties", "API keys file (created with mode 600)")
	if len(args) == 0 || args[0] != "new" {
		return errors.New("usage: sks apikey new [-f keys.properties] <key id>")
	}
	if help, err := parseFlags(fs, args[1:]); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: sks apikey new [-f keys.properties] <key id>")
	}
	key, err := jwtauth.NewAPIKey(*file, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s=%s\n", fs.Arg(0), key)
	return nil
}

// runMigrate copies a whole store between badger and Redis.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "badger:<dir> or redis://... (required)")
	to := fs.String("to", "", "badger:<dir> or redis://... (required)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return errors.New("usage: sks migrate --from badger:<dir> --to redis://host:6379/0 (or the other way); stop sks first")
	}
	src, err := openDumper(ctx, *from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openDumper(ctx, *to)
	if err != nil {
		return err
	}
	defer dst.Close()
	start := time.Now()
	n, err := tokens.Copy(ctx, src, dst, func(n int) {
		fmt.Fprintf(stderr, "migrate: %d entries copied (%s)\n", n, time.Since(start).Round(time.Second))
	})
	if err != nil {
		return fmt.Errorf("migrate stopped after %d entries: %w (entries copied so far stay in %s; running migrate again overwrites them)", n, err, redactURL(*to))
	}
	fmt.Fprintf(stdout, "copied %d entries from %s to %s\n", n, *from, redactURL(*to))
	return nil
}

type dumpStore interface {
	tokens.Dumper
	Close() error
}

func openDumper(ctx context.Context, spec string) (dumpStore, error) {
	switch {
	case strings.HasPrefix(spec, "badger:"):
		cfg := conf.Default()
		cfg.DataDir = strings.TrimPrefix(spec, "badger:")
		return openStore(cfg, nil)
	case strings.HasPrefix(spec, "redis://"), strings.HasPrefix(spec, "rediss://"):
		o, err := tokens.ParseRedisURL(spec)
		if err != nil {
			return nil, err
		}
		if o.CacheSize == 0 {
			o.CacheSize = -1 // a copy reads each token once: no cache, no tracking connection
		}
		return tokens.OpenRedis(ctx, o, nil)
	}
	return nil, fmt.Errorf("store %q: write badger:<dir> or redis://host:port/db", redactURL(spec))
}

// redactURL hides a password in a redis URL.
func redactURL(s string) string {
	if i := strings.Index(s, "@"); i > 0 {
		if j := strings.Index(s, "://"); j > 0 && j < i {
			return s[:j+3] + "***" + s[i:]
		}
	}
	return s
}
