package jwtauth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/sks-server/sks/testrig"
)

// fakeClock is a controllable clock for rotation and expiry tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testLogger logs into the test output, to show that messages carry no secrets.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// genKey writes a key pair for alg into a fresh directory.
func genKey(t *testing.T, alg string) (priv, pub string) {
	t.Helper()
	priv, pub, err := GenKeypair(t.TempDir(), alg)
	if err != nil {
		t.Fatalf("GenKeypair(%s): %v", alg, err)
	}
	return priv, pub
}

// openIssuer opens an Issuer over cfg or fails the test.
func openIssuer(t *testing.T, cfg Config) *Issuer {
	t.Helper()
	i, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return i
}

// writeFile writes data with mode perm and returns the path.
func writeFile(t *testing.T, name, data string, perm os.FileMode) string {
	t.Helper()
	p := t.TempDir() + "/" + name
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// fetchJWKS downloads a JWKS and decodes it with encoding/json and math/big
// alone, independently of go-jose, into kid -> (public key, alg).
func fetchJWKS(t *testing.T, url string) map[string]jwkEntry {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("JWKS Content-Type = %q, want application/json", ct)
	}
	var set struct {
		Keys []struct {
			Kty, Kid, Alg, Use, Crv, X, Y, N, E, D string
		} `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	b64 := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWKS member %q is not base64url: %v", s, err)
		}
		return b
	}
	out := map[string]jwkEntry{}
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatalf("JWKS publishes a private key (kid %s)", k.Kid)
		}
		if k.Kid == "" || k.Use != "sig" {
			t.Errorf("JWKS key kid=%q use=%q, want a kid and use=sig", k.Kid, k.Use)
		}
		var pub crypto.PublicKey
		switch k.Kty {
		case "EC":
			if k.Crv != "P-256" {
				t.Fatalf("crv %s", k.Crv)
			}
			pub = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(b64(k.X)), Y: new(big.Int).SetBytes(b64(k.Y))}
		case "RSA":
			pub = &rsa.PublicKey{N: new(big.Int).SetBytes(b64(k.N)), E: int(new(big.Int).SetBytes(b64(k.E)).Int64())}
		case "OKP":
			pub = ed25519.PublicKey(b64(k.X))
		default:
			t.Fatalf("unexpected kty %s", k.Kty)
		}
		out[k.Kid] = jwkEntry{pub: pub, alg: k.Alg}
	}
	return out
}

type jwkEntry struct {
	pub crypto.PublicKey
	alg string
}

// verifyWithGolangJWT checks tok with golang-jwt against keys fetched from
// the JWKS, as a third-party verifier (Temporal, ClusterCockpit) would.
func verifyWithGolangJWT(t *testing.T, keys map[string]jwkEntry, tok, iss, aud string, now time.Time) (gjwt.MapClaims, error) {
	t.Helper()
	opts := []gjwt.ParserOption{gjwt.WithValidMethods([]string{"ES256", "RS256", "EdDSA"}), gjwt.WithTimeFunc(func() time.Time { return now }), gjwt.WithExpirationRequired()}
	if iss != "" {
		opts = append(opts, gjwt.WithIssuer(iss))
	}
	if aud != "" {
		opts = append(opts, gjwt.WithAudience(aud))
	}
	claims := gjwt.MapClaims{}
	_, err := gjwt.ParseWithClaims(tok, claims, func(tk *gjwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("kid %q not in JWKS", kid)
		}
		if tk.Method.Alg() != k.alg {
			return nil, fmt.Errorf("alg %s, JWKS says %s", tk.Method.Alg(), k.alg)
		}
		return k.pub, nil
	}, opts...)
	return claims, err
}

// runBash runs a shell script with bash and returns its trimmed stdout.
func runBash(t *testing.T, script string) string {
	t.Helper()
	testrig.Require(t, "bash", "openssl", "base64", "cut")
	cmd := exec.Command("bash", "-c", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
