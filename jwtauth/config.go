package jwtauth

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a string such as "5m" or
// "24h". conf.Duration is an alias of it: it lives here because conf embeds
// jwtauth.Config as [jwt], and conf importing jwtauth while jwtauth imported
// conf would be an import cycle.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration %q (write e.g. \"30s\", \"8h\"): %w", b, err)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back in Go's notation.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the [jwt] section: the signing key, the keys still published
// after a rotation, the claims every token carries, and the machine
// credentials (master token, HMAC API keys) that may ask for tokens.
type Config struct {
	// SigningKey is the active private key: a path to a PEM file (which must
	// not be readable by group or others), or the PEM text itself written
	// inline with newlines replaced by "_" (OPAL's convention). Empty
	// disables signing; the JWKS then lists only retired keys.
	SigningKey string `toml:"signing_key"`
	// SigningKeyPassphrase decrypts an encrypted SigningKey: PKCS#8
	// "ENCRYPTED PRIVATE KEY" (PBES2 with PBKDF2 and AES-CBC or 3DES, as
	// openssl genpkey/pkcs8 write it) or legacy "Proc-Type: 4,ENCRYPTED" PEM
	// (as ssh-keygen -m pem writes it).
	SigningKeyPassphrase string `toml:"signing_key_passphrase"`
	// Algorithm is ES256, RS256 or EdDSA. Empty means the algorithm that fits
	// the key (ES256 for P-256, RS256 for RSA, EdDSA for Ed25519); new keys
	// default to ES256.
	Algorithm string `toml:"algorithm"`
	// RetiredKeys are former signing keys. Each stays in the JWKS until every
	// token it can have signed has expired: while retired_at + max_ttl is in
	// the future.
	RetiredKeys []RetiredKey `toml:"retired_keys"`
	// Issuer is the iss claim of issued tokens and the one required when
	// verifying. Empty leaves iss out.
	Issuer string `toml:"issuer"`
	// Audience is the aud claim of issued tokens. When verifying, a token must
	// name at least one of these. Empty leaves aud out.
	Audience []string `toml:"audience"`
	// SessionTTL is the lifetime of a JWT derived from a session. Default 5m.
	SessionTTL Duration `toml:"session_ttl"`
	// MaxTTL is the longest lifetime of any token sks signs (minted, offline
	// or session). Retired keys are published for this long after
	// retired_at, so do not lower it while old tokens are alive. Default 24h.
	MaxTTL Duration `toml:"max_ttl"`
	// MasterTokenFile holds the master token (first line) that POST /token
	// requires, as OPAL's OPAL_AUTH_MASTER_TOKEN. It must not be readable by
	// group or others. Empty disables /token and master-token admin access.
	MasterTokenFile string `toml:"master_token_file"`
	// APIKeysFile holds HMAC API keys, one "keyid=hex(key)" a line
	// (cyphernode's keys.properties). It must not be readable by group or
	// others. Empty disables API keys.
	APIKeysFile string `toml:"api_keys_file"`
	// Claims maps roles (LDAP groups, static roles) to extra claims of
	// session JWTs, e.g. Temporal's permissions; see RoleClaims. It applies
	// to realms without a RealmClaims entry, and to sks token -roles.
	Claims RoleClaims `toml:"claims"`
	// RealmClaims maps a realm name to its own RoleClaims, used instead of
	// Claims for that realm's sessions ([jwt.realm_claims.<realm>]).
	RealmClaims map[string]RoleClaims `toml:"realm_claims"`
	// HMACMaxAhead is how far in the future an API-key token's exp may be;
	// tokens valid for longer are refused, which bounds replay memory.
	// Default 60s.
	HMACMaxAhead Duration `toml:"hmac_max_ahead"`
}

// RetiredKey is a former signing key that verifiers may still need.
type RetiredKey struct {
	// PublicKey is a path to a PEM public key (PKIX "PUBLIC KEY", PKCS#1
	// "RSA PUBLIC KEY" or a certificate) or the PEM inline with "_" for
	// newlines. An unencrypted private key file is accepted too, so the old
	// signing_key path can be moved here as it is.
	PublicKey string `toml:"public_key"`
	// RetiredAt is when the key stopped signing (a TOML datetime such as
	// 2025-06-01T12:00:00Z).
	RetiredAt time.Time `toml:"retired_at"`
}

// Defaults of Config.
const (
	DefaultSessionTTL   = 5 * time.Minute
	DefaultMaxTTL       = 24 * time.Hour
	DefaultHMACMaxAhead = 60 * time.Second
)

// withDefaults returns a copy with defaults filled in.
func (c Config) withDefaults() Config {
	if c.SessionTTL.Duration <= 0 {
		c.SessionTTL.Duration = DefaultSessionTTL
	}
	if c.MaxTTL.Duration <= 0 {
		c.MaxTTL.Duration = DefaultMaxTTL
	}
	if c.HMACMaxAhead.Duration <= 0 {
		c.HMACMaxAhead.Duration = DefaultHMACMaxAhead
	}
	return c
}

// Validate checks the settings that do not need files, after filling defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	switch c.Algorithm {
	case "", "ES256", "RS256", "EdDSA":
	default:
		errs = append(errs, fmt.Errorf("algorithm %q: use ES256, RS256 or EdDSA", c.Algorithm))
	}
	if c.SessionTTL.Duration > c.MaxTTL.Duration {
		errs = append(errs, fmt.Errorf("session_ttl %s is longer than max_ttl %s", c.SessionTTL.Duration, c.MaxTTL.Duration))
	}
	if c.SigningKeyPassphrase != "" && c.SigningKey == "" {
		errs = append(errs, errors.New("signing_key_passphrase is set but signing_key is not"))
	}
	for n, rk := range c.RetiredKeys {
		if strings.TrimSpace(rk.PublicKey) == "" {
			errs = append(errs, fmt.Errorf("retired_keys[%d]: public_key is required", n))
		}
		if rk.RetiredAt.IsZero() {
			errs = append(errs, fmt.Errorf("retired_keys[%d]: retired_at is required (e.g. 2025-06-01T12:00:00Z)", n))
		}
	}
	for _, a := range c.Audience {
		if a == "" {
			errs = append(errs, errors.New("audience: empty entry"))
		}
	}
	return errors.Join(errs...)
}
