package ldap

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/secretfile"
)

// Config is one [modules.NAME] section of type "ldap". Decode it with
// conf.ModuleSpec.Decode, then call Open (which calls Validate).
type Config struct {
	// URLs are the directory servers, ldap://host:port or ldaps://host:port,
	// tried in order: the first one that answers is used.
	URLs []string `toml:"urls"`
	// StartTLS upgrades ldap:// connections with the StartTLS operation before
	// anything else is sent. It has no effect on ldaps:// URLs.
	StartTLS bool `toml:"start_tls"`
	// CAFile names a PEM file of CA certificates that sign the servers'
	// certificates. Without CAFile and CAPEM the system roots are used.
	CAFile string `toml:"ca_file"`
	// CAPEM is the same as CAFile, written inline.
	CAPEM string `toml:"ca_pem"`
	// ClientCertFile and ClientKeyFile are an optional PEM client certificate
	// and key presented to the servers (both or neither).
	ClientCertFile string `toml:"client_cert_file"`
	// ClientKeyFile is the key of ClientCertFile.
	ClientKeyFile string `toml:"client_key_file"`
	// InsecureSkipVerify turns off server certificate checks. Only for tests:
	// anyone on the path can then read passwords. Open logs a warning.
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`

	// BindDN is the service account used to search for users and groups.
	// Empty means searches run anonymously.
	BindDN string `toml:"bind_dn"`
	// BindPassword is the service account's password, inline.
	BindPassword string `toml:"bind_password"`
	// BindPasswordFile names a file whose first line is the service account's
	// password. It must not be readable by group or others.
	BindPasswordFile string `toml:"bind_password_file"`

	// UserDNTemplate selects direct bind: %s is replaced by the user name,
	// escaped as a DN value, for example "uid=%s,ou=people,dc=example,dc=org".
	UserDNTemplate string `toml:"user_dn_template"`
	// BaseDN and UserFilter select search-then-bind: the subtree under BaseDN
	// is searched with UserFilter, in which every %s is replaced by the user
	// name escaped as a filter value, for example "(uid=%s)". Exactly one
	// entry must match.
	BaseDN string `toml:"base_dn"`
	// UserFilter is the search filter of search-then-bind; see BaseDN.
	UserFilter string `toml:"user_filter"`
	// UserAttribute, if set, names the attribute of the user's entry whose
	// (single) value becomes the identity's user name, so that "ALICE" and
	// "alice" log in as the same identity. Empty derives it from UserFilter
	// (the one attribute compared with %s) or UserDNTemplate (the attribute
	// of its first RDN), taking the stored value that matches the name
	// typed; where neither says, the name is kept as typed, names not in
	// Unicode NFKC are refused, and Open logs a warning.
	UserAttribute string `toml:"user_attribute"`

	// Timeout bounds every dial and every request to a server. Default 5s.
	// The caller's context deadline is honoured as well.
	Timeout conf.Duration `toml:"timeout"`
	// PoolSize bounds the service-account connections kept open and in use
	// at once. Default 4.
	PoolSize int `toml:"pool_size"`

	// Attributes maps LDAP attributes of the user's entry to identity lines,
	// for example {uidNumber = "uid", gidNumber = "gid"}. Only single-valued
	// attributes are used.
	Attributes map[string]string `toml:"attributes"`
	// GroupAttribute names an attribute of the user's entry holding the DNs
	// of the user's groups (such as memberOf); the first RDN value of each
	// becomes a role.
	GroupAttribute string `toml:"group_attribute"`
	// GroupBaseDN and GroupFilter find the user's groups by search: %s in
	// GroupFilter is replaced by the user's DN escaped as a filter value, for
	// example "(member=%s)". The first RDN value of each group's DN becomes
	// a role.
	GroupBaseDN string `toml:"group_base_dn"`
	// GroupFilter is the group search filter; see GroupBaseDN.
	GroupFilter string `toml:"group_filter"`
}

// Defaults filled in by Validate.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultPoolSize = 4
	maxPoolSize     = 256
)

var (
	// identity line names: short lower-case words, so that an attribute
	// mapping cannot produce a line that looks like something else.
	lineNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	// LDAP attribute descriptions: a name or a numeric OID, with options.
	attrNameRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$`)
)

// Validate checks required settings and fills defaults. It does not read files.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if len(c.URLs) == 0 {
		bad("urls: at least one ldap:// or ldaps:// URL is required")
	}
	for _, s := range c.URLs {
		if _, err := parseURL(s); err != nil {
			errs = append(errs, err)
		}
	}

	if c.BindPassword != "" && c.BindPasswordFile != "" {
		bad("bind_password and bind_password_file: set only one")
	}
	if c.BindDN == "" && (c.BindPassword != "" || c.BindPasswordFile != "") {
		bad("bind_password without bind_dn")
	}
	if c.BindDN != "" {
		if c.BindPassword == "" && c.BindPasswordFile == "" {
			bad("bind_dn %q needs bind_password or bind_password_file", c.BindDN)
		}
		if _, err := goldap.ParseDN(c.BindDN); err != nil {
			bad("bind_dn %q is not a DN: %v", c.BindDN, err)
		}
	}
	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		bad("client_cert_file and client_key_file go together")
	}

	direct := c.UserDNTemplate != ""
	search := c.BaseDN != "" || c.UserFilter != ""
	switch {
	case direct && search:
		bad("user_dn_template and base_dn/user_filter: set only one (direct bind or search-then-bind)")
	case !direct && !search:
		bad("set user_dn_template (direct bind) or base_dn and user_filter (search-then-bind)")
	case direct:
		if n := strings.Count(c.UserDNTemplate, "%s"); n != 1 {
			bad("user_dn_template %q must contain %%s exactly once", c.UserDNTemplate)
		} else if _, err := goldap.ParseDN(strings.Replace(c.UserDNTemplate, "%s", "x", 1)); err != nil {
			bad("user_dn_template %q does not give a DN: %v", c.UserDNTemplate, err)
		}
	default:
		if c.BaseDN == "" || c.UserFilter == "" {
			bad("search-then-bind needs both base_dn and user_filter")
		}
		if err := checkFilter("user_filter", c.UserFilter); err != nil {
			errs = append(errs, err)
		}
	}
	if c.UserAttribute != "" && !attrNameRE.MatchString(c.UserAttribute) {
		bad("user_attribute %q is not an attribute name", c.UserAttribute)
	}

	if (c.GroupBaseDN == "") != (c.GroupFilter == "") {
		bad("group_base_dn and group_filter go together")
	} else if c.GroupFilter != "" {
		if err := checkFilter("group_filter", c.GroupFilter); err != nil {
			errs = append(errs, err)
		}
	}
	if c.GroupAttribute != "" && !attrNameRE.MatchString(c.GroupAttribute) {
		bad("group_attribute %q is not an attribute name", c.GroupAttribute)
	}

	seen := map[string]string{}
	for attr, name := range c.Attributes {
		if !attrNameRE.MatchString(attr) {
			bad("attributes: %q is not an attribute name", attr)
		}
		if !lineNameRE.MatchString(name) {
			bad("attributes: %s = %q: identity line names are lower-case words like \"uid\"", attr, name)
		}
		if prev, ok := seen[name]; ok {
			bad("attributes: %s and %s both map to %q", prev, attr, name)
		}
		seen[name] = attr
	}

	if c.Timeout.Duration < 0 {
		bad("timeout %s is negative", c.Timeout.Duration)
	} else if c.Timeout.Duration == 0 {
		c.Timeout.Duration = DefaultTimeout
	}
	if c.PoolSize < 0 || c.PoolSize > maxPoolSize {
		bad("pool_size %d: use 1 to %d", c.PoolSize, maxPoolSize)
	} else if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	return errors.Join(errs...)
}

// checkFilter makes sure a filter with %s compiles once a value is put in.
func checkFilter(key, f string) error {
	if !strings.Contains(f, "%s") {
		return fmt.Errorf("%s %q must contain %%s", key, f)
	}
	if _, err := goldap.CompileFilter(substitute(f, "x")); err != nil {
		return fmt.Errorf("%s %q is not a valid filter: %v", key, f, err)
	}
	return nil
}

// substitute puts an already escaped value in place of every %s. It does not
// use fmt, so other % signs in a filter stay as they are.
func substitute(template, escaped string) string {
	return strings.ReplaceAll(template, "%s", escaped)
}

// server is one parsed entry of Config.URLs.
type server struct {
	url   string // as configured, for messages
	addr  string // host:port
	ldaps bool
	tls   *tls.Config // with ServerName set for this host; nil for plain ldap without StartTLS
}

func parseURL(s string) (server, error) {
	u, err := url.Parse(s)
	if err != nil {
		return server{}, fmt.Errorf("urls: %q is not a URL: %v", s, err)
	}
	var port string
	switch u.Scheme {
	case "ldap":
		port = "389"
	case "ldaps":
		port = "636"
	default:
		return server{}, fmt.Errorf("urls: %q: use ldap:// or ldaps://", s)
	}
	if u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return server{}, fmt.Errorf("urls: %q: write scheme://host[:port] only", s)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	return server{url: s, addr: net.JoinHostPort(u.Hostname(), port), ldaps: u.Scheme == "ldaps"}, nil
}

// loadSecrets reads the service password and builds the TLS configuration.
func (c *Config) loadSecrets() (password string, base *tls.Config, err error) {
	password = c.BindPassword
	if c.BindPasswordFile != "" {
		password, err = readBindPassword(c.BindPasswordFile)
		if err != nil {
			return "", nil, err
		}
	}
	base = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" || c.CAPEM != "" {
		pool := x509.NewCertPool()
		if c.CAFile != "" {
			b, err := os.ReadFile(c.CAFile)
			if err != nil {
				return "", nil, fmt.Errorf("cannot read ca_file: %w", err)
			}
			if !pool.AppendCertsFromPEM(b) {
				return "", nil, fmt.Errorf("ca_file %s: no PEM certificate found", c.CAFile)
			}
		}
		if c.CAPEM != "" && !pool.AppendCertsFromPEM([]byte(c.CAPEM)) {
			return "", nil, errors.New("ca_pem: no PEM certificate found")
		}
		base.RootCAs = pool
	}
	if c.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			return "", nil, fmt.Errorf("cannot load client_cert_file/client_key_file: %w", err)
		}
		base.Certificates = []tls.Certificate{cert}
	}
	return password, base, nil
}

// readBindPassword returns the first line of bind_password_file, a file
// only its owner may read, refusing a password longer than 4096 bytes.
func readBindPassword(path string) (string, error) {
	line, err := secretfile.FirstLineOf("bind_password_file", path)
	if err != nil {
		return "", err
	}
	if len(line) > 4096 {
		return "", fmt.Errorf("bind_password_file %s: password longer than 4096 bytes", path)
	}
	return line, nil
}
