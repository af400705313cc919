// Package conf reads sks's configuration: a TOML file and the command-line
// flags of the original SessionKeyServer, which override the file.
package conf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sks-server/sks/clientaddr"
	"github.com/sks-server/sks/jwtauth"
	"github.com/sks-server/sks/tokens"
)

// Duration is a time.Duration written in TOML as a string such as "8h" or
// "90s". It is jwtauth.Duration under another name: conf embeds
// jwtauth.Config as [jwt], so jwtauth cannot import conf, and the type is
// defined there once.
type Duration = jwtauth.Duration

// Config is the whole configuration of one sks process.
type Config struct {
	// Listen is the address to serve on, host:port. Default ":4431".
	Listen string `toml:"listen"`
	// DataDir holds the badger token store. Empty keeps tokens in memory only,
	// as the original did without -d.
	DataDir string `toml:"data_dir"`
	// DataMinFreeMB is the free space, in MiB, kept on DataDir's file
	// system: below it writes answer 503 and sks does not start (badger
	// would die of SIGBUS on a full disk). Default 16; negative disables.
	DataMinFreeMB int `toml:"data_min_free_mb"`
	// EncryptionKeyFile, if set, names a file of 16, 24 or 32 raw bytes (or
	// that many bytes hex-encoded) that encrypts the store at rest.
	EncryptionKeyFile string `toml:"encryption_key_file"`
	// DefaultModule is the module used when a request names none. Default "pam".
	DefaultModule string `toml:"default_module"`
	// PAMApp is the PAM service for realms without a section of their own
	// (the original's -pam-app). Empty means the realm name is the service.
	PAMApp string `toml:"pam_app"`
	// PAMDir is where PAM service files are looked up before a realm name may
	// be used as a service. Default /etc/pam.d.
	PAMDir string `toml:"pam_dir"`
	// Krb5Conf is the default krb5.conf for Kerberos modules (-krb5conf).
	Krb5Conf string `toml:"krb5conf"`
	// Demo enables the built-in "demo" realm with one user, for trying sks out.
	Demo bool `toml:"demo"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `toml:"log_level"`
	// LogFormat is text (logfmt-style key=value, the default) or json (one
	// JSON object a line, for log collectors).
	LogFormat string `toml:"log_format"`
	// MaxConcurrentLogins bounds logins running at once across all modules, so
	// slow backends cannot exhaust the process. Default 64.
	MaxConcurrentLogins int `toml:"max_concurrent_logins"`
	// LoginTimeout bounds one login, backend included. Default 10s.
	LoginTimeout Duration `toml:"login_timeout"`

	Admin  Admin            `toml:"admin"`
	TLS    TLS              `toml:"tls"`
	HTTP   HTTP             `toml:"http"`
	Realms map[string]Realm `toml:"realms"`
	// Tokens chooses the token store; without [tokens.redis] it is badger
	// under DataDir (or in memory).
	Tokens struct {
		Redis *tokens.RedisOptions `toml:"redis"`
	} `toml:"tokens"`
	// JWT configures signed tokens, the master token and HMAC API keys.
	JWT jwtauth.Config `toml:"jwt"`
	// Web configures the login page and the forward-auth endpoint.
	Web Web `toml:"web"`
	// Limits is the brute-force protection.
	Limits Limits `toml:"limits"`
	// Audit is the audit log.
	Audit Audit `toml:"audit"`
	// Metrics is the Prometheus endpoint.
	Metrics Metrics `toml:"metrics"`

	// Modules are the login modules by name, as clients spell them in module=.
	Modules map[string]ModuleSpec `toml:"-"`

	md toml.MetaData
}

// Admin says who may call administrative endpoints such as /stored_token.
type Admin struct {
	// AllowLoopback lets callers on 127.0.0.0/8 and ::1 use admin endpoints
	// without a credential, as RCloud deployments on one host expect. Default
	// true. It has no effect while [http] trusted_proxies is set, nor for a
	// request carrying X-Forwarded-For or Forwarded: behind a proxy on the
	// same host every client would look local.
	AllowLoopback *bool `toml:"allow_loopback"`
	// TokenFile holds the admin bearer token (first line). It must not be
	// readable by group or others.
	TokenFile string `toml:"token_file"`
}

// LoopbackAllowed reports the effective AllowLoopback setting.
func (a Admin) LoopbackAllowed() bool { return a.AllowLoopback == nil || *a.AllowLoopback }

// TLS is the HTTPS material. Either Keystore (the original's -tls: PKCS12 or
// JKS) or CertFile and KeyFile (PEM), or inline PEM in Cert and Key.
type TLS struct {
	Keystore       string   `toml:"keystore"`
	Password       string   `toml:"password"`
	PasswordFile   string   `toml:"password_file"`
	PasswordPrompt bool     `toml:"-"`
	CertFile       string   `toml:"cert_file"`
	KeyFile        string   `toml:"key_file"`
	Cert           string   `toml:"cert"`
	Key            string   `toml:"key"`
	KeyPassphrase  string   `toml:"key_passphrase"`
	ClientCAFile   string   `toml:"client_ca_file"`
	ReloadInterval Duration `toml:"reload_interval"`
}

// Enabled reports whether any TLS material is configured.
func (t TLS) Enabled() bool {
	return t.Keystore != "" || t.CertFile != "" || t.Cert != ""
}

// Web is the [web] section: a login page that sets a session cookie, and a
// forward-auth endpoint for reverse proxies (nginx auth_request, Caddy
// forward_auth, Traefik ForwardAuth).
type Web struct {
	// Enabled serves /forward_auth, the login page and /logout.
	Enabled bool `toml:"enabled"`
	// CookieName is the session cookie. Default "sks_token".
	CookieName string `toml:"cookie_name"`
	// SecureCookie marks cookies Secure even when sks itself serves plain
	// HTTP (behind a TLS-terminating proxy). Over TLS they always are.
	SecureCookie bool `toml:"secure_cookie"`
	// AllowedReturnHosts are the hosts (host or host:port) the login page
	// may send the browser back to; relative paths are always allowed.
	AllowedReturnHosts []string `toml:"allowed_return_hosts"`
	// DefaultRealm is used when a request names no realm.
	DefaultRealm string `toml:"default_realm"`
	// LoginPath is where the login page is served. Default "/login".
	LoginPath string `toml:"login_path"`
	// TrustedOrigins are other origins ("https://app.example.org") whose
	// pages may post to the login page and /logout; requests from any other
	// origin are refused as cross-site request forgery.
	TrustedOrigins []string `toml:"trusted_origins"`
}

// HTTP holds the server's protective limits.
type HTTP struct {
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	ReadTimeout       Duration `toml:"read_timeout"`
	WriteTimeout      Duration `toml:"write_timeout"`
	IdleTimeout       Duration `toml:"idle_timeout"`
	MaxBodyBytes      int64    `toml:"max_body_bytes"`
	MaxHeaderBytes    int      `toml:"max_header_bytes"`
	// TrustedProxies are CIDRs (or single addresses) of reverse proxies and
	// relays whose X-Forwarded-For header, or client= parameter, names the
	// real client; that address then feeds bans, the audit log and the log.
	// Setting it also ends loopback privileges (see Admin.AllowLoopback).
	TrustedProxies []string `toml:"trusted_proxies"`
}

// Limits is brute-force protection ([limits]): after UserFailures failed
// logins of one user in one realm, or AddressFailures from one client
// address (IPv6: per /64), within Window, further attempts are answered
// 429 with Retry-After for Ban. Only wrong passwords and unknown users
// count, not backend errors; a success clears the user's count.
type Limits struct {
	// Enabled turns the protection on. Default true.
	Enabled *bool `toml:"enabled"`
	// UserFailures per user and realm. Default 5.
	UserFailures int `toml:"user_failures"`
	// AddressFailures per client address, across realms. Default 20.
	AddressFailures int `toml:"address_failures"`
	// Window over which failures are counted. Default 15m.
	Window Duration `toml:"window"`
	// Ban is how long attempts are refused. Default 15m.
	Ban Duration `toml:"ban"`
	// MaxEntries caps the users and addresses tracked in memory; the least
	// recently updated is forgotten first. Default 100000.
	MaxEntries int `toml:"max_entries"`
	// MinFailureLatency pads each failed login to at least this long, so
	// that an unknown user fails as slowly as a wrong password. Default
	// 250ms; "0s" is not possible, write "1ns" to turn it (nearly) off.
	MinFailureLatency Duration `toml:"min_failure_latency"`
	// Realms overrides the user limits of single realms
	// ([limits.realms.NAME]); unset fields inherit.
	Realms map[string]RealmLimits `toml:"realms"`
}

// On reports the effective Enabled setting.
func (l Limits) On() bool { return l.Enabled == nil || *l.Enabled }

// RealmLimits overrides [limits] for one realm.
type RealmLimits struct {
	UserFailures int      `toml:"user_failures"`
	Window       Duration `toml:"window"`
	Ban          Duration `toml:"ban"`
}

// Audit is the audit log ([audit]): one JSON line per login attempt and per
// token or group event, written before the answer is sent.
type Audit struct {
	// Path of the log file (created 0600), or "-" for standard output.
	// Empty disables the audit log.
	Path string `toml:"path"`
	// FailClosed fails a request (503) whose event cannot be written.
	// Default true.
	FailClosed *bool `toml:"fail_closed"`
	// Sync fsyncs every line before answering: slower, but no acknowledged
	// event is lost if the machine crashes. Default false.
	Sync bool `toml:"sync"`
}

// Closed reports the effective FailClosed setting.
func (a Audit) Closed() bool { return a.FailClosed == nil || *a.FailClosed }

// Metrics is the Prometheus endpoint ([metrics]).
type Metrics struct {
	// Enabled serves metrics. Default true.
	Enabled *bool `toml:"enabled"`
	// Listen, if set, serves /metrics on this address of its own (such as
	// "127.0.0.1:9431") instead of on the main listener.
	Listen string `toml:"listen"`
	// Public lets any client read /metrics on the main listener; by default
	// only loopback clients may.
	Public bool `toml:"public"`
}

// On reports the effective Enabled setting.
func (m Metrics) On() bool { return m.Enabled == nil || *m.Enabled }

// Realm is the policy of one realm. The realm named "*" applies to every
// realm without a section of its own.
type Realm struct {
	// Modules lists the module names a client may pick with module=.
	// "pam" is always available as the implicit PAM module of the realm when
	// listed, even without a [modules.pam] section.
	Modules []string `toml:"modules"`
	// Default is the module used when a request names none.
	Default string `toml:"default"`
	// PAMService is the PAM service of the implicit "pam" module.
	PAMService string `toml:"pam_service"`
	// TokenLifetime is the absolute lifetime of a session; zero means none.
	TokenLifetime Duration `toml:"token_lifetime"`
	// IdleTimeout ends a session not validated for this long; zero means none.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxSessions is how many sessions of one user stay valid at once: a
	// new login supersedes the oldest beyond it. 0 or 1 is the original's
	// strict supersede (only the newest token answers YES).
	MaxSessions int `toml:"max_sessions"`
	// Relays are CIDRs (or single addresses) of callers that log many users
	// in from one address (RCloud calling /auth_token for its users): their
	// logins in this realm are limited per user only, never banned by
	// address.
	Relays []string `toml:"relays"`
}

// MaxSessionsLimit bounds max_sessions: every login reads each of the
// user's current tokens, and the list of them is one stored value.
const MaxSessionsLimit = 100

// ModuleSpec is one [modules.NAME] section: its type and the rest of its
// settings, decoded later by the module's own Config.
type ModuleSpec struct {
	Name string
	Type string
	prim toml.Primitive
	md   *toml.MetaData
}

// Decode fills v (a module's Config) from the section and refuses settings
// the module does not know, so that typos do not silently change behaviour.
func (m ModuleSpec) Decode(v any) error {
	if m.md == nil {
		return nil
	}
	if err := m.md.PrimitiveDecode(m.prim, v); err != nil {
		return fmt.Errorf("module %s: %w", m.Name, err)
	}
	var unknown []string
	for _, k := range m.md.Undecoded() {
		if len(k) > 2 && k[0] == "modules" && k[1] == m.Name && k[2] != "type" {
			unknown = append(unknown, strings.Join(k[2:], "."))
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("module %s: unknown setting %s", m.Name, strings.Join(unknown, ", "))
	}
	return nil
}

// NewModuleSpec builds a spec from TOML text, for tests and for built-in modules.
func NewModuleSpec(name, body string) (ModuleSpec, error) {
	c, err := Parse(strings.NewReader("[modules." + toml.Key{name}.String() + "]\n" + body))
	if err != nil {
		return ModuleSpec{}, err
	}
	return c.Modules[name], nil
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	c := &Config{}
	c.fill()
	return c
}

// Parse reads a configuration from TOML text. It checks syntax and unknown
// top-level settings; module settings are checked when the module is opened.
func Parse(r io.Reader) (*Config, error) {
	var raw struct {
		Config
		Modules map[string]toml.Primitive `toml:"modules"`
	}
	md, err := toml.NewDecoder(r).Decode(&raw)
	if err != nil {
		return nil, fmt.Errorf("cannot parse configuration: %w", err)
	}
	c := raw.Config
	c.md = md
	c.Modules = make(map[string]ModuleSpec, len(raw.Modules))
	for name, p := range raw.Modules {
		var t struct {
			Type string `toml:"type"`
		}
		if err := md.PrimitiveDecode(p, &t); err != nil {
			return nil, fmt.Errorf("module %s: %w", name, err)
		}
		if t.Type == "" {
			return nil, ProblemList{{Key: []string{"modules", name}, Msg: fmt.Sprintf("module %s: missing type (one of pam, ldap, kerberos, static)", name)}}
		}
		c.Modules[name] = ModuleSpec{Name: name, Type: t.Type, prim: p, md: &c.md}
	}
	var unknown ProblemList
	for _, k := range md.Undecoded() {
		if len(k) > 0 && k[0] == "modules" {
			continue
		}
		unknown = append(unknown, Problem{Key: k, Msg: fmt.Sprintf("unknown setting %s in configuration", k.String())})
	}
	sort.Slice(unknown, func(i, j int) bool { return unknown[i].Msg < unknown[j].Msg })
	c.fill()
	// Every problem at once: unknown settings and invalid values.
	var pl ProblemList
	if errors.As(c.Validate(), &pl) {
		unknown = append(unknown, pl...)
	}
	return &c, unknown.orNil()
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open configuration: %w", err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *Config) fill() {
	if c.Listen == "" {
		c.Listen = ":4431"
	}
	if c.DefaultModule == "" {
		c.DefaultModule = "pam"
	}
	if c.PAMDir == "" {
		c.PAMDir = "/etc/pam.d"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.MaxConcurrentLogins <= 0 {
		c.MaxConcurrentLogins = 64
	}
	if c.LoginTimeout.Duration <= 0 {
		c.LoginTimeout.Duration = 10 * time.Second
	}
	h := &c.HTTP
	def := func(d *Duration, v time.Duration) {
		if d.Duration <= 0 {
			d.Duration = v
		}
	}
	def(&h.ReadHeaderTimeout, 5*time.Second)
	def(&h.ReadTimeout, 15*time.Second)
	def(&h.WriteTimeout, 30*time.Second)
	def(&h.IdleTimeout, 120*time.Second)
	if h.MaxBodyBytes <= 0 {
		h.MaxBodyBytes = 64 << 10
	}
	if h.MaxHeaderBytes <= 0 {
		h.MaxHeaderBytes = 16 << 10
	}
	if c.Modules == nil {
		c.Modules = map[string]ModuleSpec{}
	}
	if c.Web.CookieName == "" {
		c.Web.CookieName = "sks_token"
	}
	if c.Web.LoginPath == "" {
		c.Web.LoginPath = "/login"
	}
	l := &c.Limits
	if l.UserFailures <= 0 {
		l.UserFailures = 5
	}
	if l.AddressFailures <= 0 {
		l.AddressFailures = 20
	}
	def(&l.Window, 15*time.Minute)
	def(&l.Ban, 15*time.Minute)
	def(&l.MinFailureLatency, 250*time.Millisecond)
	if l.MaxEntries <= 0 {
		l.MaxEntries = 100000
	}
}

// Validate checks settings that do not depend on other files.
func (c *Config) Validate() error {
	var errs ProblemList
	add := func(key []string, format string, args ...any) {
		errs = append(errs, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		add([]string{"log_level"}, "log_level %q: use debug, info, warn or error", c.LogLevel)
	}
	switch strings.ToLower(c.LogFormat) {
	case "", "text", "json":
	default:
		add([]string{"log_format"}, "log_format %q: use text or json", c.LogFormat)
	}
	if c.Tokens.Redis != nil && c.DataDir != "" {
		add([]string{"data_dir"}, "data_dir %q (or -d) is not used when [tokens.redis] is set: tokens live in Redis; remove one of them", c.DataDir)
	}
	realms := make([]string, 0, len(c.Realms))
	for name := range c.Realms {
		realms = append(realms, name)
	}
	sort.Strings(realms)
	for _, name := range realms {
		r := c.Realms[name]
		if r.MaxSessions < 0 || r.MaxSessions > MaxSessionsLimit {
			add([]string{"realms", name, "max_sessions"}, "realm %s: max_sessions = %d; use 1 (strict supersede, the default) up to %d", name, r.MaxSessions, MaxSessionsLimit)
		}
		if r.Default != "" && len(r.Modules) > 0 && !contains(r.Modules, r.Default) {
			add([]string{"realms", name, "default"}, "realm %s: default module %q is not in its modules list", name, r.Default)
		}
		for _, m := range r.Modules {
			if !c.HasModule(m) {
				add([]string{"realms", name, "modules"}, "realm %s: module %q has no [modules.%s] section", name, m, m)
			}
		}
	}
	if _, err := clientaddr.ParsePrefixes("http: trusted_proxies", c.HTTP.TrustedProxies); err != nil {
		add([]string{"http", "trusted_proxies"}, "%v", err)
	}
	for name, r := range c.Realms {
		if _, err := clientaddr.ParsePrefixes("realm "+name+": relays", r.Relays); err != nil {
			add([]string{"realms", name, "relays"}, "%v", err)
		}
	}
	if w := c.Web; w.Enabled {
		if !strings.HasPrefix(w.LoginPath, "/") || strings.HasPrefix(w.LoginPath, "//") {
			add([]string{"web", "login_path"}, "web: login_path %q must be a path starting with one /", w.LoginPath)
		}
		switch w.LoginPath {
		case "/forward_auth", "/logout", "/account", "/valid", "/auth_token", "/version", "/sessions", "/revoke_all", "/revoke_sessions", "/healthz", "/readyz", "/metrics", "/session", "/unban":
			add([]string{"web", "login_path"}, "web: login_path %q is taken by another endpoint", w.LoginPath)
		}
		if !validCookieName(w.CookieName) {
			add([]string{"web", "cookie_name"}, "web: cookie_name %q: use letters, digits, - and _", w.CookieName)
		}
	}
	return errs.orNil()
}

// ValidateModules checks that every default module names a module this
// configuration provides (Validate cannot: programs may add modules after
// parsing, as the demo realm does). The server runs it before starting, so
// that "-default foo" is refused instead of answering every login 403.
func (c *Config) ValidateModules() error {
	var errs ProblemList
	if !c.HasModule(c.DefaultModule) {
		errs = append(errs, Problem{Key: []string{"default_module"}, Msg: fmt.Sprintf("default_module %q (or -default): no such login module; use pam or the name of a [modules.NAME] section (%s)", c.DefaultModule, c.moduleList())})
	}
	realms := make([]string, 0, len(c.Realms))
	for name := range c.Realms {
		realms = append(realms, name)
	}
	sort.Strings(realms)
	for _, name := range realms {
		r := c.Realms[name]
		if r.Default != "" && !c.HasModule(r.Default) && (len(r.Modules) == 0 || contains(r.Modules, r.Default)) {
			errs = append(errs, Problem{Key: []string{"realms", name, "default"}, Msg: fmt.Sprintf("realm %s: default module %q: no such login module; use pam or the name of a [modules.NAME] section (%s)", name, r.Default, c.moduleList())})
		}
	}
	return errs.orNil()
}

// HasModule reports whether name is a login module this configuration
// provides: "pam" (always, as the implicit PAM module), a [modules.NAME]
// section, or "demo" with the demo realm. Names match case-insensitively,
// as module= does.
func (c *Config) HasModule(name string) bool {
	if strings.EqualFold(name, "pam") || c.Demo && strings.EqualFold(name, "demo") {
		return true
	}
	for m := range c.Modules {
		if strings.EqualFold(m, name) {
			return true
		}
	}
	return false
}

// moduleList names the available modules for messages.
func (c *Config) moduleList() string {
	names := []string{"pam"}
	for m := range c.Modules {
		names = append(names, m)
	}
	if c.Demo {
		names = append(names, "demo")
	}
	sort.Strings(names[1:])
	return "configured: " + strings.Join(names, ", ")
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
