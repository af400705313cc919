// Package ldap is the LDAP login module: it checks a password by binding to a
// directory as the user, either directly (user_dn_template) or after finding
// the user's entry with a service account (base_dn and user_filter), and
// reads identity attributes and groups from the directory.
//
// Connections are pooled in two pools of pool_size each. Service-account
// connections search and are never bound as anyone else. User binds (and,
// with a DN template, the read of the user's own entry) happen on a second
// pool of connections that are used for nothing else, so no connection that
// searches is ever bound as a user, and a login costs a search and a bind
// on open connections: no TCP or TLS handshake and no rebind.
//
// A configuration, as a [modules.NAME] section of sks's TOML file:
//
//	[modules.corp]
//	type = "ldap"
//	urls = ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org"]
//	ca_file = "/etc/sks/ldap-ca.pem"
//	bind_dn = "cn=sks,ou=services,dc=example,dc=org"
//	bind_password_file = "/etc/sks/ldap-bind.pw"   # chmod 600
//	base_dn = "ou=people,dc=example,dc=org"
//	user_filter = "(&(objectClass=posixAccount)(uid=%s))"
//	user_attribute = "uid"
//	group_attribute = "memberOf"
//	timeout = "5s"
//	pool_size = 4
//	attributes = { uidNumber = "uid", gidNumber = "gid" }
//
// Direct bind instead of the search: user_dn_template =
// "uid=%s,ou=people,dc=example,dc=org", with groups from group_base_dn and
// group_filter = "(member=%s)" if the directory has no memberOf.
package ldap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/sks-server/sks/authn"
)

var _ authn.Module = (*LDAP)(nil)

// LDAP is an opened LDAP login module. It is safe for concurrent use.
type LDAP struct {
	cfg       Config
	log       *slog.Logger
	d         *dialer
	pool      *pool
	binds     *pool    // connections for user binds only
	userAttrs []string // attributes read from the user's entry
	// nameAttr is the attribute whose stored value is the identity's user
	// name: user_attribute, else the attribute the user filter or the DN
	// template's first RDN matches the name against; empty when neither
	// says (the name is then kept as typed, and must be NFKC).
	nameAttr string
	derived  bool // nameAttr was derived, not configured
}

// Open checks cfg, reads its files (CA, client certificate, service password),
// builds the TLS configuration once and returns the module. It does not
// connect: the first login does, so sks starts while a directory is down.
func Open(cfg Config, log *slog.Logger) (*LDAP, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("module", "ldap")
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid ldap configuration: %w", err)
	}
	pw, base, err := cfg.loadSecrets()
	if err != nil {
		return nil, err
	}
	d := &dialer{startTLS: cfg.StartTLS, timeout: cfg.Timeout.Duration, bindDN: cfg.BindDN, bindPW: pw}
	for _, u := range cfg.URLs {
		s, _ := parseURL(u) // checked by Validate
		if s.ldaps || cfg.StartTLS {
			s.tls = base.Clone()
			s.tls.ServerName = hostOf(s.addr)
		} else {
			log.Warn("passwords go to the directory in clear text: use ldaps:// or start_tls = true", "url", u)
		}
		d.servers = append(d.servers, &s)
	}
	if cfg.InsecureSkipVerify {
		log.Warn("insecure_skip_verify is set: directory certificates are not checked, passwords can be intercepted")
	}
	bd := *d
	bd.userBinds = true
	l := &LDAP{cfg: cfg, log: log, d: d, pool: newPool(d, cfg.PoolSize), binds: newPool(&bd, cfg.PoolSize)}
	for attr := range cfg.Attributes {
		l.userAttrs = append(l.userAttrs, attr)
	}
	if cfg.GroupAttribute != "" {
		l.userAttrs = append(l.userAttrs, cfg.GroupAttribute)
	}
	l.nameAttr = cfg.UserAttribute
	if l.nameAttr == "" {
		l.nameAttr = namingAttribute(cfg)
		l.derived = l.nameAttr != ""
	}
	switch {
	case l.derived:
		log.Info("identity user name is read from the directory", "attribute", l.nameAttr)
	case l.nameAttr == "":
		log.Warn("identity user names are kept as typed, so \"ALICE\" and \"alice\" are two identities: set user_attribute; names not in Unicode NFKC are refused")
	}
	if l.nameAttr != "" {
		l.userAttrs = append(l.userAttrs, l.nameAttr)
	}
	slices.Sort(l.userAttrs)
	l.userAttrs = slices.Compact(l.userAttrs)
	mode := "search-then-bind"
	if cfg.UserDNTemplate != "" {
		mode = "direct bind"
	}
	log.Info("ldap module ready", "urls", cfg.URLs, "start_tls", cfg.StartTLS, "mode", mode, "pool_size", cfg.PoolSize)
	return l, nil
}

func hostOf(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return host
}

// Close closes the pooled connections. Logins still running finish; later
// ones fail.
func (l *LDAP) Close() error {
	l.pool.close()
	l.binds.close()
	return nil
}

// Login checks user's password. A wrong password, an unknown user, a name
// matching no or several entries and any input refused by authn.ValidUser or
// authn.ValidPassword give (Identity{}, false, nil); an error (wrapping
// authn.ErrUnavailable when the directory could not be reached or did not
// answer in time) means no answer could be had.
func (l *LDAP) Login(ctx context.Context, user, password string) (authn.Identity, bool, error) {
	if authn.ValidUser(user) != nil || !authn.ValidPassword(password) {
		// Never bind with these: an empty password is an anonymous bind that
		// succeeds for any DN.
		l.log.Debug("login refused before bind: user name or password not acceptable", "user", user)
		return authn.Identity{}, false, nil
	}
	if l.nameAttr == "" && !authn.IsNFKC(user) {
		// The stored spelling cannot be learnt: one account must not become
		// several identities by Unicode forms the directory matches alike.
		l.log.Debug("login refused before bind: user name not in Unicode NFKC and no user_attribute", "user", user)
		return authn.Identity{}, false, nil
	}
	for attempt := 0; ; attempt++ {
		c, err := l.pool.get(ctx)
		if err != nil {
			l.log.Debug("login failed: no connection", "user", user, "err", err)
			return authn.Identity{}, false, err
		}
		id, ok, err := l.login(ctx, c, user, password)
		reused, ops := c.reused, c.ops
		l.pool.put(c)
		var oe *opError
		if err != nil && attempt < l.cfg.PoolSize && reused && ops == 0 && ctx.Err() == nil && errors.As(err, &oe) && !oe.timeout {
			// The pooled connection died while idle (server restart, idle
			// timeout) and its first request failed fast: try the next
			// one, at worst a new connection. A timeout is not retried, so
			// a hung server costs one timeout, not several.
			l.log.Debug("pooled connection was dead, retrying on a new one", "url", oe.url, "err", err)
			continue
		}
		if err != nil {
			l.log.Debug("login failed: directory error", "user", user, "err", err)
		}
		return id, ok, err
	}
}

// login runs one login on c, leaving c bound as the service account or
// marked broken.
func (l *LDAP) login(ctx context.Context, c *conn, user, password string) (authn.Identity, bool, error) {
	var (
		dn         string
		entry      *goldap.Entry
		unreadable bool // the user may not read its own entry (direct bind)
	)
	attrs := l.userAttrs
	if len(attrs) == 0 {
		attrs = []string{"1.1"} // RFC 4511: no attributes
	}
	if l.cfg.UserDNTemplate == "" {
		req := &goldap.SearchRequest{
			BaseDN:       l.cfg.BaseDN,
			Scope:        goldap.ScopeWholeSubtree,
			DerefAliases: goldap.NeverDerefAliases,
			SizeLimit:    2, // one is all we accept; two tells us it is ambiguous
			TimeLimit:    l.timeLimit(),
			Filter:       substitute(l.cfg.UserFilter, goldap.EscapeFilter(user)),
			Attributes:   attrs,
		}
		var res *goldap.SearchResult
		err := c.do(ctx, l.cfg.Timeout.Duration, "user search", func() (err error) {
			res, err = c.lc.Search(req)
			return err
		})
		switch {
		case goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded):
			l.log.Warn("login failed: user_filter matches several entries; make it match exactly one (e.g. add objectClass or narrow base_dn)", "user", user)
			return authn.Identity{}, false, nil
		case err != nil:
			return authn.Identity{}, false, l.fail(c, "user search", err)
		case len(res.Entries) == 0:
			l.log.Debug("login failed: no such user", "user", user)
			return authn.Identity{}, false, nil
		case len(res.Entries) > 1:
			l.log.Warn("login failed: user_filter matches several entries; make it match exactly one (e.g. add objectClass or narrow base_dn)", "user", user, "count", len(res.Entries))
			return authn.Identity{}, false, nil
		}
		entry = res.Entries[0]
		dn = entry.DN
		if dn == "" {
			// A bind with an empty DN is anonymous whatever the password.
			return authn.Identity{}, false, fmt.Errorf("ldap %s: user search returned the root DSE", c.srv.url)
		}
	} else {
		dn = substitute(l.cfg.UserDNTemplate, goldap.EscapeDN(user))
	}

	// The user binds on a connection of the bind pool, used for nothing but
	// user binds and reading the bound user's own entry. So c stays bound as
	// the service account (no rebind: two round trips a login instead of
	// three), and no connection that searches is ever bound as a user.
	bc, err := l.userBind(ctx, dn, password)
	if bc != nil {
		defer l.binds.put(bc)
	}
	if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
		l.log.Debug("login failed: invalid credentials", "user", user, "dn", dn)
		return authn.Identity{}, false, nil
	}
	if err != nil {
		if bc == nil {
			return authn.Identity{}, false, err
		}
		bc.broken = true
		return authn.Identity{}, false, l.fail(bc, "user bind", err)
	}

	if entry == nil && len(l.userAttrs) > 0 {
		// Direct bind: read the entry as the user, the usual "by self read".
		req := &goldap.SearchRequest{
			BaseDN:       dn,
			Scope:        goldap.ScopeBaseObject,
			DerefAliases: goldap.NeverDerefAliases,
			SizeLimit:    1,
			TimeLimit:    l.timeLimit(),
			Filter:       "(objectClass=*)",
			Attributes:   attrs,
		}
		var res *goldap.SearchResult
		err := bc.do(ctx, l.cfg.Timeout.Duration, "user entry read", func() (err error) {
			res, err = bc.lc.Search(req)
			return err
		})
		if err == nil && len(res.Entries) != 1 {
			err = fmt.Errorf("%d entries", len(res.Entries))
		}
		var oe *opError
		switch {
		case err != nil && l.derived && l.onlyName() && !errors.As(err, &oe):
			// Nothing but the derived naming attribute was wanted and the
			// directory will not show the user its own entry: keep the
			// name as typed, if it is NFKC.
			if !authn.IsNFKC(user) {
				l.log.Warn("login refused: the user's entry is unreadable, so its stored name is unknown, and the name typed is not NFKC", "user", user, "dn", dn)
				return authn.Identity{}, false, nil
			}
			l.log.Debug("user entry unreadable; identity is the name as typed", "dn", dn, "err", err)
			unreadable, entry = true, &goldap.Entry{DN: dn}
		case err != nil:
			bc.broken = true
			return authn.Identity{}, false, l.fail(bc, "user entry read", err)
		default:
			entry = res.Entries[0]
		}
	}

	id := authn.Identity{User: user}
	if l.nameAttr != "" && !unreadable {
		name, ok := l.storedName(entry, user)
		if !ok {
			l.log.Warn("login failed: the naming attribute is missing, ambiguous or not a valid user name",
				"user", user, "dn", dn, "attribute", l.nameAttr)
			return authn.Identity{}, false, nil
		}
		id.User = name
	}
	id.Attrs = l.identityAttrs(entry, dn)
	roles, err := l.roles(ctx, c, entry, dn)
	if err != nil {
		return authn.Identity{}, false, err
	}
	id.Roles = roles
	l.log.Debug("login succeeded", "user", id.User, "dn", dn, "roles", len(id.Roles))
	return id, true, nil
}

// userBind binds as dn on a connection of the bind pool and returns it
// (nil if none could be had). A pooled connection that died while idle and
// fails fast is replaced, as in Login.
func (l *LDAP) userBind(ctx context.Context, dn, password string) (*conn, error) {
	for attempt := 0; ; attempt++ {
		bc, err := l.binds.get(ctx)
		if err != nil {
			return nil, err
		}
		err = bc.do(ctx, l.cfg.Timeout.Duration, "user bind", func() error { return bc.lc.Bind(dn, password) })
		var oe *opError
		if errors.As(err, &oe) && !oe.timeout && bc.reused && bc.ops == 0 && attempt < l.cfg.PoolSize && ctx.Err() == nil {
			l.log.Debug("pooled bind connection was dead, retrying on a new one", "url", oe.url, "err", err)
			l.binds.put(bc)
			continue
		}
		return bc, err
	}
}

// onlyName reports whether the naming attribute is the only thing read
// from the user's entry.
func (l *LDAP) onlyName() bool {
	return len(l.cfg.Attributes) == 0 && l.cfg.GroupAttribute == ""
}

// storedName is the identity's user name as the directory stores it: the
// value of the naming attribute. A configured user_attribute must have one
// value. A derived one may have several (uid: alice, uid: asmith): the one
// that folds (authn.FoldUser) to the name typed is taken; if the entry
// shows none (the attribute is not readable), the name typed is kept if it
// is NFKC, as when nothing says which attribute names the user.
func (l *LDAP) storedName(entry *goldap.Entry, typed string) (string, bool) {
	vals := entry.GetEqualFoldAttributeValues(l.nameAttr)
	if !l.derived {
		if len(vals) != 1 || authn.ValidUser(vals[0]) != nil {
			return "", false
		}
		return vals[0], true
	}
	if len(vals) == 0 {
		return typed, authn.IsNFKC(typed)
	}
	var match []string
	fold := authn.FoldUser(typed)
	for _, v := range vals {
		if authn.FoldUser(v) == fold {
			match = append(match, v)
		}
	}
	if len(match) != 1 && len(vals) == 1 {
		match = vals // matched by the directory's own rules
	}
	if len(match) != 1 || authn.ValidUser(match[0]) != nil {
		return "", false
	}
	return match[0], true
}

var (
	filterAttrRE   = regexp.MustCompile(`\(\s*([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)\s*=\s*%s\s*\)`)
	templateAttrRE = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)\s*=\s*%s\s*,`)
)

// namingAttribute derives the attribute a login name is matched against:
// the one attribute of the user filter compared with %s ("uid" in
// "(&(objectClass=posixAccount)(uid=%s))"), or the attribute of the DN
// template's first RDN ("uid" in "uid=%s,ou=people,..."). Empty when the
// filter compares several attributes, or the template puts %s elsewhere.
func namingAttribute(cfg Config) string {
	if cfg.UserDNTemplate != "" {
		if m := templateAttrRE.FindStringSubmatch(cfg.UserDNTemplate); m != nil {
			return m[1]
		}
		return ""
	}
	var attr string
	for _, m := range filterAttrRE.FindAllStringSubmatch(cfg.UserFilter, -1) {
		if attr != "" && !strings.EqualFold(attr, m[1]) {
			return ""
		}
		attr = m[1]
	}
	if strings.Count(cfg.UserFilter, "%s") != len(filterAttrRE.FindAllString(cfg.UserFilter, -1)) {
		return "" // %s also used in a substring or other form
	}
	return attr
}

// fail turns an error of a request into the module's error: opErrors as
// they are, LDAP results the server sent into an error saying which step.
func (l *LDAP) fail(c *conn, step string, err error) error {
	var oe *opError
	if errors.As(err, &oe) {
		return err
	}
	return fmt.Errorf("ldap %s: %s: %w", c.srv.url, step, err)
}

func (l *LDAP) timeLimit() int {
	return int((l.cfg.Timeout.Duration + time.Second - 1) / time.Second)
}

// identityAttrs maps the configured attributes to identity lines: uid first,
// gid second, then the others sorted by name. Values that are missing,
// multi-valued or not clean single-line text are left out.
func (l *LDAP) identityAttrs(entry *goldap.Entry, dn string) []authn.Attr {
	var out []authn.Attr
	for attr, name := range l.cfg.Attributes {
		vals := entry.GetEqualFoldAttributeValues(attr)
		switch {
		case len(vals) == 0:
			continue
		case len(vals) > 1:
			l.log.Warn("attribute has several values, left out of the identity", "dn", dn, "attribute", attr)
			continue
		case !cleanValue(vals[0]):
			l.log.Warn("attribute value is not clean single-line text, left out of the identity", "dn", dn, "attribute", attr)
			continue
		}
		out = append(out, authn.Attr{Name: name, Value: vals[0]})
	}
	rank := func(name string) int {
		switch name {
		case "uid":
			return 0
		case "gid":
			return 1
		}
		return 2
	}
	slices.SortFunc(out, func(a, b authn.Attr) int {
		return cmp.Or(cmp.Compare(rank(a.Name), rank(b.Name)), strings.Compare(a.Name, b.Name))
	})
	return out
}

// maxGroups bounds a group search; nobody needs more roles in a session.
const maxGroups = 1000

// roles collects the user's groups from group_attribute and from the group
// search, as the first RDN values of the groups' DNs, sorted and unique.
func (l *LDAP) roles(ctx context.Context, c *conn, entry *goldap.Entry, dn string) ([]string, error) {
	var dns []string
	if l.cfg.GroupAttribute != "" {
		dns = append(dns, entry.GetEqualFoldAttributeValues(l.cfg.GroupAttribute)...)
	}
	if l.cfg.GroupFilter != "" {
		req := &goldap.SearchRequest{
			BaseDN:       l.cfg.GroupBaseDN,
			Scope:        goldap.ScopeWholeSubtree,
			DerefAliases: goldap.NeverDerefAliases,
			SizeLimit:    maxGroups,
			TimeLimit:    l.timeLimit(),
			Filter:       substitute(l.cfg.GroupFilter, goldap.EscapeFilter(dn)),
			Attributes:   []string{"1.1"},
		}
		var res *goldap.SearchResult
		err := c.do(ctx, l.cfg.Timeout.Duration, "group search", func() (err error) {
			res, err = c.lc.Search(req)
			return err
		})
		if goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
			l.log.Warn("group search hit the size limit; roles are incomplete", "dn", dn, "limit", maxGroups)
			err = nil
		}
		if err != nil {
			return nil, l.fail(c, "group search", err)
		}
		for _, e := range res.Entries {
			dns = append(dns, e.DN)
		}
	}
	var roles []string
	for _, g := range dns {
		r, ok := firstRDNValue(g)
		if !ok {
			l.log.Debug("group DN left out of roles", "dn", dn, "group", g)
			continue
		}
		roles = append(roles, r)
	}
	slices.Sort(roles)
	return slices.Compact(roles), nil
}

// firstRDNValue returns the value of the first attribute of the first RDN of
// a DN ("staff" for "cn=staff,ou=groups,dc=example,dc=org"), if it is clean.
func firstRDNValue(dn string) (string, bool) {
	d, err := goldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return "", false
	}
	v := d.RDNs[0].Attributes[0].Value
	return v, cleanValue(v)
}

// maxValueLen bounds identity values taken from the directory.
const maxValueLen = 1024

// cleanValue reports whether a directory value may go into an identity:
// non-empty, bounded, valid UTF-8, no control characters (so no line breaks
// that could add identity lines), no leading or trailing space.
func cleanValue(v string) bool {
	if v == "" || len(v) > maxValueLen || !utf8.ValidString(v) || strings.TrimSpace(v) != v {
		return false
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
