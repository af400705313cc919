package cmd

// End-to-end tests through the real binary for features otherwise tested at
// package level: HTTPS with the original's flags, several nodes on one
// Redis, signed session tokens and master-token minting. They reuse
// sksBinary (main_test.go) and startSKS (durability_test.go).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sks-server/sks/jwtauth"
	"github.com/sks-server/sks/testrig"
)

// writeFile writes content to dir/name with mode perm (umask notwithstanding)
// and returns the path.
func writeFile(t *testing.T, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// call sends req with client and returns the status and body; a transport
// error fails the test.
func call(t *testing.T, client *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, string(b)
}

// get GETs base+path with http.DefaultClient and returns status and body.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return call(t, http.DefaultClient, req)
}

// makeKeystore makes, with openssl, a CA and a leaf for 127.0.0.1 and
// localhost signed by it, and a PKCS12 keystore (OpenSSL 3's default AES
// encryption) holding the leaf, its key and the CA under password. It
// returns the keystore's path and a pool trusting only the CA.
func makeKeystore(t *testing.T, dir, password string) (p12 string, roots *x509.CertPool) {
	t.Helper()
	testrig.Require(t, "openssl")
	in := func(name string) string { return filepath.Join(dir, name) }
	testrig.Run(t, nil, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-keyout", in("ca.key"), "-out", in("ca.pem"), "-days", "2", "-subj", "/CN=sks integration test CA")
	testrig.Run(t, nil, "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-keyout", in("leaf.key"), "-out", in("leaf.csr"), "-subj", "/CN=localhost")
	ext := writeFile(t, dir, "leaf.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n", 0o644)
	testrig.Run(t, nil, "openssl", "x509", "-req", "-in", in("leaf.csr"), "-CA", in("ca.pem"), "-CAkey", in("ca.key"),
		"-CAcreateserial", "-days", "2", "-extfile", ext, "-out", in("leaf.pem"))
	p12 = in("keystore-" + password + ".p12")
	testrig.Run(t, nil, "openssl", "pkcs12", "-export", "-in", in("leaf.pem"), "-inkey", in("leaf.key"),
		"-certfile", in("ca.pem"), "-name", "sks", "-out", p12, "-passout", "pass:"+password)
	caPEM, err := os.ReadFile(in("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("cannot parse the CA openssl wrote")
	}
	return p12, roots
}

// checkHTTPSVersion GETs /version over HTTPS from base (an http:// URL as
// startSKS returns it) with a client trusting only roots, and checks the
// answer and that HTTP/2 was negotiated.
func checkHTTPSVersion(t *testing.T, base string, roots *x509.CertPool) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get(strings.Replace(base, "http://", "https://", 1) + "/version")
	if err != nil {
		t.Fatalf("GET /version over HTTPS: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "1.5\n" {
		t.Errorf("GET /version over HTTPS: got %d %q, want 200 %q", resp.StatusCode, body, "1.5\n")
	}
	alpn := ""
	if resp.TLS != nil {
		alpn = resp.TLS.NegotiatedProtocol
	}
	if resp.ProtoMajor != 2 || alpn != "h2" {
		t.Errorf("protocol: got %s (ALPN %q), want HTTP/2.0 (h2)", resp.Proto, alpn)
	}
}

// TestIntegrationTLSOriginalFlags: an existing deployment's
// "-tls keystore -PF pwfile" starts unchanged and serves HTTPS with HTTP/2;
// a password file others can read is refused with the chmod to run; and a
// keystore with the original's default password needs no password flag.
func TestIntegrationTLSOriginalFlags(t *testing.T) {
	dir := t.TempDir()
	p12, roots := makeKeystore(t, dir, "s3cret")

	t.Run("password file 0600", func(t *testing.T) {
		pw := writeFile(t, t.TempDir(), "keystore.pw", "s3cret\n", 0o600)
		_, base := startSKS(t, "-d", t.TempDir(), "-tls", p12, "-PF", pw)
		checkHTTPSVersion(t, base, roots)
	})

	t.Run("password file 0644 is refused", func(t *testing.T) {
		pw := writeFile(t, t.TempDir(), "keystore.pw", "s3cret\n", 0o644)
		bin := sksBinary
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-d", t.TempDir(), "-tls", p12, "-PF", pw,
			"-l", "127.0.0.1", "-p", strconv.Itoa(testrig.FreePort(t)))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("sks still running after 20s with a 0644 password file; stderr:\n%s", stderr.String())
		}
		if err == nil {
			t.Errorf("exit status: got 0, want non-zero")
		}
		if !strings.Contains(stderr.String(), "chmod 600") {
			t.Errorf("stderr: got %q, want it to say chmod 600", stderr.String())
		}
	})

	t.Run("default password SessionKeyServer", func(t *testing.T) {
		p12, roots := makeKeystore(t, t.TempDir(), "SessionKeyServer")
		_, base := startSKS(t, "-d", t.TempDir(), "-tls", p12)
		checkHTTPSVersion(t, base, roots)
	})
}

// redisTestPassword is the requirepass of the private test Redis.
const redisTestPassword = "integration-redis-pw"

// startRedis runs a private, non-persistent redis-server on 127.0.0.1:port
// with requirepass, logging into dir, and waits until it accepts
// connections. It is stopped when the test ends.
func startRedis(t *testing.T, dir string, port int) *testrig.Proc {
	t.Helper()
	testrig.Require(t, "redis-server")
	p := testrig.Start(t, dir, "redis-"+strconv.Itoa(port), nil, "redis-server",
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--requirepass", redisTestPassword)
	p.WaitTCP(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 10*time.Second)
	return p
}

// TestIntegrationTwoNodesOnRedis: two sks processes on one Redis share
// tokens: a token stored on one node supersedes the user's token stored on
// the other, and a revocation on one is seen by the other. With Redis gone
// /valid answers 503 (not a false NO), and the node recovers by itself
// once Redis is back.
func TestIntegrationTwoNodesOnRedis(t *testing.T) {
	dir := t.TempDir()
	port := testrig.FreePort(t)
	redis := startRedis(t, dir, port)
	pwFile := writeFile(t, dir, "redis.pw", redisTestPassword+"\n", 0o600)
	cfg := writeFile(t, dir, "sks.toml", fmt.Sprintf(
		"[tokens.redis]\naddrs = [\"127.0.0.1:%d\"]\npassword_file = %q\ntimeout = \"500ms\"\n", port, pwFile), 0o600)
	_, nodeA := startSKS(t, "-c", cfg)
	_, nodeB := startSKS(t, "-c", cfg)

	expect := func(base, path string, wantStatus int, wantBody string) {
		t.Helper()
		if status, body := get(t, base, path); status != wantStatus || body != wantBody {
			t.Errorf("GET %s on %s: got %d %q, want %d %q", path, base, status, body, wantStatus, wantBody)
		}
	}
	expect(nodeA, "/stored_token?realm=r&user=u&token=t1", 200, "t1\nu\nstored\n")
	expect(nodeB, "/stored_token?realm=r&user=u&token=t2", 200, "t2\nu\nstored\n")
	expect(nodeA, "/valid?realm=r&token=t1", 200, "SUPERCEDED\nu\nstored\n\n")
	expect(nodeA, "/valid?realm=r&token=t2", 200, "YES\nu\nstored\n\n")
	if status, body := get(t, nodeB, "/revoke?realm=r&token=t2"); status != 200 {
		t.Fatalf("GET /revoke on node B: got %d %q, want 200", status, body)
	}
	expect(nodeA, "/valid?realm=r&token=t2", 200, "NO\n")

	redis.Kill()
	if status, body := get(t, nodeA, "/valid?realm=r&token=t2"); status != http.StatusServiceUnavailable {
		t.Fatalf("/valid with Redis killed: got %d %q, want 503", status, body)
	}

	// Same port, no persistence: the tokens are gone, but the node must
	// answer again without a restart.
	startRedis(t, dir, port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := get(t, nodeA, "/valid?realm=r&token=t2")
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/valid 10s after Redis came back: got %d %q, want 200", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jwks fetches base's /.well-known/jwks.json.
func jwks(t *testing.T, base string) jose.JSONWebKeySet {
	t.Helper()
	status, body := get(t, base, "/.well-known/jwks.json")
	if status != 200 {
		t.Fatalf("GET /.well-known/jwks.json: got %d %q, want 200", status, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("JWKS %q: %v", body, err)
	}
	return set
}

// verifyWithJWKS verifies token as a relying party would: with
// golang-jwt/jwt, the key found by kid in set, ES256 only and the expected
// issuer. It returns the claims.
func verifyWithJWKS(t *testing.T, token string, set jose.JSONWebKeySet, issuer string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		keys := set.Key(kid)
		if len(keys) != 1 {
			return nil, fmt.Errorf("kid %q: %d keys in the JWKS, want 1", kid, len(keys))
		}
		return keys[0].Key, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(issuer), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("verifying %q with the JWKS: %v", token, err)
	}
	return claims
}

// demoLogin logs in as demo through POST /auth_token and returns the token.
func demoLogin(t *testing.T, base, password string) string {
	t.Helper()
	resp, err := http.PostForm(base+"/auth_token", url.Values{"realm": {"demo"}, "user": {"demo"}, "pwd": {password}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	tok, _, _ := strings.Cut(string(b), "\n")
	if resp.StatusCode != 200 || tok == "" {
		t.Fatalf("POST /auth_token as demo: got %d %q, want 200 with a token", resp.StatusCode, b)
	}
	return tok
}

// TestIntegrationSessionJWT: a session token is exchanged for a JWT that a
// relying party verifies with the published JWKS alone; the JWT names the
// user, realm and roles but not the session token; a superseded session
// gets no JWT.
func TestIntegrationSessionJWT(t *testing.T) {
	dir := t.TempDir()
	key, _, err := jwtauth.GenKeypair(filepath.Join(dir, "jwt"), "ES256")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "sks.toml", fmt.Sprintf("[jwt]\nsigning_key = %q\nissuer = \"sks-test\"\n", key), 0o600)
	data := filepath.Join(dir, "data")
	_, base := startSKS(t, "-c", cfg, "-d", data, "-demo")
	pw, err := os.ReadFile(filepath.Join(data, "demo-password"))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))

	session := demoLogin(t, base, password)
	status, body := get(t, base, "/jwt?realm=demo&token="+url.QueryEscape(session))
	token := strings.TrimSuffix(body, "\n")
	if status != 200 || strings.Count(token, ".") != 2 {
		t.Fatalf("GET /jwt: got %d %q, want 200 with a JWT", status, body)
	}
	claims := verifyWithJWKS(t, token, jwks(t, base), "sks-test")
	if got := claims["sub"]; got != "demo" {
		t.Errorf("sub: got %v, want demo", got)
	}
	if got := claims["realm"]; got != "demo" {
		t.Errorf("realm: got %v, want demo", got)
	}
	roles, _ := claims["roles"].([]any)
	if !slices.Contains(roles, any("demo")) {
		t.Errorf("roles: got %v, want them to contain demo", claims["roles"])
	}
	sid, _ := claims["sid"].(string)
	if sid == "" || strings.Contains(session, sid) || strings.Contains(token, session) {
		t.Errorf("sid: got %q for session token %q, want a non-empty reference that is not the token", sid, session)
	}

	demoLogin(t, base, password) // supersedes session
	if status, body := get(t, base, "/jwt?realm=demo&token="+url.QueryEscape(session)); status != http.StatusForbidden {
		t.Errorf("GET /jwt with a superseded session: got %d %q, want 403", status, body)
	}
}

// TestIntegrationMasterToken: POST /token with the master token mints a JWT
// verifiable with the JWKS, a wrong master token gets 401, and the master
// token is an admin credential for /stored_token when loopback alone is
// not (allow_loopback = false).
func TestIntegrationMasterToken(t *testing.T) {
	dir := t.TempDir()
	key, _, err := jwtauth.GenKeypair(filepath.Join(dir, "jwt"), "ES256")
	if err != nil {
		t.Fatal(err)
	}
	master := jwtauth.GenerateSecret()
	masterFile := writeFile(t, dir, "master-token", master+"\n", 0o600)
	cfg := writeFile(t, dir, "sks.toml", fmt.Sprintf(
		"[jwt]\nsigning_key = %q\nissuer = \"sks-test\"\nmaster_token_file = %q\n[admin]\nallow_loopback = false\n",
		key, masterFile), 0o600)
	_, base := startSKS(t, "-c", cfg, "-d", filepath.Join(dir, "data"))

	mint := func(bearer string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(`{"type":"client","sub":"w1","ttl":"1h"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bearer)
		return call(t, http.DefaultClient, req)
	}
	status, body := mint(master)
	if status != 200 {
		t.Fatalf("POST /token with the master token: got %d %q, want 200", status, body)
	}
	var resp jwtauth.TokenResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("POST /token answer %q: %v", body, err)
	}
	claims := verifyWithJWKS(t, resp.Token, jwks(t, base), "sks-test")
	if claims["sub"] != "w1" || claims["peer_type"] != "client" {
		t.Errorf("claims: got sub %v peer_type %v, want w1 and client", claims["sub"], claims["peer_type"])
	}
	if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) > time.Hour+time.Minute || time.Until(exp.Time) < 59*time.Minute {
		t.Errorf("exp: got %v, want about an hour from now", exp)
	}
	if status, body := mint(master + "x"); status != http.StatusUnauthorized {
		t.Errorf("POST /token with a wrong master token: got %d %q, want 401", status, body)
	}

	stored := func(auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/stored_token?realm=r&user=u&token=m1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return call(t, http.DefaultClient, req)
	}
	if status, body := stored(""); status != http.StatusForbidden {
		t.Errorf("/stored_token from loopback without credential, allow_loopback=false: got %d %q, want 403", status, body)
	}
	if status, body := stored("Bearer " + master); status != 200 || body != "m1\nu\nstored\n" {
		t.Errorf("/stored_token with the master token: got %d %q, want 200 %q", status, body, "m1\nu\nstored\n")
	}
}
