package httpcred

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestBearerAndToken(t *testing.T) {
	cases := []struct {
		auth, cookie string
		bearer, tok  string
		bOK, tOK     bool
	}{
		{"Bearer abc", "", "abc", "abc", true, true},
		{"bearer  abc ", "", "abc", "abc", true, true},
		{"BEARER abc", "", "abc", "abc", true, true},
		{"Bearer ", "", "", "", false, false},
		{"Bearer    ", "", "", "", false, false},
		{"Basic abc", "", "", "", false, false},
		{"Bearerabc", "", "", "", false, false},
		{"Bearer\tabc", "", "", "", false, false},
		{"", "", "", "", false, false},
		{"Bearer abc", "cookie-tok", "abc", "cookie-tok", true, true},
		{"", "cookie-tok", "", "cookie-tok", false, true},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "sks_token", Value: c.cookie})
		}
		if got, ok := Bearer(r); got != c.bearer || ok != c.bOK {
			t.Errorf("Bearer(%q) = %q, %v; want %q, %v", c.auth, got, ok, c.bearer, c.bOK)
		}
		if got, ok := Token(r, "sks_token"); got != c.tok || ok != c.tOK {
			t.Errorf("Token(%q, cookie %q) = %q, %v; want %q, %v", c.auth, c.cookie, got, ok, c.tok, c.tOK)
		}
	}
}
