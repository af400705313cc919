package jwtauth

// Tests against the seed systems' own clients and verifiers: OPAL's
// opal-client obtain-token request and JWTVerifier settings, cyphernode's
// API-key tokens on POST /token, Temporal's permissions claim, and signing
// key rotation by Reload (SIGHUP).

import (
	"bufio"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/sks-server/sks/testrig"
)

// OPAL's defaults (opal_common/config.py): OPAL_AUTH_JWT_ALGORITHM,
// OPAL_AUTH_JWT_ISSUER and OPAL_AUTH_JWT_AUDIENCE.
const (
	opalIssuer   = "https://opal.ac/"
	opalAudience = "https://api.opal.ac/v1/"
)

// opalRequest is the HTTP request opal-client obtain-token sends, byte for
// byte as aiohttp writes it: a session with the header
// {"Authorization": f"bearer {master_token}"} (lower-case scheme), a post
// with data=AccessTokenRequest(type=type, ttl=ttl, claims=claims).json()
// (a str, so no charset is added) and headers={"content-type":
// "application/json"}, plus aiohttp's own Host, Accept, Accept-Encoding,
// User-Agent and Content-Length. pip cannot reach PyPI here, so the real
// client is not run; this reproduces what it sends.
func opalRequest(host, master, body string) string {
	return "POST /token HTTP/1.1\r\n" +
		"Host: " + host + "\r\n" +
		"Authorization: bearer " + master + "\r\n" +
		"content-type: application/json\r\n" +
		"Accept: */*\r\n" +
		"Accept-Encoding: gzip, deflate\r\n" +
		"User-Agent: Python/3.11 aiohttp/3.9.5\r\n" +
		"Content-Length: " + fmt.Sprint(len(body)) + "\r\n" +
		"\r\n" + body
}

// opalBodies are AccessTokenRequest(...).json() for the CLI's defaults
// (type client, ttl (365, "days"), claims "{}"): pydantic 2 (OPAL >= 0.7)
// writes compact JSON with the timedelta in ISO 8601; pydantic 1 wrote
// ", "/": " separators and the timedelta in float seconds.
func opalBodies(id string) map[string]string {
	return map[string]string{
		"pydantic 2": `{"id":"` + id + `","type":"client","ttl":"P365D","claims":{}}`,
		"pydantic 1": `{"id": "` + id + `", "type": "client", "ttl": 31536000.0, "claims": {}}`,
	}
}

// sendRaw writes req on a new connection to addr and reads one response.
func sendRaw(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// opalKey makes the key as OPAL's secure-mode guide does:
// ssh-keygen -t rsa -b 4096 -m pem (without a passphrase).
func opalKey(t *testing.T) (priv, pub string) {
	t.Helper()
	testrig.Require(t, "ssh-keygen")
	priv = filepath.Join(t.TempDir(), "opal")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "4096", "-m", "pem", "-N", "", "-f", priv).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return priv, priv + ".pub"
}

// TestOPALObtainToken: opal-client obtain-token's exact request gets a token
// and an answer in OPAL's AccessToken shape with the OPAL recipe's settings
// (max_ttl 8760h for the client's 365-day default, OPAL's issuer and
// audience), and the token passes the checks of OPAL's JWTVerifier
// (pyjwt.decode with algorithms=[RS256], audience and issuer), done here
// with golang-jwt and the RSA public key alone. With the default max_ttl
// the refusal names the setting to change.
func TestOPALObtainToken(t *testing.T) {
	priv, _ := opalKey(t)
	master := "RANDOM-SECRET-STRING-0123456789"
	cfg := Config{
		SigningKey:      priv,
		Algorithm:       "RS256",
		Issuer:          opalIssuer,
		Audience:        []string{opalAudience},
		MaxTTL:          Duration{8760 * time.Hour},
		MasterTokenFile: writeFile(t, "master-token", master+"\n", 0o600),
	}
	i := openIssuer(t, cfg)
	srv := httptest.NewServer(i.MintHandler())
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	signer, _, err := LoadSigningKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub := signer.Public().(*rsa.PublicKey)

	id := "0c3a8a8e-6b1e-4c53-9a3f-3b1f3d0e9a77"
	for name, body := range opalBodies(id) {
		t.Run(name, func(t *testing.T) {
			start := time.Now().Truncate(time.Second)
			res, b := sendRaw(t, addr, opalRequest(addr, master, body))
			if res.StatusCode != 200 {
				t.Fatalf("status %d %s, want 200", res.StatusCode, b)
			}
			// aiohttp's res.json() refuses any other content type.
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
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
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("answer %s: %v", b, err)
			}
			if got.Token == "" || got.Type != "bearer" || got.Details.ID != id || got.Details.Type != "client" ||
				got.Details.Claims["peer_type"] != "client" {
				t.Errorf("answer %s: want token, type bearer, details {id %s, type client, claims {peer_type client}}", b, id)
			}
			wantExp := start.Add(365 * 24 * time.Hour)
			if d := got.Details.Expired.Sub(wantExp); d < 0 || d > 5*time.Second {
				t.Errorf("details.expired %v, want about %v", got.Details.Expired, wantExp)
			}
			claims := gjwt.MapClaims{}
			_, err := gjwt.ParseWithClaims(got.Token, claims, func(*gjwt.Token) (any, error) { return rsaPub, nil },
				gjwt.WithValidMethods([]string{"RS256"}), gjwt.WithAudience(opalAudience), gjwt.WithIssuer(opalIssuer), gjwt.WithExpirationRequired())
			if err != nil {
				t.Fatalf("OPAL's checks refuse the token: %v", err)
			}
			if claims["peer_type"] != "client" || claims["sub"] != id {
				t.Errorf("claims %v: want peer_type client and sub %s", claims, id)
			}
			// Another issuer or audience is refused, so the check is real.
			if _, err := gjwt.Parse(got.Token, func(*gjwt.Token) (any, error) { return rsaPub, nil },
				gjwt.WithValidMethods([]string{"RS256"}), gjwt.WithAudience("https://api.authorizon.com/v1/")); err == nil {
				t.Error("token accepted for another audience")
			}
		})
	}

	t.Run("default max_ttl names the fix", func(t *testing.T) {
		cfg := cfg
		cfg.MaxTTL = Duration{}
		i := openIssuer(t, cfg)
		srv := httptest.NewServer(i.MintHandler())
		t.Cleanup(srv.Close)
		addr := strings.TrimPrefix(srv.URL, "http://")
		res, b := sendRaw(t, addr, opalRequest(addr, master, opalBodies(id)["pydantic 2"]))
		if res.StatusCode != 400 || !strings.Contains(string(b), `max_ttl = \"8760h\"`) {
			t.Errorf("365 days with max_ttl 24h: %d %s, want 400 naming max_ttl = \"8760h\"", res.StatusCode, b)
		}
	})
	t.Run("wrong master token", func(t *testing.T) {
		res, b := sendRaw(t, addr, opalRequest(addr, master+"x", opalBodies(id)["pydantic 2"]))
		if res.StatusCode != 401 {
			t.Errorf("wrong master token: %d %s, want 401", res.StatusCode, b)
		}
	})
}

// TestMintWithAPIKeyToken: cyphernode's shell recipe token is a credential
// for POST /token (it was refused with 401 before), once only.
func TestMintWithAPIKeyToken(t *testing.T) {
	_, srv := mintServer(t)
	tok := runBash(t, recipe)
	body := `{"sub":"cyphernode-client","ttl":"5m"}`
	status, m := post(t, srv.URL+"/token", "Bearer "+tok, body)
	if status != 200 {
		t.Fatalf("POST /token with the recipe's api key token: %d %v, want 200", status, m)
	}
	keys := fetchJWKS(t, srv.URL+"/jwks.json")
	c, err := verifyWithGolangJWT(t, keys, m["token"].(string), "sks", "opal", time.Now())
	if err != nil || c["sub"] != "cyphernode-client" {
		t.Errorf("minted token: claims %v, err %v", c, err)
	}
	if status, m := post(t, srv.URL+"/token", "Bearer "+tok, body); status != 401 {
		t.Errorf("the same api key token again: %d %v, want 401", status, m)
	}
}

// TestRoleClaims: [jwt.claims] and [jwt.realm_claims.R] turn roles into
// claims such as Temporal's permissions.
func TestRoleClaims(t *testing.T) {
	priv, _ := genKey(t, "ES256")
	i := openIssuer(t, Config{
		SigningKey: priv,
		Claims: RoleClaims{"permissions": {
			"temporal-admins": {"temporal-system:admin"},
			"devs":            {"default:write", "default:read"},
			"*":               {"default:read"},
		}},
		RealmClaims: map[string]RoleClaims{"other": {"permissions": {"devs": {"other:read"}}}},
	})
	tests := []struct {
		realm string
		roles []string
		want  []string // nil: no permissions claim
	}{
		{"corp", []string{"temporal-admins"}, []string{"default:read", "temporal-system:admin"}},
		{"corp", []string{"devs", "temporal-admins"}, []string{"default:read", "default:write", "temporal-system:admin"}},
		{"corp", nil, []string{"default:read"}},
		{"other", []string{"devs", "temporal-admins"}, []string{"other:read"}},
		{"other", []string{"staff"}, nil},
	}
	for _, tt := range tests {
		tok, _, err := i.SessionJWT("alice", tt.realm, "auth/ldap", "abcd", tt.roles)
		if err != nil {
			t.Fatal(err)
		}
		c, err := i.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if p, ok := c.Extra["permissions"]; ok {
			for _, v := range p.([]any) {
				got = append(got, v.(string))
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("realm %s roles %v: permissions %v, want %v", tt.realm, tt.roles, got, tt.want)
		}
		if c.Realm != tt.realm || c.SID != "abcd" {
			t.Errorf("realm %q sid %q", c.Realm, c.SID)
		}
	}
	for _, bad := range []RoleClaims{
		{"roles": {"a": {"x"}}},
		{"exp": {"a": {"x"}}},
		{"permissions": {"": {"x"}}},
		{"permissions": {"a": {""}}},
	} {
		if _, err := Open(Config{SigningKey: priv, Claims: bad}, nil); err == nil {
			t.Errorf("claims %v accepted", bad)
		}
	}
}

// TestReloadRotatesSigningKey: after the key file is replaced, Reload signs
// with the new key at once, the JWKS lists both keys, tokens signed before
// still verify until max_ttl after the rotation, and a broken key file
// keeps the previous keys.
func TestReloadRotatesSigningKey(t *testing.T) {
	dir := t.TempDir()
	privA, _ := genKey(t, "ES256")
	privB, _ := genKey(t, "ES256")
	keyPath := filepath.Join(dir, "signing.key")
	copyFile := func(src string) {
		t.Helper()
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(keyPath+".new", keyPath); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(privA)
	clock := newFakeClock(time.Now())
	i := openIssuer(t, Config{SigningKey: keyPath, MaxTTL: Duration{time.Hour}})
	i.SetClock(clock.Now)
	kidA := i.KeyID()
	tokA, _, err := i.Mint("a", nil, 0)
	if err != nil {
		t.Fatal(err)
	}

	copyFile(privB)
	if err := i.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	kidB := i.KeyID()
	if kidB == kidA {
		t.Fatal("kid unchanged after rotation")
	}
	kids := func() []string {
		var ks []string
		for _, k := range i.JWKS().Keys {
			ks = append(ks, k.KeyID)
		}
		return ks
	}
	if got := kids(); !slices.Equal(got, []string{kidB, kidA}) {
		t.Errorf("JWKS kids %v, want new then old %v", got, []string{kidB, kidA})
	}
	if _, err := i.Verify(tokA); err != nil {
		t.Errorf("token signed before the rotation: %v", err)
	}
	tokB, _, _ := i.Mint("b", nil, 0)
	if c, err := i.Verify(tokB); err != nil || !strings.Contains(tokB, ".") {
		t.Errorf("new token: %v %v", c, err)
	}

	// A second reload with the same file keeps the former key published.
	if err := i.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := kids(); !slices.Equal(got, []string{kidB, kidA}) {
		t.Errorf("after a second reload: JWKS kids %v", got)
	}

	// A broken file keeps both.
	if err := os.WriteFile(keyPath, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := i.Reload(); err == nil {
		t.Error("Reload of a broken key file succeeded")
	}
	if i.KeyID() != kidB || !slices.Equal(kids(), []string{kidB, kidA}) {
		t.Errorf("after a failed reload: kid %s, JWKS %v", i.KeyID(), kids())
	}

	// max_ttl after the rotation the old key is gone.
	copyFile(privB)
	clock.Advance(time.Hour + time.Minute)
	if err := i.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := kids(); !slices.Equal(got, []string{kidB}) {
		t.Errorf("max_ttl after the rotation: JWKS kids %v, want only %s", got, kidB)
	}
	if _, err := i.Verify(tokA); !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrExpired) {
		t.Errorf("old token after max_ttl: %v", err)
	}
}
