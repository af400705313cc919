package jwtauth

import (
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/go-jose/go-jose/v4"
	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/sks-server/sks/testrig"
)

// serveJWKS mounts the JWKS handler at both paths on a real server.
func serveJWKS(t *testing.T, i *Issuer) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/.well-known/jwks.json", i.JWKSHandler())
	mux.Handle("/jwks.json", i.JWKSHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestSessionJWTRoundTripWithGolangJWT(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			priv, _ := genKey(t, alg)
			i := openIssuer(t, Config{SigningKey: priv, Algorithm: alg, Issuer: "https://sks.example", Audience: []string{"temporal", "cc"}})
			srv := serveJWKS(t, i)
			tok, exp, err := i.SessionJWT("alice", "rcloud", "ldap", "3f2a9c1e", []string{"api", "admin"})
			if err != nil {
				t.Fatalf("SessionJWT: %v", err)
			}
			if got, want := time.Until(exp).Round(time.Minute), DefaultSessionTTL; got != want {
				t.Errorf("expiry in %s, want %s", got, want)
			}
			for _, path := range []string{"/.well-known/jwks.json", "/jwks.json"} {
				keys := fetchJWKS(t, srv.URL+path)
				if len(keys) != 1 {
					t.Fatalf("%s has %d keys, want 1", path, len(keys))
				}
				c, err := verifyWithGolangJWT(t, keys, tok, "https://sks.example", "cc", time.Now())
				if err != nil {
					t.Fatalf("golang-jwt via %s: %v", path, err)
				}
				for k, want := range map[string]any{"sub": "alice", "realm": "rcloud", "source": "ldap", "sid": "3f2a9c1e", "iss": "https://sks.example"} {
					if c[k] != want {
						t.Errorf("claim %s = %v, want %v", k, c[k], want)
					}
				}
				if roles, _ := c["roles"].([]any); len(roles) != 2 || roles[0] != "api" {
					t.Errorf("roles = %v", c["roles"])
				}
				for _, k := range []string{"iat", "nbf", "exp", "jti", "aud"} {
					if c[k] == nil {
						t.Errorf("claim %s missing", k)
					}
				}
			}
			// Our own verifier agrees.
			got, err := i.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Subject != "alice" || got.Realm != "rcloud" || got.SID != "3f2a9c1e" || len(got.Roles) != 2 {
				t.Errorf("Verify claims = %+v", got)
			}
		})
	}
}

// opensslVerify checks a JWS signature with the openssl command line.
func opensslVerify(t *testing.T, tok, pubPath, alg string) {
	t.Helper()
	testrig.Require(t, "openssl")
	parts := strings.Split(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.WriteFile(data, []byte(parts[0]+"."+parts[1]), 0o600)
	sigPath := filepath.Join(dir, "sig")
	var cmd *exec.Cmd
	switch alg {
	case "ES256":
		// JWS carries r||s; openssl wants an ASN.1 DER ECDSA-Sig-Value.
		if len(sig) != 64 {
			t.Fatalf("ES256 signature is %d bytes, want 64", len(sig))
		}
		der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(sigPath, der, 0o600)
		cmd = exec.Command("openssl", "dgst", "-sha256", "-verify", pubPath, "-signature", sigPath, data)
	case "RS256":
		os.WriteFile(sigPath, sig, 0o600)
		cmd = exec.Command("openssl", "dgst", "-sha256", "-verify", pubPath, "-signature", sigPath, data)
	case "EdDSA":
		os.WriteFile(sigPath, sig, 0o600)
		cmd = exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", data, "-sigfile", sigPath)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified") || strings.Contains(string(out), "Failure") {
		t.Fatalf("openssl does not verify the %s signature: %v: %s", alg, err, out)
	}
	// And a flipped signature must fail, so the check above means something.
	bad := append([]byte{}, sig...)
	bad[len(bad)/2] ^= 1
	if alg == "ES256" {
		der, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(bad[:32]), new(big.Int).SetBytes(bad[32:])})
		bad = der
	}
	os.WriteFile(sigPath, bad, 0o600)
	if out, err := exec.Command(cmd.Args[0], cmd.Args[1:]...).CombinedOutput(); err == nil {
		t.Fatalf("openssl verifies a corrupted %s signature: %s", alg, out)
	}
}

func TestSignaturesVerifyWithOpenSSL(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			priv, pub := genKey(t, alg)
			i := openIssuer(t, Config{SigningKey: priv})
			tok, _, err := i.SessionJWT("bob", "r", "pam", "abcd", nil)
			if err != nil {
				t.Fatal(err)
			}
			opensslVerify(t, tok, pub, alg)
		})
	}
}

func TestRotationAcrossRestart(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	oldPriv, oldPub := genKey(t, "ES256")
	newPriv, _ := genKey(t, "RS256")
	maxTTL := time.Hour

	// Before the restart: the old key signs.
	cfg := Config{SigningKey: oldPriv, MaxTTL: Duration{maxTTL}, Issuer: "sks"}
	before := openIssuer(t, cfg)
	before.SetClock(clock.Now)
	oldTok, _, err := before.Mint("svc", map[string]any{"permissions": []string{"default:read"}}, maxTTL)
	if err != nil {
		t.Fatal(err)
	}

	// Restart ten minutes later with a new key; the old one is retired. The
	// config is written as the operator would, in TOML.
	clock.Advance(10 * time.Minute)
	var cfg2 Config
	_, err = toml.Decode(`
signing_key = "`+newPriv+`"
issuer = "sks"
max_ttl = "1h"
[[retired_keys]]
public_key = "`+oldPub+`"
retired_at = 2025-06-01T12:10:00Z
`, &cfg2)
	if err != nil {
		t.Fatalf("decode TOML: %v", err)
	}
	after := openIssuer(t, cfg2)
	after.SetClock(clock.Now)
	srv := serveJWKS(t, after)

	keys := fetchJWKS(t, srv.URL+"/.well-known/jwks.json")
	if len(keys) != 2 {
		t.Fatalf("JWKS after rotation has %d keys, want 2", len(keys))
	}
	if _, err := verifyWithGolangJWT(t, keys, oldTok, "sks", "", clock.Now()); err != nil {
		t.Errorf("old token no longer verifies via JWKS: %v", err)
	}
	if _, err := after.Verify(oldTok); err != nil {
		t.Errorf("old token no longer verifies with Verify: %v", err)
	}
	newTok, _, err := after.Mint("svc", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := headerKid(t, newTok), after.KeyID(); got != want || got == headerKid(t, oldTok) {
		t.Errorf("new token kid = %s, want the new key's %s (old %s)", got, want, headerKid(t, oldTok))
	}
	if _, err := verifyWithGolangJWT(t, keys, newTok, "sks", "", clock.Now()); err != nil {
		t.Errorf("new token does not verify via JWKS: %v", err)
	}

	// Just before retired_at + max_ttl the old key is still published.
	clock.Advance(maxTTL - time.Second)
	if n := len(fetchJWKS(t, srv.URL+"/jwks.json")); n != 2 {
		t.Errorf("JWKS 1s before retired_at+max_ttl has %d keys, want 2", n)
	}
	// After it, it is gone.
	clock.Advance(2 * time.Second)
	keys = fetchJWKS(t, srv.URL+"/jwks.json")
	if len(keys) != 1 {
		t.Fatalf("JWKS after retired_at+max_ttl has %d keys, want 1", len(keys))
	}
	if _, ok := keys[after.KeyID()]; !ok {
		t.Errorf("JWKS lost the active key")
	}
	if _, err := after.Verify(oldTok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify(old token) after the retired key left = %v, want ErrUnknownKey", err)
	}
}

func headerKid(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := gjwt.NewParser().ParseUnverified(tok, gjwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := p.Header["kid"].(string)
	return kid
}

func TestVerifyRefusals(t *testing.T) {
	priv, pub := genKey(t, "ES256")
	rsaPriv, rsaPub := genKey(t, "RS256")
	// The ES key signs; the RSA key is retired but published.
	i := openIssuer(t, Config{SigningKey: priv, RetiredKeys: []RetiredKey{{PublicKey: rsaPub, RetiredAt: time.Now()}}})
	esKid := i.KeyID()
	rsaIssuer := openIssuer(t, Config{SigningKey: rsaPriv})
	rsaKid := rsaIssuer.KeyID()
	pubPEM, _ := os.ReadFile(pub)
	rsaPubPEM, _ := os.ReadFile(rsaPub)
	now := time.Now()
	claims := gjwt.MapClaims{"sub": "mallory", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}

	hsWith := func(kid string, secret []byte) string {
		tk := gjwt.NewWithClaims(gjwt.SigningMethodHS256, claims)
		tk.Header["kid"] = kid
		s, err := tk.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	payload := b64(`{"sub":"mallory","exp":` + big.NewInt(now.Add(time.Minute).Unix()).String() + `}`)
	good, _, _ := i.SessionJWT("alice", "r", "s", "x", nil)
	goodParts := strings.Split(good, ".")

	// A token from another ES256 key that claims a kid.
	otherPriv, _ := genKey(t, "ES256")
	other := openIssuer(t, Config{SigningKey: otherPriv})
	forged := func(kid string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: mustPriv(t, otherPriv), KeyID: kid}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := signer.Sign([]byte(`{"sub":"mallory","exp":` + big.NewInt(now.Add(time.Minute).Unix()).String() + `}`))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := obj.CompactSerialize()
		return s
	}
	rsaSignedWithESKid := func() string {
		tk := gjwt.NewWithClaims(gjwt.SigningMethodRS256, claims)
		tk.Header["kid"] = esKid
		s, err := tk.SignedString(mustPriv(t, rsaPriv))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	expired, _, _ := i.Mint("alice", nil, time.Second)
	_ = other

	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"alg none", b64(`{"alg":"none","typ":"JWT","kid":"`+esKid+`"}`) + "." + payload + ".", ErrBadAlgorithm},
		{"alg none with the real payload", b64(`{"alg":"none","kid":"`+esKid+`"}`) + "." + goodParts[1] + ".", ErrBadAlgorithm},
		{"HS256 signed with the ES public key PEM", hsWith(esKid, pubPEM), ErrBadAlgorithm},
		{"HS256 signed with the RSA public key PEM", hsWith(rsaKid, rsaPubPEM), ErrBadAlgorithm},
		{"RS256 header on the ES256 kid", rsaSignedWithESKid(), ErrBadAlgorithm},
		{"kid path traversal", forged("../../etc/passwd"), ErrUnknownKey},
		{"kid absolute path", forged("/etc/passwd"), ErrUnknownKey},
		{"kid empty", forged(""), ErrUnknownKey},
		{"real kid, foreign key", forged(esKid), ErrBadSignature},
		{"signature of another token", goodParts[0] + "." + payload + "." + goodParts[2], ErrBadSignature},
		{"oversized", goodParts[0] + "." + strings.Repeat("A", MaxTokenBytes) + "." + goodParts[2], ErrTokenTooLarge},
		{"garbage", "not.a.jwt", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := i.Verify(tt.tok)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		clock := newFakeClock(time.Now().Add(time.Second + verifyLeeway + time.Second))
		i.SetClock(clock.Now)
		defer i.SetClock(time.Now)
		if _, err := i.Verify(expired); !errors.Is(err, ErrExpired) {
			t.Fatalf("Verify(expired) = %v, want ErrExpired", err)
		}
	})
	t.Run("wrong audience", func(t *testing.T) {
		j := openIssuer(t, Config{SigningKey: priv, Audience: []string{"other"}})
		if _, err := j.Verify(good); !errors.Is(err, ErrInvalidClaims) {
			t.Fatalf("Verify(token without aud) with audience configured = %v, want ErrInvalidClaims", err)
		}
	})
}

func mustPriv(t *testing.T, path string) any {
	t.Helper()
	k, err := loadPrivateKey(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMintLimits(t *testing.T) {
	priv, _ := genKey(t, "ES256")
	i := openIssuer(t, Config{SigningKey: priv, MaxTTL: Duration{time.Hour}})
	if _, _, err := i.Mint("a", nil, 2*time.Hour); !errors.Is(err, ErrTTLTooLong) {
		t.Errorf("Mint(2h) with max_ttl 1h = %v, want ErrTTLTooLong", err)
	}
	if _, _, err := i.Mint("a", map[string]any{"exp": 1}, 0); !errors.Is(err, ErrInvalidClaims) {
		t.Errorf("Mint overriding exp = %v, want ErrInvalidClaims", err)
	}
	if _, _, err := i.Mint("a", map[string]any{"blob": strings.Repeat("x", MaxTokenBytes)}, 0); !errors.Is(err, ErrTokenTooLarge) {
		t.Errorf("Mint with huge claims = %v, want ErrTokenTooLarge", err)
	}
	_, exp, err := i.Mint("a", nil, 0)
	if err != nil || time.Until(exp).Round(time.Minute) != time.Hour {
		t.Errorf("Mint(ttl 0) = exp in %s, %v; want max_ttl 1h", time.Until(exp), err)
	}
}

func TestNoSigningKey(t *testing.T) {
	_, pub := genKey(t, "ES256")
	i := openIssuer(t, Config{RetiredKeys: []RetiredKey{{PublicKey: pub, RetiredAt: time.Now()}}})
	if i.Enabled() {
		t.Fatal("Enabled without a signing key")
	}
	if _, _, err := i.SessionJWT("a", "r", "s", "x", nil); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("SessionJWT = %v, want ErrNoSigningKey", err)
	}
	if n := len(i.JWKS().Keys); n != 1 {
		t.Errorf("JWKS has %d keys, want the 1 retired key", n)
	}
	rec := httptest.NewRecorder()
	i.MintHandler().ServeHTTP(rec, httptest.NewRequest("POST", "/token", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("POST /token without signing key: %d, want 503", rec.Code)
	}
}

func TestJWKSHandlerMethods(t *testing.T) {
	priv, _ := genKey(t, "EdDSA")
	i := openIssuer(t, Config{SigningKey: priv})
	rec := httptest.NewRecorder()
	i.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("POST", "/jwks.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /jwks.json: %d, want 405", rec.Code)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	priv, pub := genKey(t, "ES256")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"algorithm mismatch", Config{SigningKey: priv, Algorithm: "RS256"}, "is a ES256 key but algorithm is RS256"},
		{"unknown algorithm", Config{SigningKey: priv, Algorithm: "HS256"}, `algorithm "HS256"`},
		{"session longer than max", Config{SigningKey: priv, SessionTTL: Duration{2 * time.Hour}, MaxTTL: Duration{time.Hour}}, "session_ttl"},
		{"retired without date", Config{RetiredKeys: []RetiredKey{{PublicKey: pub}}}, "retired_at is required"},
		{"public key file as signing key", Config{SigningKey: pub}, "chmod 600 " + pub},
		{"inline public key as signing key", Config{SigningKey: inlineOf(t, pub)}, "no PEM private key"},
		{"missing file", Config{SigningKey: "/nonexistent/key.pem"}, "cannot read signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// inlineOf returns a PEM file's content in OPAL's one-line form.
func inlineOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "_")
}
