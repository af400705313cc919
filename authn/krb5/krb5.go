// Package krb5 is sks's Kerberos login module: it checks a user's password
// with an AS exchange against the realm's KDC and then proves that the KDC is
// the real one by asking it for a ticket to sks's own service principal and
// decrypting that ticket with sks's keytab.
//
// Without that second step ("validation" in pam_krb5 and SSSD) anyone who can
// answer on the KDC's address can log in as anyone: a fake KDC simply encrypts
// its reply with a key derived from whatever password the attacker typed.
// Only the real KDC knows the service key that is in the keytab.
package krb5

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/krberror"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/secretfile"
)

// DefaultKrb5Conf is the krb5.conf read when neither the module section nor
// the -krb5conf flag names one.
const DefaultKrb5Conf = "/etc/krb5.conf"

// DefaultTimeout bounds one login (AS exchange plus validation) when the
// configuration sets no timeout.
const DefaultTimeout = 5 * time.Second

// maxInFlight bounds gokrb5 exchanges still running, including those whose
// login already gave up on its deadline (gokrb5 cannot be cancelled, see
// Login). It keeps a KDC that swallows packets from piling up goroutines.
const maxInFlight = 256

// ErrKDCNotVerified marks a login whose password the KDC accepted but whose
// service ticket could not be verified with the keytab. It means either a
// spoofed KDC or a keytab that does not hold the service principal's current
// key; both need an administrator, so Login returns it as an error (the HTTP
// layer answers 503) rather than as a wrong password.
var ErrKDCNotVerified = errors.New("kdc answer not verified with the keytab")

// Config is one [modules.NAME] section of type "kerberos".
type Config struct {
	// Krb5Conf is the path of the krb5.conf to use. The server fills in its
	// -krb5conf flag when this is empty; Validate falls back to /etc/krb5.conf.
	Krb5Conf string `toml:"krb5conf"`
	// Realm is the default realm: user names without "@REALM" log in there.
	// Empty means krb5.conf's default_realm.
	Realm string `toml:"realm"`
	// Keytab is the path of sks's own keytab, holding the key of
	// ServicePrincipal. It must be readable only by its owner (chmod 600).
	Keytab string `toml:"keytab"`
	// ServicePrincipal is sks's principal, e.g. "HTTP/sks.example.org",
	// optionally with "@REALM". Default "HTTP/<hostname>".
	ServicePrincipal string `toml:"service_principal"`
	// AcceptKDCSpoofing allows running without a keytab. Logins are then not
	// validated and anyone able to impersonate the KDC can log in as anyone.
	AcceptKDCSpoofing bool `toml:"accept_kdc_spoofing"`
	// StripRealm, when true (the default), turns "alice@DEFAULT.REALM" into the
	// identity "alice". Users of other allowed realms keep their "@REALM" so
	// that bob@OTHER.REALM can never become the local bob.
	StripRealm *bool `toml:"strip_realm"`
	// AllowedRealms lists the realms users may log in from with
	// "user@REALM". Default: only the default realm. Realm names are
	// case-sensitive, as in Kerberos.
	AllowedRealms []string `toml:"allowed_realms"`
	// Timeout bounds one login, validation included. Default 5s.
	Timeout conf.Duration `toml:"timeout"`
}

// Validate fills defaults that need no files (krb5.conf path, timeout,
// service principal, strip_realm) and checks the settings on their own.
// Open calls it; the server may call it earlier to report errors sooner.
func (c *Config) Validate() error {
	var errs []error
	if c.Krb5Conf == "" {
		c.Krb5Conf = DefaultKrb5Conf
	}
	switch {
	case c.Timeout.Duration < 0:
		errs = append(errs, fmt.Errorf("timeout %s is negative", c.Timeout.Duration))
	case c.Timeout.Duration == 0:
		c.Timeout.Duration = DefaultTimeout
	}
	if c.ServicePrincipal == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			errs = append(errs, fmt.Errorf("service_principal not set and the host name is unknown (%v): set service_principal = \"HTTP/<host>\"", err))
		} else {
			c.ServicePrincipal = "HTTP/" + host
		}
	}
	if strings.ContainsAny(c.ServicePrincipal, " \t\r\n\\") || strings.Count(c.ServicePrincipal, "@") > 1 {
		errs = append(errs, fmt.Errorf("service_principal %q is not a principal name like HTTP/host.example.org", c.ServicePrincipal))
	}
	if c.StripRealm == nil {
		t := true
		c.StripRealm = &t
	}
	if c.Keytab == "" && !c.AcceptKDCSpoofing {
		errs = append(errs, errors.New("no keytab configured: set keytab to a file holding the key of "+
			c.ServicePrincipal+" (kadmin: ktadd -k <file> "+c.ServicePrincipal+"), "+
			"or set accept_kdc_spoofing = true to run without one and accept that a fake KDC can log anyone in"))
	}
	for _, r := range c.AllowedRealms {
		if r == "" || strings.ContainsAny(r, "@/ \t") {
			errs = append(errs, fmt.Errorf("allowed_realms: %q is not a realm name", r))
		}
	}
	return errors.Join(errs...)
}

// Kerberos is an open Kerberos login module. It is safe for concurrent use:
// each login gets a gokrb5 client of its own.
type Kerberos struct {
	log      *slog.Logger
	krbCfg   *config.Config
	realm    string
	allowed  []string
	strip    bool
	timeout  time.Duration
	inFlight chan struct{}

	// Validation; kt is nil when running with accept_kdc_spoofing.
	kt         *keytab.Keytab
	keytabPath string
	spn        string // as gokrb5's GetServiceTicket wants it: no realm
	svcName    types.PrincipalName
	svcRealm   string
}

var _ authn.Canonicalizer = (*Kerberos)(nil)

var _ authn.Module = (*Kerberos)(nil)

// Open checks the configuration, krb5.conf and keytab and returns a ready
// module. Every start-up error names the file at fault and how to fix it.
//
// Open also probes the KDCs of the default realm over TCP. An unreachable KDC
// is logged as a warning, not an error: a KDC outage at boot should not keep
// the whole server (and its other realms) down, and logins answer 503 until
// the KDC is back.
func Open(cfg Config, log *slog.Logger) (*Kerberos, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("module", "krb5")
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kerberos configuration: %w", err)
	}

	krbCfg, err := loadKrb5Conf(cfg.Krb5Conf, log)
	if err != nil {
		return nil, err
	}
	realm := cfg.Realm
	if realm == "" {
		realm = krbCfg.LibDefaults.DefaultRealm
	}
	if realm == "" {
		return nil, fmt.Errorf("no kerberos realm: set realm in the module section or default_realm in [libdefaults] of %s", cfg.Krb5Conf)
	}
	if _, _, err := krbCfg.GetKDCs(realm, true); err != nil {
		return nil, fmt.Errorf("no kdc for realm %s in %s: add \"kdc = host:port\" to %s in [realms]: %w", realm, cfg.Krb5Conf, realm, err)
	}

	k := &Kerberos{
		log:      log.With("realm", realm),
		krbCfg:   krbCfg,
		realm:    realm,
		allowed:  cfg.AllowedRealms,
		strip:    *cfg.StripRealm,
		timeout:  cfg.Timeout.Duration,
		inFlight: make(chan struct{}, maxInFlight),
	}
	if len(k.allowed) == 0 {
		k.allowed = []string{realm}
	}

	name, svcRealm := types.ParseSPNString(cfg.ServicePrincipal)
	if svcRealm == "" {
		svcRealm = realm
	}
	k.spn, k.svcName, k.svcRealm = name.PrincipalNameString(), name, svcRealm

	if cfg.Keytab != "" {
		kt, err := loadKeytab(cfg.Keytab, name, svcRealm)
		if err != nil {
			return nil, err
		}
		k.kt, k.keytabPath = kt, cfg.Keytab
	} else {
		k.log.Warn("running without a keytab (accept_kdc_spoofing = true): logins are not validated and can be spoofed by a fake KDC; set keytab to fix this")
	}

	k.probe()
	return k, nil
}

// enctypeRelations are the krb5.conf and kdc.conf relations naming
// encryption types; camellia in any of them is refused at Open.
var enctypeRelations = []string{"default_tkt_enctypes", "default_tgs_enctypes", "permitted_enctypes", "supported_enctypes", "default_enctypes"}

// loadKrb5Conf reads and checks krb5.conf. It refuses camellia before gokrb5
// sees the file: gokrb5 has no camellia and silently drops it from its lists,
// and a KDC that then answers in camellia makes every login fail with an
// obscure "unsupported EType" error.
func loadKrb5Conf(path string, log *slog.Logger) (*config.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read krb5.conf %s: %w (set krb5conf in the module section or the -krb5conf flag)", path, err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		if j := strings.IndexAny(line, "#;"); j >= 0 {
			line = line[:j]
		}
		key, val, ok := strings.Cut(line, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || !slices.Contains(enctypeRelations, key) {
			continue
		}
		if strings.Contains(strings.ToLower(val), "camellia") {
			return nil, fmt.Errorf("%s line %d: %s lists camellia, which sks's Kerberos library (gokrb5) does not support: remove the camellia types and use aes256-cts-hmac-sha1-96, aes128-cts-hmac-sha1-96 or the aes-sha2 types", path, i+1, key)
		}
	}
	krbCfg, err := config.NewFromString(string(b))
	if err != nil {
		var unsupported config.UnsupportedDirective
		if !errors.As(err, &unsupported) || krbCfg == nil {
			return nil, fmt.Errorf("cannot parse krb5.conf %s: %w", path, err)
		}
		// gokrb5 ignores directives such as include; say so, then go on.
		log.Warn("krb5.conf has directives the kerberos module ignores", "file", path, "detail", err.Error())
	}
	ld := krbCfg.LibDefaults
	for _, l := range []struct {
		name string
		ids  []int32
	}{
		{"default_tkt_enctypes", ld.DefaultTktEnctypeIDs},
		{"default_tgs_enctypes", ld.DefaultTGSEnctypeIDs},
		{"permitted_enctypes", ld.PermittedEnctypeIDs},
	} {
		if len(l.ids) == 0 {
			return nil, fmt.Errorf("%s: %s names no encryption type sks supports: list aes256-cts-hmac-sha1-96, aes128-cts-hmac-sha1-96, aes128-cts-hmac-sha256-128 or aes256-cts-hmac-sha384-192 explicitly (gokrb5 does not understand DEFAULT or family names)", path, l.name)
		}
	}
	return krbCfg, nil
}

// loadKeytab reads the keytab, refuses one that group or others may read,
// and checks that it holds a usable key for the service principal.
func loadKeytab(path string, svc types.PrincipalName, realm string) (*keytab.Keytab, error) {
	full := svc.PrincipalNameString() + "@" + realm
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read keytab %s: %w (export the key with kadmin: ktadd -k %s %s)", path, err, path, full)
	}
	if err := secretfile.CheckMode("keytab", path, fi.Mode()); err != nil {
		return nil, err
	}
	kt, err := keytab.Load(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read keytab %s: %w", path, err)
	}
	var have []string
	usable := false
	for _, e := range kt.Entries {
		if e.Principal.Realm != realm || !slices.Equal(e.Principal.Components, svc.NameString) {
			continue
		}
		name := strconv.Itoa(int(e.Key.KeyType))
		for n, id := range etypeID.ETypesByName {
			// several aliases share an id; the longest is the full name
			if id == e.Key.KeyType && (len(n) > len(name) || (len(n) == len(name) && n < name)) {
				name = n
			}
		}
		have = append(have, name)
		if etypeID.EtypeSupported(name) != 0 {
			usable = true
		}
	}
	switch {
	case len(have) == 0:
		return nil, fmt.Errorf("keytab %s has no key for %s: export it with kadmin: ktadd -k %s %s (or fix service_principal)", path, full, path, full)
	case !usable:
		return nil, fmt.Errorf("keytab %s holds only keys of types sks cannot use for %s (%s; camellia is not supported): add an aes key, e.g. kadmin: ktadd -k %s -e aes256-cts-hmac-sha1-96:normal %s", path, full, strings.Join(have, ", "), path, full)
	}
	return kt, nil
}

// probe dials the default realm's KDCs over TCP and warns when none answers.
func (k *Kerberos) probe() {
	_, kdcs, err := k.krbCfg.GetKDCs(k.realm, true)
	if err != nil {
		return
	}
	per := min(k.timeout, 2*time.Second)
	var errs []string
	for i := 1; i <= len(kdcs); i++ {
		c, err := net.DialTimeout("tcp", kdcs[i], per)
		if err == nil {
			c.Close()
			return
		}
		errs = append(errs, err.Error())
	}
	k.log.Warn("kdc unreachable at start: check kdc= in krb5.conf; logins will fail as unavailable until it answers", "error", strings.Join(errs, "; "))
}

// Login checks user's password with the KDC and validates the answer with the
// keytab. A wrong password, an unknown or locked principal, an expired
// password or a realm not in allowed_realms is (Identity{}, false, nil).
// Unreachable KDCs, timeouts and clock skew return an error wrapping
// authn.ErrUnavailable; a failed validation returns one wrapping
// ErrKDCNotVerified.
//
// gokrb5 takes no context and has its own fixed 5 s network deadlines, so the
// exchange runs in a goroutine and Login returns when ctx or the configured
// timeout ends, whichever is first. The abandoned exchange finishes in the
// background (bounded by gokrb5's deadlines) and at most maxInFlight of them
// run at once.
func (k *Kerberos) Login(ctx context.Context, user, password string) (authn.Identity, bool, error) {
	if authn.ValidUser(user) != nil || !authn.ValidPassword(password) {
		k.log.Debug("login refused: user name or password not acceptable")
		return authn.Identity{}, false, nil
	}
	name, realm, ok := k.splitPrincipal(user)
	if !ok {
		k.log.Debug("login refused: principal not acceptable or realm not allowed", "user", user)
		return authn.Identity{}, false, nil
	}
	log := k.log.With("principal", name+"@"+realm)

	if err := ctx.Err(); err != nil {
		return authn.Identity{}, false, fmt.Errorf("kerberos login not started: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	select {
	case k.inFlight <- struct{}{}:
	case <-ctx.Done():
		log.Warn("kerberos login not started: too many kdc exchanges still running; the kdc is slow or unreachable")
		return authn.Identity{}, false, fmt.Errorf("kerberos login not started: %w (%w)", authn.ErrUnavailable, ctx.Err())
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-k.inFlight }()
		done <- k.exchange(name, realm, password)
	}()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		log.Warn("kdc did not answer in time: check that the kdc is up and kdc= in krb5.conf", "timeout", k.timeout)
		return authn.Identity{}, false, fmt.Errorf("kerberos login: no answer from the kdc: %w (%w)", authn.ErrUnavailable, ctx.Err())
	}
	if err != nil {
		return k.failed(log, err)
	}

	id := name
	if !k.strip || realm != k.realm {
		id = name + "@" + realm
	}
	log.Debug("login succeeded", "validated", k.kt != nil)
	return authn.Identity{User: id}, true, nil
}

// CanonicalUser implements authn.Canonicalizer: a principal of the default
// realm is its name alone whatever strip_realm says ("alice@EXAMPLE.ORG"
// and "alice" are one principal, and one account for the brute-force
// limits); other realms keep "@REALM". The realm is compared without
// regard to case, so that no spelling of it escapes the count.
func (k *Kerberos) CanonicalUser(user string) string {
	if i := strings.LastIndexByte(user, '@'); i >= 0 && strings.EqualFold(user[i+1:], k.realm) {
		return user[:i]
	}
	return user
}

// splitPrincipal splits "name[@REALM]" and checks the realm is allowed.
// Backslashes are refused because MIT treats them as escapes and gokrb5 does
// not; empty components ("a//b", "a/") are refused as never valid.
func (k *Kerberos) splitPrincipal(user string) (name, realm string, ok bool) {
	name, realm = user, k.realm
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		name, realm = user[:i], user[i+1:]
	}
	if name == "" || strings.ContainsAny(name, "@\\") || !slices.Contains(k.allowed, realm) {
		return "", "", false
	}
	if slices.Contains(strings.Split(name, "/"), "") {
		return "", "", false
	}
	return name, realm, true
}

// The steps of a login, as error messages and logs name them.
const (
	stageAS     = "as exchange"            // password check, TGT
	stageTGS    = "service ticket request" // TGS exchange for the service principal
	stageVerify = "validation"             // decrypting that ticket with the keytab
)

// stageError says which step of a login failed, so that the same gokrb5
// error can be read differently in the AS and the TGS exchange.
type stageError struct {
	stage string // one of the stage constants
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// exchange runs the AS exchange and, with a keytab, the validation. It uses a
// client of its own so that logins do not serialize on a shared client.
func (k *Kerberos) exchange(name, realm, password string) error {
	cl := client.NewWithPassword(name, realm, password, k.krbCfg, client.DisablePAFXFAST(true))
	// Destroy stops the TGT auto-renewal goroutine gokrb5 starts on Login.
	defer cl.Destroy()
	if err := cl.Login(); err != nil {
		return &stageError{stageAS, err}
	}
	if k.kt == nil {
		return nil
	}
	tkt, key, err := cl.GetServiceTicket(k.spn)
	if err != nil {
		return &stageError{stageTGS, err}
	}
	if err := k.verify(tkt, key, cl.Credentials.CName(), realm); err != nil {
		return &stageError{stageVerify, err}
	}
	return nil
}

// verify proves the service ticket came from the real KDC and belongs to this
// login. Decrypting with the keytab shows the KDC knew the service key. The
// client name check stops a fake KDC from replaying a real ticket it got for
// another principal; the session key check stops it from replaying a real
// ticket of this user that it sniffed (it cannot know that ticket's session
// key, and the one it handed the client must match).
func (k *Kerberos) verify(tkt messages.Ticket, sessionKey types.EncryptionKey, cname types.PrincipalName, crealm string) error {
	if tkt.Realm != k.svcRealm || !tkt.SName.Equal(k.svcName) {
		return fmt.Errorf("%w: service ticket is for %s@%s, not %s@%s", ErrKDCNotVerified,
			tkt.SName.PrincipalNameString(), tkt.Realm, k.spn, k.svcRealm)
	}
	if err := tkt.DecryptEncPart(k.kt, &k.svcName); err != nil {
		return fmt.Errorf("%w: cannot decrypt the service ticket with keytab %s (spoofed kdc, or the keytab lacks the current key of %s@%s: re-export it with ktadd): %v",
			ErrKDCNotVerified, k.keytabPath, k.spn, k.svcRealm, err)
	}
	enc := tkt.DecryptedEncPart
	if enc.CRealm != crealm || !enc.CName.Equal(cname) {
		return fmt.Errorf("%w: service ticket names client %s@%s", ErrKDCNotVerified, enc.CName.PrincipalNameString(), enc.CRealm)
	}
	if enc.Key.KeyType != sessionKey.KeyType || subtle.ConstantTimeCompare(enc.Key.KeyValue, sessionKey.KeyValue) != 1 {
		return fmt.Errorf("%w: session key in the service ticket differs from the one the kdc sent", ErrKDCNotVerified)
	}
	if ok, err := tkt.Valid(k.krbCfg.LibDefaults.Clockskew); !ok {
		return fmt.Errorf("%w: service ticket not valid now: %v", ErrKDCNotVerified, err)
	}
	return nil
}

// failed turns an exchange error into Login's answer and logs it.
func (k *Kerberos) failed(log *slog.Logger, err error) (authn.Identity, bool, error) {
	var se *stageError
	stage := ""
	if errors.As(err, &se) {
		stage = se.stage
	}
	if errors.Is(err, ErrKDCNotVerified) {
		log.Error("login refused: kdc answer failed validation; either a fake kdc answered or the keytab does not match the kdc", "error", err)
		return authn.Identity{}, false, fmt.Errorf("kerberos login: %w", err)
	}

	code, isKDC := kdcErrorCode(err)
	switch {
	case isKDC && stage == stageAS && isCredentialFailure(code):
		lvl := slog.LevelDebug
		if code == errorcode.KDC_ERR_CLIENT_REVOKED || code == errorcode.KDC_ERR_KEY_EXPIRED {
			lvl = slog.LevelInfo // worth an administrator's eye, not the client's
		}
		log.Log(context.Background(), lvl, "login failed", "reason", errorcode.Lookup(code))
		return authn.Identity{}, false, nil
	case isKDC && code == errorcode.KRB_AP_ERR_SKEW, isClientSkew(err):
		log.Error("clock skew: check NTP; this host's clock and the kdc's differ by more than the allowed skew", "error", err)
		return authn.Identity{}, false, fmt.Errorf("kerberos login: clock skew with the kdc: %w", authn.ErrUnavailable)
	case isKDC && code == errorcode.KDC_ERR_SVC_UNAVAILABLE:
		log.Error("kdc says it is unavailable", "error", err)
		return authn.Identity{}, false, fmt.Errorf("kerberos login: kdc unavailable: %w", authn.ErrUnavailable)
	case isKDC && stage == stageTGS && code == errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN:
		log.Error("service principal unknown to the kdc: create it (kadmin: addprinc -randkey "+k.spn+") and export its key to the keytab", "error", err)
		return authn.Identity{}, false, fmt.Errorf("kerberos %s: service principal %s@%s unknown to the kdc: %w", stage, k.spn, k.svcRealm, err)
	case isKDC:
		log.Error("kdc refused the request", "stage", stage, "reason", errorcode.Lookup(code), "error", err)
		return authn.Identity{}, false, fmt.Errorf("kerberos %s refused by the kdc: %w", stage, err)
	case rootCause(err) == krberror.NetworkingError:
		log.Error("kdc unreachable: check kdc= in krb5.conf and that the kdc is running", "stage", stage, "error", err)
		return authn.Identity{}, false, fmt.Errorf("kerberos %s: kdc unreachable: %w", stage, authn.ErrUnavailable)
	case stage == stageAS && rootCause(err) == krberror.DecryptingError:
		// Without preauth the KDC answers any password and the client finds
		// out when the reply does not decrypt: a wrong password.
		log.Debug("login failed", "reason", "reply not decryptable with the password")
		return authn.Identity{}, false, nil
	default:
		log.Error("kerberos login failed", "stage", stage, "error", err)
		return authn.Identity{}, false, fmt.Errorf("kerberos %s: %w", stage, err)
	}
}

// isCredentialFailure reports KDC error codes that mean "this user cannot log
// in with this password", as opposed to trouble with the KDC or sks.
func isCredentialFailure(code int32) bool {
	switch code {
	case errorcode.KDC_ERR_PREAUTH_FAILED, errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN,
		errorcode.KDC_ERR_CLIENT_REVOKED, errorcode.KDC_ERR_KEY_EXPIRED:
		return true
	}
	return false
}

// krbErrorText matches how gokrb5 prints a messages.KRBError
// (errorcode.Lookup): "KRB Error: (24) KDC_ERR_PREAUTH_FAILED ...".
var krbErrorText = regexp.MustCompile(`KRB Error: (?:\((-?\d+)\)|Unknown ErrorCode (-?\d+))`)

// kdcErrorCode finds the error code of a KRB-ERROR the KDC sent. A
// messages.KRBError is used directly when it is in the chain; gokrb5 v8's
// client, however, flattens it into the text of a krberror.Krberror with root
// cause KDC_Error (krberror.Errorf formats it with %s), so for those the code
// is read back from gokrb5's own fixed rendering of the error.
func kdcErrorCode(err error) (int32, bool) {
	var ke messages.KRBError
	if errors.As(err, &ke) {
		return ke.ErrorCode, true
	}
	var kerr krberror.Krberror
	if !errors.As(err, &kerr) || kerr.RootCause != krberror.KDCError {
		return 0, false
	}
	m := krbErrorText.FindStringSubmatch(kerr.Error())
	if m == nil {
		return 0, false
	}
	n, perr := strconv.ParseInt(m[1]+m[2], 10, 32)
	if perr != nil {
		return 0, false
	}
	return int32(n), true
}

// rootCause returns the root cause of a gokrb5 error, or "".
func rootCause(err error) string {
	var kerr krberror.Krberror
	if errors.As(err, &kerr) {
		return kerr.RootCause
	}
	return ""
}

// isClientSkew reports gokrb5's own clock check on the AS reply, which it
// only reports as text ("clock skew with KDC too large").
func isClientSkew(err error) bool {
	return rootCause(err) == krberror.KRBMsgError && strings.Contains(err.Error(), "clock skew")
}
