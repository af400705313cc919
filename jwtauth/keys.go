package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/sks-server/sks/pkcs8"
	"github.com/sks-server/sks/secretfile"
)

// ErrLooseFileMode is returned for secret files readable by group or others.
// It is secretfile.ErrLooseMode, so either matches with errors.Is.
var ErrLooseFileMode = secretfile.ErrLooseMode

// expandHome turns a leading "~/" into the home directory, since OPAL's
// examples write key paths that way.
func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[2:])
		}
	}
	return p
}

// isInlinePEM reports whether s is key material rather than a path.
func isInlinePEM(s string) bool {
	return strings.HasPrefix(strings.TrimSpace(s), "-----BEGIN")
}

// inlinePEM undoes OPAL's convention of writing newlines as "_". PEM text
// never contains "_" (base64 uses + and /, headers use letters, digits,
// spaces, dashes, commas and colons), so the replacement is unambiguous.
func inlinePEM(s string) []byte {
	return []byte(strings.ReplaceAll(strings.TrimSpace(s), "_", "\n") + "\n")
}

// loadPrivateKey reads the signing key from a path or inline PEM.
func loadPrivateKey(spec, passphrase string) (crypto.Signer, error) {
	var data []byte
	if isInlinePEM(spec) {
		data = inlinePEM(spec)
	} else {
		var err error
		if data, err = secretfile.Read(expandHome(spec)); err != nil {
			return nil, fmt.Errorf("cannot read signing key: %w", err)
		}
	}
	k, err := parsePrivateKeyPEM(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("cannot parse signing key: %w", err)
	}
	return k, nil
}

// loadPublicKey reads a retired key from a path or inline PEM. Public key
// files may be world-readable; private key files given here are checked
// like the signing key.
func loadPublicKey(spec string) (crypto.PublicKey, error) {
	var data []byte
	if isInlinePEM(spec) {
		data = inlinePEM(spec)
	} else {
		var err error
		if data, err = os.ReadFile(expandHome(spec)); err != nil {
			return nil, fmt.Errorf("cannot read public key: %w", err)
		}
		if strings.Contains(string(data), "PRIVATE KEY-----") {
			if data, err = secretfile.Read(expandHome(spec)); err != nil {
				return nil, fmt.Errorf("cannot read public key: %w", err)
			}
		}
	}
	return parsePublicKeyPEM(data)
}

// parsePrivateKeyPEM finds the first private key block in data.
func parsePrivateKeyPEM(data []byte, passphrase string) (crypto.Signer, error) {
	if strings.HasPrefix(strings.TrimSpace(string(data)), "ssh-") {
		return nil, errors.New("this is an OpenSSH public key, not a private key")
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key found")
		}
		der := b.Bytes
		//lint:ignore SA1019 legacy PEM encryption is what ssh-keygen -m pem writes.
		if x509.IsEncryptedPEMBlock(b) { //nolint:staticcheck
			if passphrase == "" {
				return nil, errors.New("key is encrypted and no passphrase is configured")
			}
			var err error
			//lint:ignore SA1019 see above; only decryption is supported.
			if der, err = x509.DecryptPEMBlock(b, []byte(passphrase)); err != nil { //nolint:staticcheck
				return nil, fmt.Errorf("cannot decrypt legacy PEM key (wrong passphrase?): %w", err)
			}
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(der)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(der)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(der)
		case "ENCRYPTED PRIVATE KEY":
			if passphrase == "" {
				return nil, errors.New("key is encrypted and no passphrase is configured")
			}
			k, err = pkcs8.Decrypt(der, []byte(passphrase))
		case "OPENSSH PRIVATE KEY":
			return nil, errors.New("OpenSSH key format is not supported; convert it in place with ssh-keygen -p -m pem -f FILE")
		default:
			continue // e.g. "EC PARAMETERS" before the key
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.ToLower(b.Type), err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		if _, err := algForKey(s.Public()); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// parsePublicKeyPEM finds the first public key in data; a private key or a
// certificate yields its public key.
func parsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	if strings.HasPrefix(strings.TrimSpace(string(data)), "ssh-") || strings.HasPrefix(strings.TrimSpace(string(data)), "ecdsa-") {
		return nil, errors.New("OpenSSH public keys are not supported; convert with ssh-keygen -e -m pkcs8 -f FILE")
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM public key found")
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = c.PublicKey
			}
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			var s crypto.Signer
			if s, err = parsePrivateKeyPEM(pem.EncodeToMemory(b), ""); err == nil {
				pub = s.Public()
			}
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private key given as public key; export the public key with openssl pkey -pubout")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.ToLower(b.Type), err)
		}
		if _, err := algForKey(pub); err != nil {
			return nil, err
		}
		return pub, nil
	}
}

// algForKey returns the JWS algorithm a public key signs with.
func algForKey(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA curve %s is not supported; ES256 needs P-256", k.Curve.Params().Name)
		}
		return jose.ES256, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA key of %d bits is too small; use at least 2048", k.N.BitLen())
		}
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T (use ECDSA P-256, RSA or Ed25519)", pub)
}

// publicJWK returns the published form of a key, with the RFC 7638
// thumbprint as kid: stable across restarts and hosts, and derived from
// the key alone, so nobody has to keep key ids in sync by hand.
func publicJWK(pub crypto.PublicKey) (jose.JSONWebKey, error) {
	alg, err := algForKey(pub)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	k := jose.JSONWebKey{Key: pub, Algorithm: string(alg), Use: "sig"}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("cannot compute key thumbprint: %w", err)
	}
	k.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return k, nil
}

// GenKeypair writes a new signing key pair into dir (created 0700 if
// missing): the private key as unencrypted PKCS#8 PEM with mode 0600 and the
// public key as PKIX PEM with mode 0644. alg is ES256 (also for ""), RS256
// (3072-bit) or EdDSA. File names carry the algorithm and the start of the
// kid, so a rotation never overwrites the active key. It returns both paths.
func GenKeypair(dir, alg string) (privPath, pubPath string, err error) {
	var priv crypto.Signer
	switch alg {
	case "", "ES256":
		alg = "ES256"
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return "", "", fmt.Errorf("cannot generate key: algorithm %q: use ES256, RS256 or EdDSA", alg)
	}
	if err != nil {
		return "", "", fmt.Errorf("cannot generate %s key: %w", alg, err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", fmt.Errorf("cannot encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return "", "", fmt.Errorf("cannot encode public key: %w", err)
	}
	jwk, err := publicJWK(priv.Public())
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("cannot create key directory: %w", err)
	}
	base := filepath.Join(dir, "jwt-"+strings.ToLower(alg)+"-"+jwk.KeyID[:8])
	privPath, pubPath = base+".key", base+".pub"
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(privPath)
		return "", "", err
	}
	return privPath, pubPath, nil
}

// writeNew creates path exclusively with mode perm (umask notwithstanding)
// and writes data durably.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// GenerateSecret returns a new random secret for a master token: 256 bits
// from crypto/rand, base64url without padding (43 characters, safe in
// shells, headers and TOML).
func GenerateSecret() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails; panics if the system RNG is broken
	return b
}

// shortHash returns a short, non-reversible tag for logging a secret or token.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", h[:4])
}

// LoadSigningKey reads cfg's signing key (a path or inline PEM, with its
// passphrase) as Open does, and returns it with its published JWK (the kid
// is the RFC 7638 thumbprint). For tools that print the public key in a
// verifier's format.
func LoadSigningKey(cfg Config) (crypto.Signer, jose.JSONWebKey, error) {
	if cfg.SigningKey == "" {
		return nil, jose.JSONWebKey{}, ErrNoSigningKey
	}
	priv, err := loadPrivateKey(cfg.SigningKey, cfg.SigningKeyPassphrase)
	if err != nil {
		return nil, jose.JSONWebKey{}, err
	}
	jwk, err := publicJWK(priv.Public())
	if err != nil {
		return nil, jose.JSONWebKey{}, fmt.Errorf("signing key: %w", err)
	}
	return priv, jwk, nil
}
