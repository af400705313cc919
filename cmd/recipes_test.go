package cmd

// The README's recipes for OPAL, Temporal, ClusterCockpit and cyphernode,
// run as written: each test reads its blocks out of README.md (marked
// <!-- recipe: NAME -->), changes only /etc/sks/ to a temporary directory and
// https://sks.example.org:4431 to the test server, runs the shell blocks
// with bash and the config blocks with the real binary, and checks the
// result the way the seed system's own verifier does.

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sks-server/sks/testrig"
)

// readmeRecipe returns the fenced block after "<!-- recipe: name -->" in
// README.md.
func readmeRecipe(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- recipe: " + regexp.QuoteMeta(name) + " -->\n```[a-z]*\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatalf("README.md has no recipe %q", name)
	}
	return string(m[1])
}

// recipeText is a recipe with /etc/sks/ moved to dir and the example
// server replaced by base (if not empty).
func recipeText(t *testing.T, name, dir, base string) string {
	t.Helper()
	s := strings.ReplaceAll(readmeRecipe(t, name), "/etc/sks/", dir+"/")
	if base != "" {
		s = strings.ReplaceAll(s, "https://sks.example.org:4431", base)
	}
	return s
}

// runRecipe runs script with bash, with the sks binary first on PATH and
// env added, and returns its stdout.
func runRecipe(t *testing.T, script string, env ...string) string {
	t.Helper()
	testrig.Require(t, "bash")
	c := exec.Command("bash", "-e", "-c", script)
	c.Env = append(os.Environ(), append([]string{"PATH=" + filepath.Dir(sksBinary) + ":" + os.Getenv("PATH")}, env...)...)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("recipe failed: %v\n%s\nscript:\n%s", err, stderr.String(), script)
	}
	return string(out)
}

// TestRecipeOPAL: the README's OPAL recipe; opal-client obtain-token's
// request (as aiohttp sends it, see jwtauth's TestOPALObtainToken) gets a
// token in OPAL's answer shape that passes OPAL's JWTVerifier checks with
// the public key from opal.pub, read as OPAL reads it (ssh format).
func TestRecipeOPAL(t *testing.T) {
	testrig.Require(t, "ssh-keygen", "openssl")
	dir := t.TempDir()
	runRecipe(t, recipeText(t, "opal.sh", dir, ""))
	cfg := writeFile(t, dir, "sks.toml", recipeText(t, "opal.toml", dir, ""), 0o600)
	_, base := startSKS(t, "-c", cfg)
	master, err := os.ReadFile(filepath.Join(dir, "master-token"))
	if err != nil {
		t.Fatal(err)
	}

	// What opal-client obtain-token MASTER --server-url=BASE sends
	// (pydantic 2's AccessTokenRequest.json(); the CLI's defaults).
	host := strings.TrimPrefix(base, "http://")
	id := "0c3a8a8e-6b1e-4c53-9a3f-3b1f3d0e9a77"
	body := `{"id":"` + id + `","type":"client","ttl":"P365D","claims":{}}`
	req := "POST /token HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: bearer " + strings.TrimSpace(string(master)) +
		"\r\ncontent-type: application/json\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\nUser-Agent: Python/3.11 aiohttp/3.9.5\r\n" +
		"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, req)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var got struct {
		Token   string `json:"token"`
		Type    string `json:"type"`
		Details struct {
			ID      string         `json:"id"`
			Type    string         `json:"type"`
			Expired time.Time      `json:"expired"`
			Claims  map[string]any `json:"claims"`
		} `json:"details"`
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &got) != nil {
		t.Fatalf("obtain-token: %d %s %s, want 200 application/json", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	if got.Token == "" || got.Type != "bearer" || got.Details.ID != id || got.Details.Type != "client" || got.Details.Claims["peer_type"] != "client" {
		t.Errorf("answer %s is not OPAL's AccessToken for the request", b)
	}
	if d := time.Until(got.Details.Expired); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("details.expired %v, want 365 days ahead", got.Details.Expired)
	}

	// OPAL_AUTH_PUBLIC_KEY=opal.pub in its default ssh format; converted
	// here with ssh-keygen rather than read by sks's own code.
	pemOut, err := exec.Command("ssh-keygen", "-e", "-m", "pkcs8", "-f", filepath.Join(dir, "jwt", "opal.pub")).Output()
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemOut)
	if blk == nil {
		t.Fatalf("ssh-keygen -e gave %q", pemOut)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// pyjwt.decode(token, key, algorithms=["RS256"], audience=..., issuer=...)
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(got.Token, claims, func(*jwt.Token) (any, error) { return pub.(*rsa.PublicKey), nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience("https://api.opal.ac/v1/"), jwt.WithIssuer("https://opal.ac/")); err != nil {
		t.Fatalf("OPAL's JWTVerifier checks refuse the token: %v", err)
	}
	if claims["peer_type"] != "client" {
		t.Errorf("peer_type %v, want client", claims["peer_type"])
	}
}

// TestRecipeTemporal: the README's Temporal recipe with a realm corp on a
// real slapd: alice's groups (staff, devs) and bob's (devs) become
// permissions in the JWT that temporal-client.sh fetches, which verifies
// with the JWKS (no EdDSA keys in it) and maps as Temporal's default claim
// mapper reads it.
func TestRecipeTemporal(t *testing.T) {
	testrig.Require(t, "openssl", "curl", "slapd", "slapadd", "ldapadd", "ldapsearch")
	slapd := testrig.StartSlapd(t, t.TempDir())
	dir := t.TempDir()
	runRecipe(t, recipeText(t, "temporal.sh", dir, ""))
	ldap := `
[modules.corp]
type = "ldap"
urls = ["` + slapd.PlainURL() + `"]
bind_dn = "` + testrig.LDAPReaderDN + `"
bind_password = "` + testrig.LDAPReaderPW + `"
base_dn = "` + testrig.LDAPSuffix + `"
user_filter = "(&(objectClass=posixAccount)(uid=%s))"
group_attribute = "memberOf"
timeout = "3s"

[realms.corp]
modules = ["corp"]
default = "corp"
`
	cfg := writeFile(t, dir, "sks.toml", recipeText(t, "temporal.toml", dir, "")+ldap, 0o600)
	_, base := startSKS(t, "-c", cfg)
	set := jwks(t, base)
	for _, k := range set.Keys {
		if k.Algorithm == "EdDSA" {
			t.Errorf("JWKS has an EdDSA key, which Temporal refuses")
		}
	}

	for _, tc := range []struct {
		user, pw string
		want     map[string][]string // namespace -> roles, as Temporal maps them
	}{
		{"alice", testrig.LDAPAlicePW, map[string][]string{"temporal-system": {"admin"}, "default": {"read", "write"}}},
		{"bob", testrig.LDAPBobPW, map[string][]string{"default": {"read", "write"}}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			resp, err := http.PostForm(base+"/auth_token", url.Values{"realm": {"corp"}, "user": {tc.user}, "pwd": {tc.pw}})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			session, _, _ := strings.Cut(string(b), "\n")
			if resp.StatusCode != 200 {
				t.Fatalf("login %s: %d %q", tc.user, resp.StatusCode, b)
			}
			out := runRecipe(t, recipeText(t, "temporal-client.sh", dir, base)+`printf %s "$TEMPORAL_CLI_AUTH"`, "T="+session)
			token, ok := strings.CutPrefix(out, "Bearer ")
			if !ok || strings.Count(token, ".") != 2 {
				t.Fatalf("TEMPORAL_CLI_AUTH=%q, want Bearer <jwt>", out)
			}
			claims := verifyWithJWKS(t, token, set, "https://sks.example.org")
			got := map[string][]string{}
			perms, _ := claims["permissions"].([]any)
			for _, p := range perms {
				ns, role, ok := strings.Cut(p.(string), ":")
				if ok {
					got[ns] = append(got[ns], strings.ToLower(role))
				}
			}
			for ns := range got {
				slices.Sort(got[ns])
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("permissions %v map to %v, want %v", claims["permissions"], got, tc.want)
			}
		})
	}
}

// TestRecipeClusterCockpit: the README's ClusterCockpit recipe; the .env
// lines it writes verify the token it prints exactly as cc-backend's
// AuthViaJWT does (base64 std decoding, golang-jwt, EdDSA only).
func TestRecipeClusterCockpit(t *testing.T) {
	testrig.Require(t, "openssl")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cc"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "cc/cc.toml", recipeText(t, "clustercockpit.toml", dir, ""), 0o600)
	ccDir := t.TempDir()
	script := strings.ReplaceAll(recipeText(t, "clustercockpit.sh", dir, ""), "/opt/cc-backend/", ccDir+"/")
	out := runRecipe(t, script)
	token := strings.TrimSpace(out)

	env, err := os.ReadFile(filepath.Join(ccDir, ".env"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(env)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = strings.Trim(v, `"`) // as godotenv reads .env
	}
	pubBytes, err := base64.StdEncoding.DecodeString(vars["JWT_PUBLIC_KEY"])
	if err != nil || len(pubBytes) != ed25519.PublicKeySize {
		t.Fatalf("JWT_PUBLIC_KEY %q: %d bytes, %v; want base64 of 32 bytes", vars["JWT_PUBLIC_KEY"], len(pubBytes), err)
	}
	privBytes, err := base64.StdEncoding.DecodeString(vars["JWT_PRIVATE_KEY"])
	if err != nil || len(privBytes) != ed25519.PrivateKeySize || !ed25519.PrivateKey(privBytes).Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(pubBytes)) {
		t.Fatalf("JWT_PRIVATE_KEY is not the 64-byte private key of JWT_PUBLIC_KEY")
	}
	// The public key alone, as -raw prints it.
	raw := strings.TrimSpace(runRecipe(t, "sks jwks-key -c "+filepath.Join(dir, "cc", "cc.toml")+" -raw"))
	if raw != vars["JWT_PUBLIC_KEY"] {
		t.Errorf("jwks-key -raw %q, .env has %q", raw, vars["JWT_PUBLIC_KEY"])
	}

	tk, err := jwt.Parse(token, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodEdDSA {
			return nil, fmt.Errorf("only Ed25519/EdDSA supported")
		}
		return ed25519.PublicKey(pubBytes), nil
	})
	if err != nil || !tk.Valid {
		t.Fatalf("cc-backend would refuse the token: %v", err)
	}
	claims := tk.Claims.(jwt.MapClaims)
	roles, _ := claims["roles"].([]any)
	if claims["sub"] != "api-user" || len(roles) != 1 || roles[0] != "api" {
		t.Errorf("claims %v, want sub api-user and roles [api]", claims)
	}
	if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) < 87599*time.Hour {
		t.Errorf("exp %v, want 10 years ahead", exp)
	}
}

// TestRecipeCyphernode: the README's cyphernode recipe; the client line,
// cyphernode's own with curl pointed at /token, mints a JWT (it answered
// 401 before), and the same line with a wrong key is refused.
func TestRecipeCyphernode(t *testing.T) {
	testrig.Require(t, "openssl", "curl", "base64", "cut")
	dir := t.TempDir()
	out := runRecipe(t, recipeText(t, "cyphernode.sh", dir, ""))
	key, ok := strings.CutPrefix(strings.TrimSpace(out), "001=")
	if !ok || len(key) != 64 {
		t.Fatalf("sks apikey new printed %q, want 001=<64 hex digits>", out)
	}
	cfg := writeFile(t, dir, "sks.toml", recipeText(t, "cyphernode.toml", dir, ""), 0o600)
	_, base := startSKS(t, "-c", cfg)
	client := recipeText(t, "cyphernode-client.sh", dir, base)

	body := runRecipe(t, client, "KEY="+key)
	var resp struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Token == "" {
		t.Fatalf("POST /token with the recipe's token answered %q, want a token", body)
	}
	claims := verifyWithJWKS(t, resp.Token, jwks(t, base), "")
	if claims["sub"] != "cyphernode" {
		t.Errorf("sub %v, want cyphernode", claims["sub"])
	}
	wrong := strings.Repeat("0", 64)
	if body := runRecipe(t, client, "KEY="+wrong); !strings.Contains(body, "missing or wrong credential") {
		t.Errorf("with a wrong key: %q, want a refusal", body)
	}
}

// TestIntegrationJWTKeyReloadOnSIGHUP: the key file at signing_key is
// replaced and the real binary gets SIGHUP: the JWKS then lists the new
// key first and still the old one, /jwt signs with the new key, and a
// token signed before the rotation still verifies with the JWKS.
func TestIntegrationJWTKeyReloadOnSIGHUP(t *testing.T) {
	testrig.Require(t, "openssl")
	dir := t.TempDir()
	key := filepath.Join(dir, "jwt.key")
	genKey := func(path string) {
		t.Helper()
		testrig.Run(t, nil, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	genKey(key)
	cfg := writeFile(t, dir, "sks.toml", fmt.Sprintf("[jwt]\nsigning_key = %q\nissuer = \"sks-test\"\n", key), 0o600)
	data := filepath.Join(dir, "data")
	proc, base := startSKS(t, "-c", cfg, "-d", data, "-demo")
	pw, err := os.ReadFile(filepath.Join(data, "demo-password"))
	if err != nil {
		t.Fatal(err)
	}
	session := demoLogin(t, base, strings.TrimSpace(string(pw)))
	sessionJWT := func() string {
		t.Helper()
		status, body := get(t, base, "/jwt?realm=demo&token="+url.QueryEscape(session))
		if status != 200 {
			t.Fatalf("GET /jwt: %d %q", status, body)
		}
		return strings.TrimSpace(body)
	}
	kidOf := func(tok string) string {
		t.Helper()
		tk, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := tk.Header["kid"].(string)
		return kid
	}
	old := sessionJWT()
	oldKid := kidOf(old)

	genKey(key + ".new")
	if err := os.Rename(key+".new", key); err != nil {
		t.Fatal(err)
	}
	if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var kids []string
	for {
		kids = kids[:0]
		for _, k := range jwks(t, base).Keys {
			kids = append(kids, k.KeyID)
		}
		if len(kids) == 2 && kids[1] == oldKid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("JWKS kids %v 10 s after SIGHUP, want a new key then %s", kids, oldKid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fresh := sessionJWT()
	if kidOf(fresh) != kids[0] || kids[0] == oldKid {
		t.Errorf("after SIGHUP /jwt signs with kid %s, want the new key %s", kidOf(fresh), kids[0])
	}
	set := jwks(t, base)
	verifyWithJWKS(t, fresh, set, "sks-test")
	verifyWithJWKS(t, old, set, "sks-test")
}
