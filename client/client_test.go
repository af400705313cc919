package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/client"
	"github.com/sks-server/sks/testrig"
)

func startSKS(t *testing.T) (*testrig.SKS, *client.Client) {
	t.Helper()
	s := testrig.StartSKS(t, "")
	c, err := client.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestClientAgainstLiveSKS(t *testing.T) {
	s, c := startSKS(t)
	ctx := context.Background()

	if _, err := c.Login(ctx, "demo", "demo", "wrong", ""); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("login with a wrong password: got %v, want ErrForbidden", err)
	}
	if _, err := c.Login(ctx, "demo", "bad\nuser", "x", ""); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("login with a malformed user: got %v, want ErrBadRequest", err)
	}
	sess, err := c.Login(ctx, "demo", "demo", s.DemoPassword, "")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if len(sess.Token) != 64 || sess.Identity.User != "demo" || sess.Identity.Source != "auth/demo" {
		t.Fatalf("login: got %+v", sess)
	}
	if strings.Contains(s.Output(), sess.Token) || strings.Contains(s.Output(), s.DemoPassword) {
		t.Fatal("the server log holds the token or the password")
	}

	res, err := c.Valid(ctx, "demo", sess.Token)
	if err != nil || res.Status != client.Valid || res.Identity.User != "demo" || res.Identity.Source != "auth/demo" ||
		res.Identity.Text != "demo\nauth/demo\n" {
		t.Fatalf("valid: got %+v, %v", res, err)
	}
	if res, err := c.Valid(ctx, "other", sess.Token); err != nil || res.Status != client.Invalid {
		t.Fatalf("valid in another realm: got %+v, %v", res, err)
	}

	key, err := c.GetKey(ctx, "demo", sess.Token)
	if err != nil || key != nil {
		t.Fatalf("get_key before gen_key: got %x, %v", key, err)
	}
	key, err = c.GenKey(ctx, "demo", sess.Token)
	if err != nil || len(key) != 64 {
		t.Fatalf("gen_key: got %d bytes, %v", len(key), err)
	}
	if got, err := c.GetKey(ctx, "demo", sess.Token); err != nil || string(got) != string(key) {
		t.Fatalf("get_key: got %x, %v, want %x", got, err, key)
	}

	// A second login supersedes the first token.
	sess2, err := c.Login(ctx, "demo", "demo", s.DemoPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.Valid(ctx, "demo", sess.Token); err != nil || res.Status != client.Superseded || res.Identity.User != "demo" {
		t.Fatalf("valid of a superseded token: got %+v, %v", res, err)
	}
	if _, err := c.Replace(ctx, "demo", sess.Token); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("replace of a superseded token: got %v, want ErrForbidden", err)
	}
	if _, err := c.GenKey(ctx, "demo", sess.Token); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("gen_key with a superseded token: got %v, want ErrForbidden", err)
	}

	sess3, err := c.Replace(ctx, "demo", sess2.Token)
	if err != nil || sess3.Token == sess2.Token || sess3.Identity.User != "demo" {
		t.Fatalf("replace: got %+v, %v", sess3, err)
	}
	if res, _ := c.Valid(ctx, "demo", sess2.Token); res.Status != client.Invalid {
		t.Fatalf("replaced token: got %v, want invalid", res.Status)
	}

	// No signing key is configured: /jwt is not found.
	if _, err := c.JWT(ctx, "demo", sess3.Token); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("jwt without signing keys: got %v, want ErrNotFound", err)
	}

	if ok, err := c.Revoke(ctx, "demo", sess3.Token); !ok || err != nil {
		t.Fatalf("revoke: got %v, %v", ok, err)
	}
	if ok, err := c.Revoke(ctx, "demo", sess3.Token); ok || err != nil {
		t.Fatalf("second revoke: got %v, %v, want false", ok, err)
	}
	if res, _ := c.Valid(ctx, "demo", sess3.Token); res.Status != client.Invalid {
		t.Fatalf("revoked token: got %v, want invalid", res.Status)
	}
}

func TestClientErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   error
	}{
		{400, client.ErrBadRequest},
		{403, client.ErrForbidden},
		{404, client.ErrNotFound},
		{429, client.ErrTooManyRequests},
		{503, client.ErrUnavailable},
		{500, client.ErrProtocol},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.RawQuery != "" {
				t.Errorf("got %s %s, want a POST with everything in the body", r.Method, r.URL)
			}
			w.WriteHeader(tc.status)
		}))
		c, _ := client.New(srv.URL)
		_, err := c.Login(context.Background(), "r", "u", "p", "")
		var e *client.Error
		if !errors.Is(err, tc.want) || !errors.As(err, &e) || e.Status != tc.status {
			t.Errorf("status %d: got %v, want %v", tc.status, err, tc.want)
		}
		srv.Close()
	}
	if _, err := client.New("ftp://x"); err == nil {
		t.Error("New accepted an ftp URL")
	}
	if _, err := client.New("https://x", client.WithCAFile("/nonexistent")); err == nil {
		t.Error("New accepted a missing CA file")
	}
}

func TestMiddleware(t *testing.T) {
	s, c := startSKS(t)
	ctx := context.Background()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := client.IdentityFrom(r.Context())
		if !ok {
			t.Error("no identity in the request context")
		}
		io.WriteString(w, "hello "+id.User)
	})
	const ttl = 300 * time.Millisecond
	h := client.Middleware(c, "demo", client.MiddlewareOptions{CacheTTL: ttl, InvalidCacheTTL: ttl, CookieName: "sess"})(app)
	get := func(set func(*http.Request)) (int, string) {
		t.Helper()
		r := httptest.NewRequest("GET", "/", nil)
		set(r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	sess, err := c.Login(ctx, "demo", "demo", s.DemoPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	cookie := func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sess", Value: sess.Token}) }
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+sess.Token) }

	if code, body := get(cookie); code != 200 || body != "hello demo" {
		t.Fatalf("cookie: got %d %q", code, body)
	}
	if code, body := get(bearer); code != 200 || body != "hello demo" {
		t.Fatalf("bearer: got %d %q", code, body)
	}
	if code, _ := get(func(*http.Request) {}); code != 401 {
		t.Fatalf("no token: got %d, want 401", code)
	}
	if code, _ := get(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sess", Value: "nope"}) }); code != 401 {
		t.Fatalf("unknown token: got %d, want 401", code)
	}

	if _, err := c.Revoke(ctx, "demo", sess.Token); err != nil {
		t.Fatal(err)
	}
	// Within the cache time the revoked token may still pass; after it, never.
	time.Sleep(ttl + 50*time.Millisecond)
	if code, _ := get(cookie); code != 401 {
		t.Fatalf("revoked token after the cache time: got %d, want 401", code)
	}

	// sks down: 503, not 401.
	s.Stop()
	other := client.Middleware(c, "demo", client.MiddlewareOptions{})(app)
	r := httptest.NewRequest("GET", "/", nil)
	bearer(r)
	w := httptest.NewRecorder()
	other.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("sks down: got %d, want 503", w.Code)
	}
}

func TestMiddlewareRedirect(t *testing.T) {
	c, _ := client.New("http://127.0.0.1:1")
	h := client.Middleware(c, "demo", client.MiddlewareOptions{
		Unauthorized: http.RedirectHandler("/login", http.StatusSeeOther),
	})(http.NotFoundHandler())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Fatalf("got %d %q, want a redirect to /login", w.Code, w.Header().Get("Location"))
	}
}
