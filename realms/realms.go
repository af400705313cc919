// Package realms routes a login in a realm to one of the login modules the
// realm allows, and holds each realm's token policy.
package realms

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/authn/krb5"
	"github.com/sks-server/sks/authn/ldap"
	"github.com/sks-server/sks/authn/pam"
	"github.com/sks-server/sks/authn/static"
	"github.com/sks-server/sks/conf"
)

// ErrNoModule is returned when a realm does not allow the requested module,
// or the module cannot serve the realm (e.g. no PAM service file for it).
var ErrNoModule = errors.New("module not available in this realm")

// Policy is a realm's token policy.
type Policy struct {
	Lifetime    time.Duration
	IdleTimeout time.Duration
	MaxSessions int // sessions of one user that stay current; 0 or 1: strict supersede
}

// Realm is the resolved configuration of one realm.
type Realm struct {
	Name       string
	Modules    []string // empty: every configured module and "pam"
	Default    string
	PAMService string
	Policy     Policy
}

// Router resolves (realm, module) to a login module.
type Router struct {
	cfg     *conf.Config
	log     *slog.Logger
	realms  map[string]*Realm
	any     *Realm // the "*" section, or the built-in rule
	modules map[string]authn.Module
	lower   map[string]string // lower-case module name -> configured name

	mu      sync.Mutex
	implied map[string]*pam.PAM // implicit PAM modules by service
}

// Open builds every configured module once. It fails on the first module
// that cannot be opened, naming it.
func Open(cfg *conf.Config, log *slog.Logger) (*Router, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Router{
		cfg: cfg, log: log,
		realms:  map[string]*Realm{},
		modules: map[string]authn.Module{},
		lower:   map[string]string{},
		implied: map[string]*pam.PAM{},
	}
	names := make([]string, 0, len(cfg.Modules))
	for name := range cfg.Modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m, err := openModule(cfg, cfg.Modules[name], log.With("module", name))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("cannot open login module %s: %w", name, err)
		}
		r.modules[name] = m
		r.lower[strings.ToLower(name)] = name
	}
	for name, rc := range cfg.Realms {
		rr := &Realm{Name: name, Modules: rc.Modules, Default: rc.Default, PAMService: rc.PAMService,
			Policy: Policy{Lifetime: rc.TokenLifetime.Duration, IdleTimeout: rc.IdleTimeout.Duration, MaxSessions: rc.MaxSessions}}
		if name == "*" {
			r.any = rr
		} else {
			r.realms[name] = rr
		}
	}
	if r.any == nil {
		r.any = &Realm{Name: "*"}
	}
	return r, nil
}

// AddModule registers an already opened module under name (the demo realm
// and tests use it).
func (r *Router) AddModule(name string, m authn.Module) {
	r.modules[name] = m
	r.lower[strings.ToLower(name)] = name
}

// AddRealm registers a realm section.
func (r *Router) AddRealm(rr Realm) { r.realms[rr.Name] = &rr }

func openModule(cfg *conf.Config, spec conf.ModuleSpec, log *slog.Logger) (authn.Module, error) {
	switch spec.Type {
	case "pam":
		var c pam.Config
		if err := spec.Decode(&c); err != nil {
			return nil, err
		}
		if c.Dir == "" {
			c.Dir = cfg.PAMDir
		}
		return pam.Open(c, log)
	case "ldap":
		var c ldap.Config
		if err := spec.Decode(&c); err != nil {
			return nil, err
		}
		return ldap.Open(c, log)
	case "kerberos", "krb5":
		var c krb5.Config
		if err := spec.Decode(&c); err != nil {
			return nil, err
		}
		if c.Krb5Conf == "" {
			c.Krb5Conf = cfg.Krb5Conf
		}
		return krb5.Open(c, log)
	case "static":
		var c static.Config
		if err := spec.Decode(&c); err != nil {
			return nil, err
		}
		return static.Open(c, log)
	}
	return nil, fmt.Errorf("unknown module type %q (one of pam, ldap, kerberos, static)", spec.Type)
}

// Lookup returns the realm's resolved configuration.
func (r *Router) Lookup(realm string) *Realm {
	if rr, ok := r.realms[realm]; ok {
		return rr
	}
	return r.any
}

// Policy returns the token policy of realm.
func (r *Router) Policy(realm string) Policy { return r.Lookup(realm).Policy }

// Resolve returns the module a login in realm with module=name (empty: the
// default) goes to, and the source text written into the identity
// ("auth/<name as the client spelled it>").
func (r *Router) Resolve(realm, name string) (authn.Module, string, error) {
	rr := r.Lookup(realm)
	if name == "" {
		name = rr.Default
		if name == "" {
			name = r.cfg.DefaultModule
		}
	}
	source := "auth/" + name
	if len(rr.Modules) > 0 && !containsFold(rr.Modules, name) {
		return nil, source, fmt.Errorf("realm %q does not allow module %q: %w", realm, name, ErrNoModule)
	}
	if configured, ok := r.lower[strings.ToLower(name)]; ok {
		return r.modules[configured], source, nil
	}
	if strings.EqualFold(name, "pam") {
		m, err := r.implicitPAM(realm, rr)
		return m, source, err
	}
	return nil, source, fmt.Errorf("no login module %q is configured: %w", name, ErrNoModule)
}

// implicitPAM is the original's rule for module=pam without a [modules.pam]
// section: the realm's pam_service, else -pam-app, else the realm name as
// the PAM service. It applies only where that service file exists, so that
// no client can reach PAM's fallback "other" service by naming a realm.
func (r *Router) implicitPAM(realm string, rr *Realm) (authn.Module, error) {
	svc := rr.PAMService
	if svc == "" {
		svc = r.cfg.PAMApp
	}
	if svc == "" {
		svc = realm
	}
	if !pam.ValidServiceName(svc) {
		return nil, fmt.Errorf("realm %q: %q cannot be a PAM service name: %w", realm, svc, ErrNoModule)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.implied[svc]; ok {
		return m, nil
	}
	m, err := pam.Open(pam.Config{Service: svc, Dir: r.cfg.PAMDir}, r.log.With("module", "pam"))
	if err != nil {
		// Not cached: the admin may create the service file later.
		return nil, fmt.Errorf("realm %q: %w: %w", realm, err, ErrNoModule)
	}
	r.implied[svc] = m
	return m, nil
}

// Close closes modules that hold resources (connection pools).
func (r *Router) Close() error {
	var errs []error
	for _, m := range r.modules {
		if c, ok := m.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
