// Package jwtauth issues signed JWTs (from sessions, from a master token, or
// offline from the key file), publishes the verification keys as a JWKS with
// rotation, and checks machine credentials: a master token (OPAL) and HMAC
// API keys (cyphernode).
//
// The library is github.com/go-jose/go-jose/v4: it has JWK and JWKS types
// and RFC 7638 thumbprints built in, and its parser takes an explicit list
// of acceptable algorithms, which rules out "none" and HS/RS confusion by
// construction. golang-jwt/jwt/v5 is used only in tests, as an independent
// verifier. The HMAC API-key tokens are parsed by hand, because cyphernode's
// shell recipe produces tokens no JWT library accepts (padded base64 of
// JSON with a trailing newline, hex signatures).
package jwtauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sks-server/sks/httpcred"
	"github.com/sks-server/sks/secretfile"
)

// MaxTokenBytes is the largest token accepted; longer ones are refused
// before any parsing.
const MaxTokenBytes = 8 << 10

// Sentinel errors; match them with errors.Is.
var (
	ErrNoSigningKey    = errors.New("jwt signing is not configured (no [jwt] signing_key)")
	ErrTokenTooLarge   = errors.New("token too large")
	ErrMalformed       = errors.New("malformed token")
	ErrBadAlgorithm    = errors.New("algorithm not accepted")
	ErrUnknownKey      = errors.New("unknown key id")
	ErrBadSignature    = errors.New("bad signature")
	ErrExpired         = errors.New("token expired")
	ErrTooFarAhead     = errors.New("token expiry too far ahead")
	ErrReplay          = errors.New("token already used")
	ErrInvalidClaims   = errors.New("invalid claims")
	ErrTTLTooLong      = errors.New("lifetime exceeds max_ttl")
	ErrNoCredential    = errors.New("no bearer credential")
	ErrNotConfigured   = errors.New("credential type not configured")
	ErrReplayCacheFull = errors.New("replay cache full")
)

// verifyLeeway is the clock skew tolerated when checking exp, nbf and iat of
// JWTs this server signed.
const verifyLeeway = 30 * time.Second

// pubKey is one key in the JWKS.
type pubKey struct {
	jwk       jose.JSONWebKey
	alg       jose.SignatureAlgorithm
	retiredAt time.Time // zero for the active key
	// rotated marks a former signing key kept in memory after a Reload
	// replaced it (not listed in retired_keys); it is carried over to the
	// next Reload while it is still published.
	rotated bool
}

// keyring is what Open and Reload read from files: the signer, the
// published keys and the master token. It is replaced as a whole, so a
// request sees either the old or the new keys, never a mix.
type keyring struct {
	signer jose.Signer // nil without a signing key
	active *pubKey     // keys[0] when signer is set
	keys   []pubKey    // active first, then retired in config order, then rotated
	master *[sha256.Size]byte
}

// Issuer signs tokens, serves the JWKS and checks machine credentials.
// Its methods are safe for concurrent use.
//
// An Issuer opened without signing_key is valid: the JWKS lists retired keys
// only, AdminAuth and API keys work, and every signing method returns
// ErrNoSigningKey (MintHandler answers 503).
type Issuer struct {
	cfg    Config
	log    *slog.Logger
	ring   atomic.Pointer[keyring]
	api    *APIKeys
	claims *claimMap

	reloadMu sync.Mutex // one Reload at a time
	mu       sync.RWMutex
	now      func() time.Time
}

// Open checks cfg, loads the keys and credential files it names and returns
// an Issuer. All state comes from cfg and files, so a restart with the old
// key moved to retired_keys continues a rotation.
func Open(cfg Config, log *slog.Logger) (*Issuer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("jwt configuration: %w", err)
	}
	cfg = cfg.withDefaults()
	i := &Issuer{cfg: cfg, log: log.With("module", "jwt"), now: time.Now}
	cm, err := newClaimMap(cfg)
	if err != nil {
		return nil, fmt.Errorf("jwt configuration: %w", err)
	}
	i.claims = cm
	ring, err := i.loadKeyring()
	if err != nil {
		return nil, err
	}
	i.ring.Store(ring)
	if ring.active != nil {
		i.log.Info("jwt signing key loaded", "alg", ring.active.alg, "kid", ring.active.jwk.KeyID)
	}
	if cfg.APIKeysFile != "" {
		a, err := LoadAPIKeys(cfg.APIKeysFile, cfg.HMACMaxAhead.Duration, i.log)
		if err != nil {
			return nil, err
		}
		i.api = a
	}
	return i, nil
}

// loadKeyring reads the signing key, the retired keys and the master token
// named by i.cfg.
func (i *Issuer) loadKeyring() (*keyring, error) {
	cfg := i.cfg
	r := &keyring{}
	seen := map[string]bool{}
	if cfg.SigningKey != "" {
		priv, err := loadPrivateKey(cfg.SigningKey, cfg.SigningKeyPassphrase)
		if err != nil {
			return nil, err
		}
		jwk, err := publicJWK(priv.Public())
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		alg := jose.SignatureAlgorithm(jwk.Algorithm)
		if cfg.Algorithm != "" && cfg.Algorithm != string(alg) {
			return nil, fmt.Errorf("signing key is a %s key but algorithm is %s", alg, cfg.Algorithm)
		}
		r.signer, err = jose.NewSigner(
			jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: jwk.KeyID, Algorithm: string(alg)}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			return nil, fmt.Errorf("cannot create signer: %w", err)
		}
		r.keys = append(r.keys, pubKey{jwk: jwk, alg: alg})
		seen[jwk.KeyID] = true
	}
	for n, rk := range cfg.RetiredKeys {
		pub, err := loadPublicKey(rk.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("retired_keys[%d]: %w", n, err)
		}
		jwk, err := publicJWK(pub)
		if err != nil {
			return nil, fmt.Errorf("retired_keys[%d]: %w", n, err)
		}
		if seen[jwk.KeyID] {
			i.log.Warn("retired key is listed twice or is the signing key; ignoring the duplicate", "index", n, "kid", jwk.KeyID)
			continue
		}
		seen[jwk.KeyID] = true
		r.keys = append(r.keys, pubKey{jwk: jwk, alg: jose.SignatureAlgorithm(jwk.Algorithm), retiredAt: rk.RetiredAt})
	}
	if r.signer != nil {
		r.active = &r.keys[0]
	}
	if cfg.MasterTokenFile != "" {
		b, err := secretfile.Read(expandHome(cfg.MasterTokenFile))
		if err != nil {
			return nil, fmt.Errorf("cannot read master token: %w", err)
		}
		tok, _, _ := strings.Cut(string(b), "\n")
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return nil, fmt.Errorf("master token file %s is empty (sks generate-secret makes one)", cfg.MasterTokenFile)
		}
		if len(tok) < 20 {
			i.log.Warn("master token is short; sks generate-secret makes a strong one", "length", len(tok))
		}
		d := sha256.Sum256([]byte(tok))
		r.master = &d
	}
	return r, nil
}

// Reload rereads the signing key, the retired keys and the master token
// from the files the configuration names (cmd/serve calls it on SIGHUP, as
// for the TLS material). A signing key that changed starts signing at
// once; the former one stays in the JWKS, and keeps verifying, for max_ttl
// from now, so tokens it signed stay valid until they expire (list it in
// retired_keys to keep it across a restart). On any error the previous
// keys stay in use and the error is returned.
func (i *Issuer) Reload() error {
	i.reloadMu.Lock()
	defer i.reloadMu.Unlock()
	old := i.ring.Load()
	r, err := i.loadKeyring()
	if err != nil {
		i.log.Warn("keeping previous jwt keys", "err", err)
		return fmt.Errorf("cannot reload jwt keys: %w", err)
	}
	now := i.clock()
	have := map[string]bool{}
	for _, k := range r.keys {
		have[k.jwk.KeyID] = true
	}
	var carried []pubKey
	if old.active != nil && !have[old.active.jwk.KeyID] {
		k := *old.active
		k.retiredAt, k.rotated = now, true
		carried = append(carried, k)
		have[k.jwk.KeyID] = true
		i.log.Info("jwt signing key rotated; the former key stays published", "old_kid", k.jwk.KeyID, "until", now.Add(i.cfg.MaxTTL.Duration))
	}
	for _, k := range old.keys {
		if k.rotated && !have[k.jwk.KeyID] && i.published(&k, now) {
			carried = append(carried, k)
			have[k.jwk.KeyID] = true
		}
	}
	r.keys = append(r.keys, carried...)
	if r.signer != nil {
		r.active = &r.keys[0] // keys may have been reallocated
	}
	i.ring.Store(r)
	kid := ""
	if r.active != nil {
		kid = r.active.jwk.KeyID
	}
	i.log.Info("jwt keys reloaded", "kid", kid, "published", len(r.keys))
	return nil
}

// SetClock replaces the clock (time.Now) of the Issuer and its API keys; for
// tests. Call it before serving.
func (i *Issuer) SetClock(now func() time.Time) {
	i.mu.Lock()
	i.now = now
	i.mu.Unlock()
	if i.api != nil {
		i.api.SetClock(now)
	}
}

func (i *Issuer) clock() time.Time {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.now()
}

// Enabled reports whether a signing key is configured.
func (i *Issuer) Enabled() bool { return i != nil && i.ring.Load().signer != nil }

// KeyID returns the kid of the active signing key, or "" without one.
func (i *Issuer) KeyID() string {
	if a := i.ring.Load().active; a != nil {
		return a.jwk.KeyID
	}
	return ""
}

// APIKeys returns the HMAC API keys, or nil when api_keys_file is not set.
func (i *Issuer) APIKeys() *APIKeys { return i.api }

// reserved are the claims the server sets itself.
var reserved = map[string]bool{"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true}

// Mint signs a token for sub with the given extra claims and lifetime
// (0 means max_ttl; longer than max_ttl is refused with ErrTTLTooLong,
// because retired keys are published only for max_ttl). Extra claims may
// not set iss, sub, aud, exp, nbf, iat or jti. It returns the token and its
// expiry.
func (i *Issuer) Mint(sub string, claims map[string]any, ttl time.Duration) (string, time.Time, error) {
	ring := i.ring.Load()
	if ring.signer == nil {
		return "", time.Time{}, ErrNoSigningKey
	}
	if ttl == 0 {
		ttl = i.cfg.MaxTTL.Duration
	}
	if ttl < 0 {
		return "", time.Time{}, fmt.Errorf("%w: lifetime %s is negative", ErrInvalidClaims, ttl)
	}
	if ttl > i.cfg.MaxTTL.Duration {
		return "", time.Time{}, fmt.Errorf("%w: %s is longer than %s (raise [jwt] max_ttl to allow it, e.g. max_ttl = \"8760h\" for OPAL's default of 365 days)", ErrTTLTooLong, ttl, i.cfg.MaxTTL.Duration)
	}
	for k := range claims {
		if reserved[k] {
			return "", time.Time{}, fmt.Errorf("%w: claim %q is set by the server", ErrInvalidClaims, k)
		}
	}
	now := i.clock().Truncate(time.Second)
	exp := now.Add(ttl)
	std := jwt.Claims{
		Issuer:    i.cfg.Issuer,
		Subject:   sub,
		Audience:  jwt.Audience(i.cfg.Audience),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(exp),
		ID:        base64.RawURLEncoding.EncodeToString(randomBytes(16)),
	}
	b := jwt.Signed(ring.signer).Claims(std)
	if len(claims) > 0 {
		b = b.Claims(maps.Clone(claims))
	}
	tok, err := b.Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("cannot sign token: %w", err)
	}
	if len(tok) > MaxTokenBytes {
		return "", time.Time{}, fmt.Errorf("%w: %d bytes with these claims, at most %d", ErrTokenTooLarge, len(tok), MaxTokenBytes)
	}
	i.log.Debug("jwt issued", "sub", sub, "jti", std.ID, "exp", exp, "kid", ring.active.jwk.KeyID)
	return tok, exp, nil
}

// SessionJWT signs a short-lived (session_ttl) token describing a session:
// sub, realm, roles, source and sid (pass a short hash of the session
// token, never the token), the claims [jwt.claims] or
// [jwt.realm_claims.<realm>] map the roles to, plus iat, nbf, exp, jti and
// the configured iss and aud. It returns the token and its expiry.
func (i *Issuer) SessionJWT(sub, realm, source, sid string, roles []string) (string, time.Time, error) {
	if roles == nil {
		roles = []string{}
	}
	claims := i.claims.forSession(realm, roles)
	if claims == nil {
		claims = map[string]any{}
	}
	claims["realm"], claims["source"], claims["sid"], claims["roles"] = realm, source, sid, roles
	return i.Mint(sub, claims, i.cfg.SessionTTL.Duration)
}

// Claims are the verified contents of a token signed by this server.
type Claims struct {
	jwt.Claims
	Realm  string   `json:"realm,omitempty"`
	Source string   `json:"source,omitempty"`
	SID    string   `json:"sid,omitempty"`
	Roles  []string `json:"roles,omitempty"`
	// Extra holds every claim, including the ones above, as decoded JSON.
	Extra map[string]any `json:"-"`
}

// Verify checks a JWT signed by the active key or a still-published retired
// key: size, algorithm (only the key's own asymmetric algorithm; never
// "none" or HS*), kid (looked up in memory only), signature, and exp, nbf,
// iss and aud with 30s leeway.
func (i *Issuer) Verify(token string) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, ErrTokenTooLarge
	}
	// Look at alg first, so a refused algorithm ("none", HS256) is reported
	// as such; go-jose refuses it too, but without a sentinel error.
	if err := checkHeaderAlg(token); err != nil {
		return nil, err
	}
	t, err := jwt.ParseSigned(token, signedAlgs)
	if err != nil {
		return nil, fmt.Errorf("cannot parse jwt: %w: %v", ErrMalformed, err)
	}
	if len(t.Headers) != 1 {
		return nil, fmt.Errorf("cannot parse jwt: %w: want one signature", ErrMalformed)
	}
	h := t.Headers[0]
	now := i.clock()
	var key *pubKey
	keys := i.ring.Load().keys
	for n := range keys {
		if keys[n].jwk.KeyID == h.KeyID && i.published(&keys[n], now) {
			key = &keys[n]
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("cannot verify jwt: %w %.64q", ErrUnknownKey, h.KeyID)
	}
	if h.Algorithm != string(key.alg) {
		return nil, fmt.Errorf("cannot verify jwt: %w: %s with a %s key", ErrBadAlgorithm, h.Algorithm, key.alg)
	}
	var c Claims
	if err := t.Claims(key.jwk.Key, &c, &c.Extra); err != nil {
		return nil, fmt.Errorf("cannot verify jwt: %w: %v", ErrBadSignature, err)
	}
	exp := jwt.Expected{Issuer: i.cfg.Issuer, AnyAudience: jwt.Audience(i.cfg.Audience), Time: now}
	if err := c.ValidateWithLeeway(exp, verifyLeeway); err != nil {
		if errors.Is(err, jwt.ErrExpired) {
			return nil, fmt.Errorf("cannot verify jwt: %w", ErrExpired)
		}
		return nil, fmt.Errorf("cannot verify jwt: %w: %v", ErrInvalidClaims, err)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("cannot verify jwt: %w: no exp", ErrInvalidClaims)
	}
	return &c, nil
}

// signedAlgs are the only algorithms Verify accepts.
var signedAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// checkHeaderAlg decodes the protected header of a compact JWS and refuses
// any alg outside signedAlgs.
func checkHeaderAlg(token string) error {
	h64, _, ok := strings.Cut(token, ".")
	if !ok {
		return fmt.Errorf("cannot parse jwt: %w: not a compact JWS", ErrMalformed)
	}
	hb, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return fmt.Errorf("cannot parse jwt: %w: header is not base64url", ErrMalformed)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return fmt.Errorf("cannot parse jwt: %w: header is not JSON", ErrMalformed)
	}
	for _, a := range signedAlgs {
		if h.Alg == string(a) {
			return nil
		}
	}
	return fmt.Errorf("cannot parse jwt: %w: %.20q", ErrBadAlgorithm, h.Alg)
}

// published reports whether k belongs in the JWKS at now.
func (i *Issuer) published(k *pubKey, now time.Time) bool {
	return k.retiredAt.IsZero() || k.retiredAt.Add(i.cfg.MaxTTL.Duration).After(now)
}

// JWKS returns the key set as published now: the active key and each retired
// key whose retired_at + max_ttl is still ahead.
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	now := i.clock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	keys := i.ring.Load().keys
	for n := range keys {
		if i.published(&keys[n], now) {
			set.Keys = append(set.Keys, keys[n].jwk)
		}
	}
	return set
}

// JWKSHandler serves the JWKS (RFC 7517) for GET and HEAD; mount it at
// /.well-known/jwks.json and /jwks.json. Verifiers such as Temporal refresh
// it periodically, so responses may be cached for a minute.
func (i *Issuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b, err := json.Marshal(i.JWKS())
		if err != nil {
			i.log.Error("cannot encode jwks", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write(append(b, '\n'))
	})
}

// checkMaster compares tok with the master token in constant time: both are
// hashed first, so neither content nor length leaks through timing.
func (i *Issuer) checkMaster(tok string) bool {
	master := i.ring.Load().master
	if master == nil {
		return false
	}
	d := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(d[:], master[:]) == 1
}

// AdminAuth checks the request's "Authorization: Bearer" credential: the
// master token (who is "master") or an HMAC API-key token (who is
// "apikey:<id>"; the token is then spent, see APIKeys.VerifyToken). Client
// certificates are the TLS layer's business. Failures are logged at debug
// level without the credential.
func (i *Issuer) AdminAuth(r *http.Request) (who string, ok bool) {
	tok, ok := httpcred.Bearer(r)
	if !ok {
		return "", false
	}
	if i.checkMaster(tok) {
		return "master", true
	}
	if i.api != nil && strings.Count(tok, ".") == 2 {
		id, err := i.api.VerifyToken(tok)
		if err == nil {
			return "apikey:" + id, true
		}
		i.log.Debug("admin credential refused", "reason", err, "token", shortHash(tok))
		return "", false
	}
	i.log.Debug("admin credential refused", "reason", "not the master token", "token", shortHash(tok))
	return "", false
}
