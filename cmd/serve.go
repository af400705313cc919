package cmd

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/sks-server/sks/authn/static"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/jwtauth"
	"github.com/sks-server/sks/realms"
	"github.com/sks-server/sks/secretfile"
	"github.com/sks-server/sks/server"
	sksTLS "github.com/sks-server/sks/tls"
	"github.com/sks-server/sks/tokens"
	"github.com/sks-server/sks/web"
)

// serveFlags are the original SessionKeyServer's flags plus sks's own.
type serveFlags struct {
	fs                         *flag.FlagSet
	config                     string
	dataDir, addr, pamApp, def string
	port                       int
	jaas, krb5conf             string
	keystore, password, pwFile string
	prompt, demo               bool
	logLevel, adminTokenFile   string
	logFormat                  string
}

func newServeFlags(stderr io.Writer) *serveFlags {
	f := &serveFlags{fs: flag.NewFlagSet("sks", flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "c", "", "configuration file (TOML); flags override it")
	fs.StringVar(&f.config, "config", "", "same as -c")
	fs.StringVar(&f.dataDir, "d", "", "token store directory (badger); without it tokens live in memory only")
	fs.StringVar(&f.addr, "l", "", "address to listen on (default: all)")
	fs.IntVar(&f.port, "p", 4431, "port to listen on")
	fs.StringVar(&f.pamApp, "pam-app", "", "PAM service for realms without a section (default: the realm name, if /etc/pam.d has it)")
	fs.StringVar(&f.def, "default", "", "default login module (default pam)")
	fs.StringVar(&f.jaas, "jaas", "", "not supported: JAAS configurations become [modules.NAME] sections in the config file")
	fs.StringVar(&f.krb5conf, "krb5conf", "", "krb5.conf for Kerberos modules")
	fs.StringVar(&f.keystore, "tls", "", "serve HTTPS from this keystore (PKCS12 or Java JKS) or PEM bundle")
	fs.StringVar(&f.password, "P", "", "keystore password (default SessionKeyServer)")
	fs.StringVar(&f.pwFile, "PF", "", "read the keystore password from the first line of this file (mode 600 or 400)")
	fs.BoolVar(&f.prompt, "PP", false, "prompt for the keystore password on the terminal")
	fs.BoolVar(&f.demo, "demo", false, "enable the built-in demo realm (user demo, password written to <data dir>/demo-password)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "", "text (default) or json: one JSON object a line")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin bearer token for /stored_token from other hosts")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sks [serve] [-c config.toml] [-d <db-path>] [-l <address>] [-p <port>] [-pam-app <name>]\n"+
			"           [-default <module>] [-krb5conf <krb5.conf>] [-tls <keystore> [-P <password> | -PF <file> | -PP]] [-demo]\n"+
			"           [-log-level debug|info|warn|error] [-log-format text|json] [-h]")
		fs.PrintDefaults()
	}
	return f
}

// apply loads the config file and lays the flags that were given over it.
func (f *serveFlags) apply() (*conf.Config, error) {
	if f.jaas != "" {
		return nil, errors.New("-jaas is not supported: describe each JAAS login configuration as a [modules.NAME] section (type ldap or kerberos) in the config file given with -c; see README.md")
	}
	cfg := conf.Default()
	if f.config != "" {
		var err error
		if cfg, err = conf.Load(f.config); err != nil {
			return nil, err
		}
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["d"] {
		cfg.DataDir = f.dataDir
	}
	if set["l"] || set["p"] {
		host, port, _ := net.SplitHostPort(cfg.Listen)
		if set["l"] {
			host = f.addr
			if host == "*" {
				host = ""
			}
		}
		if set["p"] || port == "" {
			port = strconv.Itoa(f.port)
		}
		cfg.Listen = net.JoinHostPort(host, port)
	}
	if set["pam-app"] {
		cfg.PAMApp = f.pamApp
	}
	if set["default"] {
		cfg.DefaultModule = f.def
	}
	if set["krb5conf"] {
		cfg.Krb5Conf = f.krb5conf
	}
	if set["tls"] {
		cfg.TLS.Keystore = f.keystore
	}
	// One password source: a flag replaces whatever the file said.
	if set["P"] || set["PF"] || set["PP"] {
		cfg.TLS.Password, cfg.TLS.PasswordFile, cfg.TLS.PasswordPrompt = f.password, f.pwFile, f.prompt
	}
	if set["demo"] {
		cfg.Demo = f.demo
	}
	if set["log-level"] {
		cfg.LogLevel = f.logLevel
	}
	if set["log-format"] {
		cfg.LogFormat = f.logFormat
	}
	if set["admin-token-file"] {
		cfg.Admin.TokenFile = f.adminTokenFile
	}
	var all conf.ProblemList
	for _, err := range []error{cfg.Validate(), cfg.ValidateModules()} {
		var pl conf.ProblemList
		if errors.As(err, &pl) {
			all = append(all, pl...)
		}
	}
	if len(all) > 0 {
		return nil, all
	}
	return cfg, nil
}

// newLogger logs at level and above to w, as text (key=value) or, with
// format "json", one JSON object a line.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	o := &slog.HandlerOptions{Level: l}
	if strings.EqualFold(format, "json") {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newServeFlags(stderr)
	if help, err := parseFlags(f.fs, args); help || err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with -; see sks -h)", f.fs.Arg(0))
	}
	cfg, err := f.apply()
	if err != nil {
		return err
	}
	return Serve(ctx, cfg, stdout, newLogger(stderr, cfg.LogLevel, cfg.LogFormat))
}

// openStore opens the badger store of cfg.
func openStore(cfg *conf.Config, log *slog.Logger) (*tokens.Badger, error) {
	return openStoreWith(cfg, log, false)
}

// openStoreWith opens the badger store of cfg; salvage opens a store that
// failed its integrity check (sks repair).
func openStoreWith(cfg *conf.Config, log *slog.Logger, salvage bool) (*tokens.Badger, error) {
	var key []byte
	if cfg.EncryptionKeyFile != "" {
		b, err := secretfile.Read(cfg.EncryptionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("encryption key: %w", err)
		}
		b = []byte(strings.TrimSpace(string(b)))
		if d, err := hex.DecodeString(string(b)); err == nil {
			b = d
		}
		switch len(b) {
		case 16, 24, 32:
			key = b
		default:
			return nil, fmt.Errorf("encryption key %s: need 16, 24 or 32 bytes (or as many hex-encoded), got %d; make one with: head -c 32 /dev/urandom > %s", cfg.EncryptionKeyFile, len(b), cfg.EncryptionKeyFile)
		}
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create data directory: %w", err)
		}
	}
	var minFree int64 // zero: tokens.DefaultMinFree
	switch {
	case cfg.DataMinFreeMB > 0:
		minFree = int64(cfg.DataMinFreeMB) << 20
	case cfg.DataMinFreeMB < 0:
		minFree = -1
	}
	return tokens.OpenBadger(tokens.BadgerOptions{Dir: cfg.DataDir, EncryptionKey: key, Logger: log, MinFree: minFree, Salvage: salvage})
}

// setupDemo adds the "demo" realm: one user "demo" whose password is kept
// in a file beside the store (never printed or logged).
func setupDemo(cfg *conf.Config, r *realms.Router, stdout io.Writer) error {
	dir := cfg.DataDir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("demo realm: no data directory and no cache directory: %w", err)
		}
		dir = filepath.Join(cache, "sks")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("demo realm: %w", err)
		}
	}
	path := filepath.Join(dir, "demo-password")
	pw, err := secretfile.FirstLine(path)
	if errors.Is(err, os.ErrNotExist) {
		pw = jwtauth.GenerateSecret()[:20]
		if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
			return fmt.Errorf("demo realm: cannot write %s: %w", path, err)
		}
	} else if err != nil {
		return fmt.Errorf("demo realm: %w", err)
	}
	h, err := static.Hash(pw)
	if err != nil {
		return err
	}
	m, err := static.Open(static.Config{Users: map[string]string{"demo": h}, Roles: map[string][]string{"demo": {"demo"}}}, nil)
	if err != nil {
		return err
	}
	r.AddModule("demo", m)
	r.AddRealm(realms.Realm{Name: "demo", Modules: []string{"demo"}, Default: "demo"})
	fmt.Fprintf(stdout, "demo realm: user demo, password in %s\n", path)
	return nil
}

// listen returns systemd's socket if started by socket activation, else a
// new listener on cfg.Listen.
func listen(cfg *conf.Config) (net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("cannot use systemd sockets: %w", err)
	}
	if len(ls) > 0 && ls[0] != nil {
		return ls[0], nil
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w (is another sks or SessionKeyServer running? choose another port with -p)", cfg.Listen, err)
	}
	return ln, nil
}

// Serve runs the server until ctx ends or SIGTERM/SIGINT arrives, then stops
// gracefully: in-flight requests finish and the store is closed cleanly.
func Serve(ctx context.Context, cfg *conf.Config, stdout io.Writer, log *slog.Logger) error {
	var store tokens.Store
	var err error
	if r := cfg.Tokens.Redis; r != nil {
		store, err = tokens.OpenRedis(ctx, *r, log)
	} else {
		store, err = openStore(cfg, log)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	router, err := realms.Open(cfg, log)
	if err != nil {
		return err
	}
	defer router.Close()
	if cfg.Demo {
		if err := setupDemo(cfg, router, stdout); err != nil {
			return err
		}
	}
	tokenService := tokens.NewService(store)
	clients, relays, err := proxySettings(cfg, log)
	if err != nil {
		return err
	}
	opts := server.Options{
		Clients:             clients,
		Relays:              relays,
		Tokens:              tokenService,
		Realms:              router,
		Logger:              log,
		AllowLoopbackAdmin:  cfg.Admin.LoopbackAllowed(),
		MaxConcurrentLogins: cfg.MaxConcurrentLogins,
		LoginTimeout:        cfg.LoginTimeout.Duration,
		MaxBodyBytes:        cfg.HTTP.MaxBodyBytes,
		Mount:               map[string]http.Handler{},
	}
	if cfg.Admin.TokenFile != "" {
		if opts.AdminToken, err = secretfile.FirstLine(cfg.Admin.TokenFile); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	issuer, err := jwtauth.Open(cfg.JWT, log)
	if err != nil {
		return fmt.Errorf("jwt: %w", err)
	}
	opts.AdminChecks = append(opts.AdminChecks, issuer.AdminAuth)
	opts.Mount["/.well-known/jwks.json"] = issuer.JWKSHandler()
	opts.Mount["/jwks.json"] = issuer.JWKSHandler()
	opts.Mount["/token"] = issuer.MintHandler()
	if issuer.Enabled() {
		opts.SessionJWT = issuer.SessionJWT
	}

	// The web handlers log in through the protocol server (so they share its
	// throttling, audit and timeouts); the server is built after its Mount
	// map, hence the variable the closure reads.
	var sks *server.Server
	if cfg.Web.Enabled {
		wh, err := web.New(web.Options{
			Tokens:  tokenService,
			Config:  cfg.Web,
			Clients: clients,
			Logger:  log,
			Login: func(ctx context.Context, realm, user, pwd, client string) (string, int) {
				tok, _, status := sks.Login(ctx, realm, "", user, pwd, client)
				return tok, status
			},
			RevokeAll: func(ctx context.Context, realm, token, client string) (int, int) {
				return sks.RevokeAll(ctx, realm, token, client)
			},
			Revoke: func(ctx context.Context, realm, token, client string) (bool, error) {
				return sks.Revoke(ctx, realm, token, client)
			},
		})
		if err != nil {
			return err
		}
		for path, h := range wh.Paths() {
			opts.Mount[path] = h
		}
	}

	var loader *sksTLS.Loader
	if cfg.TLS.Enabled() {
		if loader, err = sksTLS.Load(cfg.TLS, sksTLS.WithLogger(log)); err != nil {
			return err
		}
		opts.AdminChecks = append(opts.AdminChecks, func(r *http.Request) (string, bool) {
			return "client-certificate", sksTLS.ClientCertVerified(r)
		})
	}

	var notAfter func() time.Time
	if loader != nil {
		notAfter = loader.NotAfter
	}
	o, err := setupOps(ctx, cfg, store, &opts, notAfter, log)
	if err != nil {
		return err
	}
	defer o.close()
	health := setupHealth(store, router, &opts, o, func(r *http.Request) bool { return sks.IsAdmin(r) }, log)

	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	sks = server.New(opts)
	srv := &http.Server{
		Handler:           sks,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.Duration,
		ReadTimeout:       cfg.HTTP.ReadTimeout.Duration,
		WriteTimeout:      cfg.HTTP.WriteTimeout.Duration,
		IdleTimeout:       cfg.HTTP.IdleTimeout.Duration,
		MaxHeaderBytes:    cfg.HTTP.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go health.Watch(ctx, healthInterval)
	if loader != nil {
		srv.TLSConfig = loader.Config()
		go loader.Watch(ctx, 0)
	}
	ln = server.StrictFraming(srv, ln, loader != nil, log)
	errc := make(chan error, 1)
	go func() {
		if loader != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	fmt.Fprintf(stdout, "SessionKeyServer 1.5 is listening on %s\n", displayAddr(ln.Addr()))
	log.Info("sks started", "version", Version, "addr", ln.Addr().String(), "tls", loader != nil, "store", storeName(cfg))
	daemon.SdNotify(false, daemon.SdNotifyReady)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("server stopped: %w", err)
		case s := <-sig:
			if s == syscall.SIGHUP {
				daemon.SdNotify(false, daemon.SdNotifyReloading)
				o.reopen()
				if loader != nil {
					if err := loader.Reload(); err == nil {
						log.Info("tls certificate reloaded")
					}
				}
				// JWT signing key, retired keys and master token; a broken
				// file keeps the previous keys (Reload logs why).
				issuer.Reload()
				daemon.SdNotify(false, daemon.SdNotifyReady)
				continue
			}
			log.Info("stopping", "signal", s.String())
		case <-ctx.Done():
			log.Info("stopping")
		}
		daemon.SdNotify(false, daemon.SdNotifyStopping)
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := srv.Shutdown(sctx)
		scancel()
		if err != nil {
			log.Warn("shutdown did not finish in time", "err", err)
		}
		return nil
	}
}

func storeName(cfg *conf.Config) string {
	if cfg.Tokens.Redis != nil {
		return "redis"
	}
	if cfg.DataDir == "" {
		return "memory"
	}
	return "badger:" + cfg.DataDir
}

// displayAddr writes the address as the original did: "*" for all addresses.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "*"
	}
	return host + ":" + port
}
