// Package pam is the PAM login module: authentication and account
// management through libpam (github.com/msteinert/pam/v2, cgo).
package pam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"regexp"

	"github.com/msteinert/pam/v2"

	"github.com/sks-server/sks/authn"
)

// Config is a [modules.NAME] section with type = "pam".
type Config struct {
	// Service is the PAM service name, a file in Dir (e.g. "login" or "sks").
	Service string `toml:"service"`
	// Dir is the directory of PAM service files. Default /etc/pam.d. Any
	// other directory is passed to pam_start_confdir, so a site (or a test)
	// can keep its PAM stack private to sks.
	Dir string `toml:"dir"`
	// SkipAccount skips pam_acct_mgmt (expired or locked accounts would then
	// log in). Default false: accounts are checked.
	SkipAccount bool `toml:"skip_account"`
	// MaxConcurrent bounds PAM transactions running at once. pam_unix sleeps
	// about 2 s after a wrong password; the bound keeps a flood of bad logins
	// from piling up threads. Default 16.
	MaxConcurrent int `toml:"max_concurrent"`
}

// DefaultDir is where PAM service files live on Debian.
const DefaultDir = "/etc/pam.d"

var serviceName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// ValidServiceName reports whether name may be used as a PAM service name.
// "other" is refused: it is PAM's fallback for unknown services and on
// Debian accepts any system password, so no client may select it by name.
func ValidServiceName(name string) bool {
	return serviceName.MatchString(name) && name != "other"
}

// Validate fills defaults and checks that the service file exists. PAM would
// otherwise silently use the "other" service for a missing one.
func (c *Config) Validate() error {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 16
	}
	if !ValidServiceName(c.Service) {
		return fmt.Errorf("pam service %q is not a valid service name (letters, digits, '.', '_', '-'; not \"other\")", c.Service)
	}
	p := filepath.Join(c.Dir, c.Service)
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("pam service %s: no file %s (create it, e.g. with \"auth required pam_unix.so\" and \"account required pam_unix.so\"): %w", c.Service, p, err)
	}
	if c.Dir != DefaultDir && !pam.CheckPamHasStartConfdir() {
		return fmt.Errorf("pam service dir %s: this libpam has no pam_start_confdir (needs libpam 1.4 or later); use %s", c.Dir, DefaultDir)
	}
	return nil
}

// PAM authenticates against one PAM service.
type PAM struct {
	cfg Config
	sem chan struct{}
	log *slog.Logger
	// noShadow: the stack uses pam_unix and /etc/shadow is unreadable, so
	// refusals are likely this process's lack of privilege.
	noShadow bool
}

var _ authn.Module = (*PAM)(nil)

// Open validates cfg and returns the module.
func Open(cfg Config, log *slog.Logger) (*PAM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &PAM{cfg: cfg, sem: make(chan struct{}, cfg.MaxConcurrent), log: log.With("module", "pam", "service", cfg.Service)}
	if UsesPamUnix(cfg.Dir, cfg.Service) {
		if err := CheckShadow(); err != nil {
			p.noShadow = true
			p.log.Warn("pam service uses pam_unix but this process cannot read "+ShadowFile+": every other user's correct password will be refused as wrong",
				"uid", os.Geteuid(), "fix", ShadowFix)
		}
	}
	return p, nil
}

// Service returns the PAM service name.
func (p *PAM) Service() string { return p.cfg.Service }

type result struct {
	id  authn.Identity
	ok  bool
	err error
}

// Login runs pam_authenticate and pam_acct_mgmt for user. The transaction
// runs on its own goroutine: libpam cannot be cancelled, so when ctx ends
// first Login returns at once and the transaction finishes in the background,
// still holding its slot of MaxConcurrent.
func (p *PAM) Login(ctx context.Context, username, password string) (authn.Identity, bool, error) {
	if authn.ValidUser(username) != nil || !authn.ValidPassword(password) {
		return authn.Identity{}, false, nil
	}
	if !authn.IsNFKC(username) {
		// A stack that matches names loosely (pam_sss, pam_ldap) could take
		// this spelling for an account whose stored spelling sks cannot
		// always learn: refuse rather than issue a second identity.
		p.log.Debug("login refused: user name not in Unicode NFKC")
		return authn.Identity{}, false, nil
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return authn.Identity{}, false, fmt.Errorf("pam: all %d slots busy: %w", cap(p.sem), authn.ErrUnavailable)
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-p.sem }()
		id, ok, err := p.login(username, password)
		done <- result{id, ok, err}
	}()
	select {
	case r := <-done:
		return r.id, r.ok, r.err
	case <-ctx.Done():
		return authn.Identity{}, false, fmt.Errorf("pam: %w: %w", ctx.Err(), authn.ErrUnavailable)
	}
}

func (p *PAM) login(username, password string) (authn.Identity, bool, error) {
	conv := pam.ConversationFunc(func(s pam.Style, msg string) (string, error) {
		switch s {
		case pam.PromptEchoOff:
			return password, nil
		case pam.PromptEchoOn:
			// Some stacks ask for the user name again.
			return username, nil
		case pam.ErrorMsg, pam.TextInfo:
			p.log.Debug("pam message", "style", int(s), "text", msg)
			return "", nil
		}
		return "", pam.ErrConv
	})
	var tx *pam.Transaction
	var err error
	if p.cfg.Dir == DefaultDir {
		tx, err = pam.Start(p.cfg.Service, username, conv)
	} else {
		tx, err = pam.StartConfDir(p.cfg.Service, username, conv, p.cfg.Dir)
	}
	if err != nil {
		p.log.Warn("pam system error", "step", "start", "pam_error", err.Error())
		return authn.Identity{}, false, fmt.Errorf("pam: cannot start transaction: %w", err)
	}
	defer tx.End()
	if err := tx.Authenticate(pam.DisallowNullAuthtok); err != nil {
		return p.classify("authenticate", username, err)
	}
	if !p.cfg.SkipAccount {
		if err := tx.AcctMgmt(pam.DisallowNullAuthtok); err != nil {
			return p.classify("account", username, err)
		}
	}
	id := authn.Identity{User: username}
	// uid and gid as the original wrote them; left out where unknown. The
	// identity is the account's name as the system spells it (NSS may
	// match "ALICE" to alice, as sssd does with case_sensitive = false).
	if u, err := user.Lookup(username); err == nil {
		id.Attrs = []authn.Attr{{Name: "uid", Value: u.Uid}, {Name: "gid", Value: u.Gid}}
		if u.Username != username && authn.ValidUser(u.Username) == nil && authn.FoldUser(u.Username) == authn.FoldUser(username) {
			id.User = u.Username
		}
	}
	return id, true, nil
}

// classify turns a PAM error into a failed login or a backend error.
func (p *PAM) classify(step, username string, err error) (authn.Identity, bool, error) {
	var pe pam.Error
	if errors.As(err, &pe) {
		switch pe {
		case pam.ErrAuth, pam.ErrUserUnknown, pam.ErrMaxtries, pam.ErrAcctExpired,
			pam.ErrNewAuthtokReqd, pam.ErrPermDenied, pam.ErrCredInsufficient, pam.ErrCredExpired:
			if p.noShadow && pe == pam.ErrAuth {
				p.log.Warn("pam login refused, possibly only because this process cannot read "+ShadowFile, "step", step, "reason", pe.Error(), "fix", ShadowFix)
			} else {
				p.log.Debug("pam login refused", "step", step, "reason", pe.Error())
			}
			return authn.Identity{}, false, nil
		case pam.ErrAuthinfoUnavail:
			if p.noShadow {
				p.log.Warn("pam system error, likely because this process cannot read "+ShadowFile, "step", step, "pam_error", pe.Error(), "code", int(pe), "fix", ShadowFix)
			} else {
				p.log.Warn("pam system error", "step", step, "pam_error", pe.Error(), "code", int(pe))
			}
			return authn.Identity{}, false, fmt.Errorf("pam %s: %w: %w", step, err, authn.ErrUnavailable)
		}
	}
	// Not a verdict on the password: a broken stack, a missing module, a
	// helper that failed. PAM's own text says which.
	p.log.Warn("pam system error", "step", step, "pam_error", err.Error())
	return authn.Identity{}, false, fmt.Errorf("pam %s: %w", step, err)
}
