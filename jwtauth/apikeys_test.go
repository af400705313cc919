package jwtauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
)

// seedKeys is keys.properties exactly as the cyphernode seed shows it.
const seedKeys = `#keyid=hex(key)
key001=2df1eeea370eacdc5cf7e96c2d82140d1568079a5d4d87006ec8718a98883b36
key002=50c5e483b80964595508f214229b014aa6c013594d57d38bcb841093a39f1d83
`

// recipe is the seed's "10 seconds request expiration" line, minus the curl,
// echoing the token instead. Nothing else is changed.
const recipe = `id="001";h64=$(echo "{\"alg\":\"HS256\",\"typ\":\"JWT\"}" | base64);p64=$(echo "{\"id\":\"$id\",\"exp\":$((` + "`" + `date +"%s"` + "`" + `+10))}" | base64);k="2df1eeea370eacdc5cf7e96c2d82140d1568079a5d4d87006ec8718a98883b36";s=$(echo "$h64.$p64" | openssl dgst -hmac "$k" -sha256 -r | cut -sd ' ' -f1);token="$h64.$p64.$s";echo "$token"`

func loadSeedKeys(t *testing.T) *APIKeys {
	t.Helper()
	a, err := LoadAPIKeys(writeFile(t, "keys.properties", seedKeys, 0o600), 0, testLogger(t))
	if err != nil {
		t.Fatalf("LoadAPIKeys: %v", err)
	}
	return a
}

func TestCyphernodeShellRecipe(t *testing.T) {
	a := loadSeedKeys(t)
	tok := runBash(t, recipe)
	t.Logf("recipe token: %s", tok)
	if !strings.HasSuffix(strings.Split(tok, ".")[0], "Cg==") {
		t.Fatalf("header %q is not padded base64 of echo output; the recipe did not run as expected", tok)
	}
	// What openssl computed: HMAC keyed with the 64-character hex text (not
	// the 32 bytes it encodes) over "h64.p64" plus echo's newline.
	parts := strings.Split(tok, ".")
	hexText := "2df1eeea370eacdc5cf7e96c2d82140d1568079a5d4d87006ec8718a98883b36"
	m := hmac.New(sha256.New, []byte(hexText))
	m.Write([]byte(parts[0] + "." + parts[1] + "\n"))
	if got := hex.EncodeToString(m.Sum(nil)); got != parts[2] {
		t.Errorf("HMAC(hex text, h.p\\n) = %s, openssl said %s", got, parts[2])
	}
	raw, _ := hex.DecodeString(hexText)
	m = hmac.New(sha256.New, raw)
	m.Write([]byte(parts[0] + "." + parts[1] + "\n"))
	if got := hex.EncodeToString(m.Sum(nil)); got == parts[2] {
		t.Errorf("openssl -hmac used the decoded key bytes; the recipe analysis is wrong")
	}

	r := httptest.NewRequest("GET", "/getbestblockhash", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	id, err := a.Verify(r)
	if err != nil {
		t.Fatalf("recipe token refused: %v", err)
	}
	if id != "key001" {
		t.Errorf("key id %q, want key001 (id 001 in the token)", id)
	}
	if _, err := a.Verify(r); !errors.Is(err, ErrReplay) {
		t.Errorf("replayed recipe token: %v, want ErrReplay", err)
	}
	// Upper-case hex is the same signature, so still a replay.
	if _, err := a.VerifyToken(parts[0] + "." + parts[1] + "." + strings.ToUpper(parts[2])); !errors.Is(err, ErrReplay) {
		t.Errorf("replay with upper-case hex: %v, want ErrReplay", err)
	}

	t.Run("expired", func(t *testing.T) {
		a := loadSeedKeys(t)
		tok := runBash(t, recipe)
		clock := newFakeClock(time.Now().Add(11 * time.Second))
		a.SetClock(clock.Now)
		if _, err := a.VerifyToken(tok); !errors.Is(err, ErrExpired) {
			t.Errorf("recipe token 11s later: %v, want ErrExpired", err)
		}
		expired := runBash(t, strings.Replace(recipe, "+10))", "-1))", 1))
		a.SetClock(time.Now)
		if _, err := a.VerifyToken(expired); !errors.Is(err, ErrExpired) {
			t.Errorf("recipe token with exp now-1: %v, want ErrExpired", err)
		}
	})
	t.Run("60 seconds variant", func(t *testing.T) {
		a := loadSeedKeys(t)
		if _, err := a.VerifyToken(runBash(t, strings.Replace(recipe, "+10))", "+60))", 1))); err != nil {
			t.Errorf("60s recipe token: %v", err)
		}
		if _, err := a.VerifyToken(runBash(t, strings.Replace(recipe, "+10))", "+3600))", 1))); !errors.Is(err, ErrTooFarAhead) {
			t.Errorf("recipe token with exp now+1h: %v, want ErrTooFarAhead", err)
		}
	})
	t.Run("echo -n variant of later cyphernode docs", func(t *testing.T) {
		a := loadSeedKeys(t)
		if _, err := a.VerifyToken(runBash(t, strings.ReplaceAll(recipe, "$(echo ", "$(echo -n "))); err != nil {
			t.Errorf("echo -n recipe token: %v", err)
		}
	})
	t.Run("key002 cannot sign for 001", func(t *testing.T) {
		a := loadSeedKeys(t)
		wrong := strings.Replace(recipe, "2df1eeea370eacdc5cf7e96c2d82140d1568079a5d4d87006ec8718a98883b36", "50c5e483b80964595508f214229b014aa6c013594d57d38bcb841093a39f1d83", 1)
		if _, err := a.VerifyToken(runBash(t, wrong)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("token for id 001 signed with key002: %v, want ErrBadSignature", err)
		}
	})
}

// hs256 builds an RFC 7519 compact token with golang-jwt.
func hs256(t *testing.T, key []byte, header map[string]any, claims gjwt.MapClaims) string {
	t.Helper()
	tk := gjwt.NewWithClaims(gjwt.SigningMethodHS256, claims)
	for k, v := range header {
		tk.Header[k] = v
	}
	s, err := tk.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAPIKeyCompactTokens(t *testing.T) {
	hexKey := "50c5e483b80964595508f214229b014aa6c013594d57d38bcb841093a39f1d83"
	raw, _ := hex.DecodeString(hexKey)
	now := time.Now()
	exp := now.Add(10 * time.Second).Unix()
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	mac := func(key []byte, msg string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	hp := b64(`{"alg":"HS256","typ":"JWT"}`) + "." + b64(fmt.Sprintf(`{"id":"002","exp":%d}`, exp))
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"id claim, binary key", hs256(t, raw, nil, gjwt.MapClaims{"id": "002", "exp": exp}), nil},
		{"kid header, binary key", hs256(t, raw, map[string]any{"kid": "key002"}, gjwt.MapClaims{"exp": exp}), nil},
		{"hex text as key", hs256(t, []byte(hexKey), nil, gjwt.MapClaims{"id": "key002", "exp": exp}), nil},
		{"id and kid disagree", hs256(t, raw, map[string]any{"kid": "key001"}, gjwt.MapClaims{"id": "002", "exp": exp}), ErrMalformed},
		{"unknown id", hs256(t, raw, nil, gjwt.MapClaims{"id": "999", "exp": exp}), ErrUnknownKey},
		{"id path trick", hs256(t, raw, nil, gjwt.MapClaims{"id": "../../etc/passwd", "exp": exp}), ErrUnknownKey},
		{"no id", hs256(t, raw, nil, gjwt.MapClaims{"exp": exp}), ErrMalformed},
		{"no exp", hs256(t, raw, nil, gjwt.MapClaims{"id": "002"}), ErrMalformed},
		{"fractional exp", hs256(t, raw, nil, gjwt.MapClaims{"id": "002", "exp": float64(exp) + 0.5}), ErrMalformed},
		{"wrong key", hs256(t, []byte("not the key at all, 32 bytes...."), nil, gjwt.MapClaims{"id": "002", "exp": exp}), ErrBadSignature},
		{"expired", hs256(t, raw, nil, gjwt.MapClaims{"id": "002", "exp": now.Add(-time.Second).Unix()}), ErrExpired},
		{"exp now", hs256(t, raw, nil, gjwt.MapClaims{"id": "002", "exp": now.Unix()}), ErrExpired},
		{"exp too far ahead", hs256(t, raw, nil, gjwt.MapClaims{"id": "002", "exp": now.Add(61 * time.Second).Unix()}), ErrTooFarAhead},
		{"alg none", b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(fmt.Sprintf(`{"id":"002","exp":%d}`, exp)) + ".", ErrMalformed},
		{"alg HS512", b64(`{"alg":"HS512"}`) + "." + b64(fmt.Sprintf(`{"id":"002","exp":%d}`, exp)) + "." + mac(raw, b64(`{"alg":"HS512"}`)+"."+b64(fmt.Sprintf(`{"id":"002","exp":%d}`, exp))), ErrBadAlgorithm},
		{"alg none, with a real MAC", b64(`{"alg":"none"}`) + "." + b64(fmt.Sprintf(`{"id":"002","exp":%d}`, exp)) + "." + mac(raw, b64(`{"alg":"none"}`)+"."+b64(fmt.Sprintf(`{"id":"002","exp":%d}`, exp))), ErrBadAlgorithm},
		{"hand-made compact", hp + "." + mac(raw, hp), nil},
		{"compact signature over h.p plus newline", hp + "." + mac(raw, hp+"\n"), ErrBadSignature},
		{"oversized", hp + strings.Repeat("A", MaxTokenBytes) + "." + mac(raw, hp), ErrTokenTooLarge},
		{"four parts", hp + "." + mac(raw, hp) + ".x", ErrMalformed},
		{"short signature", hp + ".abc", ErrMalformed},
	}
	a := loadSeedKeys(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := a.VerifyToken(tt.tok)
			if tt.want == nil {
				if err != nil || id != "key002" {
					t.Fatalf("VerifyToken = %q, %v; want key002", id, err)
				}
				if _, err := a.VerifyToken(tt.tok); !errors.Is(err, ErrReplay) {
					t.Fatalf("second use = %v, want ErrReplay", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyToken = %q, %v; want %v", id, err, tt.want)
			}
		})
	}
}

func TestReplayMemoryExpires(t *testing.T) {
	a := loadSeedKeys(t)
	clock := newFakeClock(time.Now())
	a.SetClock(clock.Now)
	raw, _ := hex.DecodeString("50c5e483b80964595508f214229b014aa6c013594d57d38bcb841093a39f1d83")
	for n := range 50 {
		tok := hs256(t, raw, nil, gjwt.MapClaims{"id": "002", "exp": clock.Now().Add(5 * time.Second).Unix(), "n": n})
		if _, err := a.VerifyToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(10 * time.Second)
	tok := hs256(t, raw, nil, gjwt.MapClaims{"id": "002", "exp": clock.Now().Add(5 * time.Second).Unix()})
	if _, err := a.VerifyToken(tok); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	n := len(a.seen)
	a.mu.Unlock()
	if n != 1 {
		t.Errorf("replay memory holds %d entries after the others expired, want 1", n)
	}
}

func TestKeysFileFormats(t *testing.T) {
	tests := []struct {
		name, file string
		ids        []string
		err        string
	}{
		{"seed", seedKeys, []string{"key001", "key002"}, ""},
		{"kapi form", `# kapi_id="id";kapi_key="key";kapi_groups="group1,group2";leave the rest intact
kapi_id="003";kapi_key="b9b8d527a1a27af2ad1697db3521f883760c342fc386dbc42c4efbb1a4d5e0af";kapi_groups="watcher,spender";eval ugroups_${kapi_id}=${kapi_groups};eval ukey_${kapi_id}=${kapi_key}
`, []string{"003"}, ""},
		{"blank lines and spaces", "\n  a = 2df1eeea370eacdc5cf7e96c2d82140d1568079a5d4d87006ec8718a98883b36  \n\n", []string{"a"}, ""},
		{"short key", "a=2df1eeea\n", nil, "want 64 hex digits"},
		{"not hex", "a=" + strings.Repeat("zz", 32) + "\n", nil, "want 64 hex digits"},
		{"duplicate", "a=" + strings.Repeat("00", 32) + "\na=" + strings.Repeat("11", 32) + "\n", nil, "appears twice"},
		{"no equals", "just-a-line\n", nil, "want keyid=hex(key)"},
		{"bad id", "a/b=" + strings.Repeat("00", 32) + "\n", nil, "key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseKeysFile(strings.NewReader(tt.file))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseKeysFile = %v, want error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tt.ids) {
				t.Fatalf("got %d keys, want %d", len(keys), len(tt.ids))
			}
			for _, id := range tt.ids {
				if len(keys[id].raw) != 32 {
					t.Errorf("key %s missing", id)
				}
			}
		})
	}
}

func TestNewAPIKey(t *testing.T) {
	path := t.TempDir() + "/keys.properties"
	k1, err := NewAPIKey(path, "001")
	if err != nil {
		t.Fatalf("NewAPIKey: %v", err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("new keys file mode %04o, want 0600", st.Mode().Perm())
	}
	a, err := LoadAPIKeys(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAPIKey(path, "001"); err == nil {
		t.Error("duplicate id accepted")
	}
	if _, err := NewAPIKey(path, "../x"); err == nil {
		t.Error("id with a slash accepted")
	}
	// A file without a final newline gets one before the new line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("# trailing comment")
	f.Close()
	k2, err := NewAPIKey(path, "002")
	if err != nil {
		t.Fatal(err)
	}
	if k1 == k2 || len(k1) != 64 {
		t.Errorf("keys %q %q", k1, k2)
	}
	// The running APIKeys picks up the new key without a restart.
	a.mu.Lock()
	a.lastCheck = time.Time{}
	a.mu.Unlock()
	raw, _ := hex.DecodeString(k2)
	if id, err := a.VerifyToken(hs256(t, raw, nil, gjwt.MapClaims{"id": "002", "exp": time.Now().Add(5 * time.Second).Unix()})); err != nil || id != "002" {
		t.Errorf("token for the key added later: %q, %v", id, err)
	}
}
