package jwtauth

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
)

const testMaster = "MY_MASTER_TOKEN-0123456789abcdef"

// mintServer is an sks with /token and /jwks.json and a master token.
func mintServer(t *testing.T) (*Issuer, *httptest.Server) {
	t.Helper()
	priv, _ := genKey(t, "ES256")
	i := openIssuer(t, Config{
		SigningKey:      priv,
		Issuer:          "sks",
		Audience:        []string{"opal"},
		MaxTTL:          Duration{24 * time.Hour},
		MasterTokenFile: writeFile(t, "master", testMaster+"\n", 0o600),
		APIKeysFile:     writeFile(t, "keys", seedKeys, 0o600),
	})
	mux := http.NewServeMux()
	mux.Handle("/token", i.MintHandler())
	mux.Handle("/jwks.json", i.JWKSHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return i, srv
}

func post(t *testing.T, url, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("response %q is not JSON: %v", b, err)
	}
	return res.StatusCode, m
}

func TestMintHandler(t *testing.T) {
	_, srv := mintServer(t)
	url := srv.URL + "/token"
	ok := "Bearer " + testMaster
	tests := []struct {
		name, auth, body string
		status           int
		errPart          string
	}{
		// The body exactly as OPAL's documentation sends it, trailing comma included.
		{"OPAL curl example", ok, "{\n\"type\": \"client\",\n}", 200, ""},
		{"empty body", ok, "", 200, ""},
		{"temporal permissions", ok, `{"sub":"worker","claims":{"permissions":["default:read","default:write"]},"ttl":"1h"}`, 200, ""},
		{"clustercockpit roles, ttl in seconds", ok, `{"subject":"api-user","claims":{"roles":["api"]},"ttl":3600}`, 200, ""},
		{"OPAL id and ISO 8601 lifetime", ok, `{"id":"5f1c0c7e-0000-4000-8000-000000000000","type":"datasource","lifetime":"PT2H"}`, 200, ""},
		{"no authorization", "", `{}`, 401, "master token"},
		{"wrong master token", "Bearer wrong", `{}`, 401, "master token"},
		{"master token as prefix", "Bearer " + testMaster[:10], `{}`, 401, "master token"},
		{"basic scheme", "Basic " + testMaster, `{}`, 401, "master token"},
		{"bad JSON", ok, `{"type":`, 400, "bad JSON body"},
		{"unknown field", ok, `{"tll":"1h"}`, 400, "unknown field"},
		{"two objects", ok, `{}{}`, 400, "data after"},
		{"ttl too long", ok, `{"ttl":"48h"}`, 400, "longer than"},
		{"ttl garbage", ok, `{"ttl":"soon"}`, 400, "ttl"},
		{"reserved claim", ok, `{"claims":{"exp":9999999999}}`, 400, `"exp" is set by the server`},
		{"peer_type claim", ok, `{"claims":{"peer_type":"admin"}}`, 400, "peer_type"},
		{"two subjects", ok, `{"sub":"a","subject":"b"}`, 400, "only one"},
		{"body too large", ok, `{"claims":{"x":"` + strings.Repeat("a", MaxMintBodyBytes) + `"}}`, 400, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := post(t, url, tt.auth, tt.body)
			if status != tt.status {
				t.Fatalf("status %d (%v), want %d", status, m, tt.status)
			}
			if tt.status != 200 {
				if e, _ := m["error"].(string); !strings.Contains(e, tt.errPart) {
					t.Errorf("error %q, want it to mention %q", e, tt.errPart)
				}
				if m["token"] != nil {
					t.Error("a refusal carries a token")
				}
				return
			}
			tok, _ := m["token"].(string)
			exp, err := time.Parse(time.RFC3339, m["expires_at"].(string))
			if tok == "" || err != nil || m["type"] != "bearer" {
				t.Fatalf("response %v", m)
			}
			keys := fetchJWKS(t, srv.URL+"/jwks.json")
			c, err := verifyWithGolangJWT(t, keys, tok, "sks", "opal", time.Now())
			if err != nil {
				t.Fatalf("minted token does not verify: %v", err)
			}
			if got, _ := c.GetExpirationTime(); !got.Time.Equal(exp) {
				t.Errorf("exp %v, expires_at %v", got, exp)
			}
			if sub, _ := c["sub"].(string); sub == "" {
				t.Error("no sub")
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 405 {
			t.Errorf("GET /token: %d, want 405", res.StatusCode)
		}
	})
}

func TestObtainToken(t *testing.T) {
	i, srv := mintServer(t)
	tr, err := ObtainToken(context.Background(), testMaster, srv.URL, TokenRequest{Type: "client", Claims: map[string]any{"permissions": []string{"system:admin"}}, TTL: TTL{time.Hour}}, nil)
	if err != nil {
		t.Fatalf("ObtainToken: %v", err)
	}
	c, err := i.Verify(tr.Token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Extra["peer_type"] != "client" || c.Extra["permissions"] == nil {
		t.Errorf("claims %v", c.Extra)
	}
	if d := time.Until(tr.ExpiresAt).Round(time.Minute); d != time.Hour {
		t.Errorf("expires in %s, want 1h", d)
	}
	_, err = ObtainToken(context.Background(), "wrong-master", srv.URL+"/token", TokenRequest{}, nil)
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-master") {
		t.Errorf("ObtainToken with a wrong master: %v", err)
	}
}

func TestOfflineToken(t *testing.T) {
	priv, _ := genKey(t, "ES256")
	cfg := Config{SigningKey: priv, MaxTTL: Duration{24 * time.Hour}}
	tok, exp, err := OfflineToken(cfg, "api-user", []string{"api"}, 0)
	if err != nil {
		t.Fatalf("OfflineToken: %v", err)
	}
	if d := time.Until(exp).Round(time.Hour); d != 24*time.Hour {
		t.Errorf("expires in %s, want max_ttl", d)
	}
	i := openIssuer(t, cfg)
	c, err := i.Verify(tok)
	if err != nil || c.Subject != "api-user" || len(c.Roles) != 1 || c.Roles[0] != "api" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	if _, _, err := OfflineToken(cfg, "u", nil, 48*time.Hour); !errors.Is(err, ErrTTLTooLong) {
		t.Errorf("OfflineToken(48h) = %v, want ErrTTLTooLong", err)
	}
	if _, _, err := OfflineToken(Config{}, "u", nil, 0); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("OfflineToken without key = %v, want ErrNoSigningKey", err)
	}
}

func TestAdminAuth(t *testing.T) {
	i, _ := mintServer(t)
	raw, _ := hex.DecodeString("2df1eeea370eacdc5cf7e96c2d82140d1568079a5d4d87006ec8718a98883b36")
	apiTok := hs256(t, raw, nil, gjwt.MapClaims{"id": "001", "exp": time.Now().Add(5 * time.Second).Unix()})
	req := func(auth string) *http.Request {
		r := httptest.NewRequest("GET", "/stored_token", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	tests := []struct {
		name, auth, who string
		ok              bool
	}{
		{"master token", "Bearer " + testMaster, "master", true},
		{"lower-case scheme", "bearer " + testMaster, "master", true},
		{"api key token", "Bearer " + apiTok, "apikey:key001", true},
		{"same api key token again", "Bearer " + apiTok, "", false},
		{"nothing", "", "", false},
		{"wrong master", "Bearer " + testMaster + "x", "", false},
		{"jwt-shaped garbage", "Bearer a.b.c", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			who, ok := i.AdminAuth(req(tt.auth))
			if who != tt.who || ok != tt.ok {
				t.Errorf("AdminAuth = %q, %v; want %q, %v", who, ok, tt.who, tt.ok)
			}
		})
	}
}

func TestParseTTL(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"3600", time.Hour, false},
		{"1.5", 1500 * time.Millisecond, false},
		{"90m", 90 * time.Minute, false},
		{"PT1H", time.Hour, false},
		{"P1D", 24 * time.Hour, false},
		{"P1DT2H30M", 26*time.Hour + 30*time.Minute, false},
		{"P2W", 14 * 24 * time.Hour, false},
		{"pt0.5s", 500 * time.Millisecond, false},
		{"P", 0, true},
		{"PT", 0, true},
		{"-1h", 0, true},
		{"-5", 0, true},
		{"P1Y", 0, true},
		{"soon", 0, true},
	}
	for _, tt := range tests {
		got, err := parseTTL(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseTTL(%q) = %s, %v; want %s, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestLogsCarryNoSecrets drives successes and refusals and searches the log.
func TestLogsCarryNoSecrets(t *testing.T) {
	var buf strings.Builder
	priv, _ := genKey(t, "ES256")
	i, err := Open(Config{
		SigningKey:      priv,
		MasterTokenFile: writeFile(t, "master", testMaster+"\n", 0o600),
		APIKeysFile:     writeFile(t, "keys", seedKeys, 0o600),
	}, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(i.MintHandler())
	defer srv.Close()
	_, m := post(t, srv.URL, "Bearer "+testMaster, `{"type":"client"}`)
	minted, _ := m["token"].(string)
	post(t, srv.URL, "Bearer not-the-master-token", `{}`)
	raw, _ := hex.DecodeString("2df1eeea370eacdc5cf7e96c2d82140d1568079a5d4d87006ec8718a98883b36")
	apiTok := hs256(t, raw, nil, gjwt.MapClaims{"id": "001", "exp": time.Now().Add(5 * time.Second).Unix()})
	for range 2 {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+apiTok)
		i.AdminAuth(r)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer not-the-master-token")
	i.AdminAuth(r)
	log := buf.String()
	if !strings.Contains(log, "token minted") || !strings.Contains(log, "already used") {
		t.Fatalf("log lacks the expected events:\n%s", log)
	}
	for _, secret := range []string{testMaster, "not-the-master-token", minted, apiTok, strings.Split(apiTok, ".")[2], "2df1eeea370eacdc"} {
		if secret != "" && strings.Contains(log, secret) {
			t.Errorf("log contains a secret or token %.20q...:\n%s", secret, log)
		}
	}
}
