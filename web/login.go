package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sks-server/sks/authn"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Parse(pageHTML))

type pageData struct {
	Title    string
	Error    string
	Form     bool
	Logout   bool
	Action   string
	Realm    string
	ReturnTo string
	CSRF     string
	User     string

	// SignedInAs is the user of a current session shown above the login
	// form; AccountURL links to the account page.
	SignedInAs string
	AccountURL string
	// Account shows the account page: User, Realm, and the session's
	// Source, times (for people and as RFC 3339), short hash and the
	// number of the user's sessions.
	Account             bool
	Source              string
	Issued, IssuedISO   string
	Expires, ExpiresISO string
	SessionID           string
	Sessions            int
}

const (
	// csrfTTL is how long a login form stays usable.
	csrfTTL = time.Hour
	// failFloor is the least time a failed login takes to answer, so that
	// refusals before and after the login module look alike.
	failFloor = 300 * time.Millisecond
	// maxForm bounds the login form body.
	maxForm = 16 << 10
)

func (h *Handler) csrfCookie() string { return h.cfg.CookieName + "_csrf" }

// secure reports whether cookies should carry the Secure flag.
func (h *Handler) secure(r *http.Request) bool { return r.TLS != nil || h.cfg.SecureCookie }

// newCSRF returns "<unix time>.<nonce>.<hmac>", signed with the process key.
// The same value goes into a SameSite=Strict cookie and the form (double
// submit); the signature stops an attacker who can plant cookies on a
// sibling domain from choosing a pair.
func (h *Handler) newCSRF(now time.Time) string {
	var n [16]byte
	rand.Read(n[:])
	msg := strconv.FormatInt(now.Unix(), 10) + "." + hex.EncodeToString(n[:])
	return msg + "." + h.mac(msg)
}

func (h *Handler) mac(msg string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("sks-csrf\x00"))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func (h *Handler) checkCSRF(r *http.Request, field string, now time.Time) bool {
	c, err := r.Cookie(h.csrfCookie())
	if err != nil || field == "" || !hmac.Equal([]byte(c.Value), []byte(field)) {
		return false
	}
	i := strings.LastIndexByte(field, '.')
	if i < 0 || !hmac.Equal([]byte(field[i+1:]), []byte(h.mac(field[:i]))) {
		return false
	}
	ts, _, _ := strings.Cut(field, ".")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	age := now.Sub(time.Unix(sec, 0))
	return age >= -time.Minute && age < csrfTTL
}

// safeReturn reports whether target may be redirected to after login: a
// relative path on this site, or an http(s) URL whose host is allowed.
// Everything a browser might read as another site is refused: "//evil",
// "/\evil", "javascript:", control characters, user info.
func (h *Handler) safeReturn(target string) bool {
	if target == "" || len(target) > 2048 || strings.ContainsRune(target, '\\') {
		return false
	}
	for i := 0; i < len(target); i++ {
		if target[i] < 0x21 || target[i] == 0x7f {
			return false
		}
	}
	if target[0] == '/' {
		if len(target) > 1 && target[1] == '/' {
			return false
		}
		u, err := url.Parse(target)
		return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.Host == "" || u.Opaque != "" {
		return false
	}
	host := strings.ToLower(u.Host)
	return h.allowed[host] || h.allowed[strings.ToLower(u.Hostname())]
}

// returnTo is v if it is safe to go back to, else "": after login the
// browser then goes to the account page.
func (h *Handler) returnTo(v string) string {
	if h.safeReturn(v) {
		return v
	}
	return ""
}

func (h *Handler) render(w http.ResponseWriter, status int, d pageData) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := page.Execute(w, d); err != nil {
		h.log.Warn("cannot render page", "err", err)
	}
}

// form shows the login form with a fresh CSRF token.
func (h *Handler) form(w http.ResponseWriter, r *http.Request, status int, realm, returnTo, user, msg string) {
	tok := h.newCSRF(time.Now())
	http.SetCookie(w, &http.Cookie{
		Name: h.csrfCookie(), Value: tok, Path: h.cfg.LoginPath, MaxAge: int(csrfTTL / time.Second),
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteStrictMode,
	})
	d := pageData{Title: "Sign in", Error: msg, Form: true, Action: h.cfg.LoginPath,
		Realm: realm, ReturnTo: returnTo, CSRF: tok, User: user}
	if d.SignedInAs = h.signedInAs(r, realm); d.SignedInAs != "" {
		d.AccountURL = h.accountURL(realm)
	}
	h.render(w, status, d)
}

// LoginPage serves the login form (GET) and logs in (POST). On success it
// sets the session cookie and redirects to return_to if that is safe, else
// to the account page of the realm.
func (h *Handler) LoginPage(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		realm := h.realm(r)
		if !authn.Printable(realm, 256) {
			h.render(w, http.StatusBadRequest, pageData{Title: "Sign in", Error: "No realm given: add ?realm=NAME to the address."})
			return
		}
		rt, _ := queryValue(r.URL.RawQuery, "return_to")
		h.form(w, r, http.StatusOK, realm, h.returnTo(rt), "", "")
	case http.MethodPost:
		h.login(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.render(w, http.StatusBadRequest, pageData{Title: "Sign in", Error: "The form could not be read."})
		return
	}
	f := r.PostForm
	realm := f.Get("realm")
	if realm == "" {
		realm = h.cfg.DefaultRealm
	}
	returnTo := h.returnTo(f.Get("return_to"))
	user := f.Get("user")
	if !authn.Printable(realm, 256) {
		h.render(w, http.StatusBadRequest, pageData{Title: "Sign in", Error: "No realm given."})
		return
	}
	log := h.log.With("realm", realm, "client", h.clientAddr(r))
	if !h.checkCSRF(r, f.Get("csrf"), start) {
		log.Info("login form refused: missing or bad csrf token")
		h.form(w, r, http.StatusForbidden, realm, returnTo, "", "This form has expired. Please sign in again.")
		return
	}
	tok, status := h.o.Login(r.Context(), realm, user, f.Get("password"), h.clientAddr(r))
	if status == http.StatusOK {
		http.SetCookie(w, &http.Cookie{
			Name: h.cfg.CookieName, Value: tok, Path: "/",
			HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode,
		})
		// The form token is spent.
		http.SetCookie(w, &http.Cookie{Name: h.csrfCookie(), Path: h.cfg.LoginPath, MaxAge: -1,
			HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteStrictMode})
		log.Info("web login", "token", short(tok))
		if returnTo == "" {
			returnTo = h.accountURL(realm)
		}
		w.Header().Set("Cache-Control", "no-store")
		seeOther(w, returnTo)
		return
	}
	msg, code := "Sign-in failed. Check your user name and password.", http.StatusForbidden
	switch status {
	case http.StatusTooManyRequests:
		msg, code = "Too many failed sign-ins. Please wait a while and try again.", status
	case http.StatusServiceUnavailable:
		msg, code = "The sign-in service is unavailable. Please try again later.", status
	}
	if !user2ok(user) {
		user = ""
	}
	sleepUntil(r.Context(), start.Add(failFloor))
	h.form(w, r, code, realm, returnTo, user, msg)
}

func user2ok(u string) bool { return authn.Printable(u, 256) }

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// Logout revokes the session of the cookie and clears it (POST), then
// redirects to return_to if safe, else to the login page. With
// everywhere=1 (and the form token of the account or sign-out page) it
// ends every current session of the cookie's user in the realm. GET shows
// both buttons. Served through Paths, a cross-origin POST is refused
// before it gets here (SameOrigin); the session cookie is SameSite=Lax too.
func (h *Handler) Logout(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		// Without a safe return_to the form sends none, so that POST
		// falls back to the login page rather than to "/".
		rt, _ := queryValue(r.URL.RawQuery, "return_to")
		if !h.safeReturn(rt) {
			rt = ""
		}
		realm := h.realm(r)
		d := pageData{Title: "Sign out", Logout: true, Realm: realm, ReturnTo: rt, CSRF: h.logoutCSRF(w, r)}
		if d.SignedInAs = h.signedInAs(r, realm); d.SignedInAs != "" {
			d.AccountURL = h.accountURL(realm)
		}
		h.render(w, http.StatusOK, d)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	_ = r.ParseForm()
	realm := r.PostForm.Get("realm")
	if realm == "" {
		realm = h.realm(r)
	}
	if r.PostForm.Get("everywhere") != "" {
		if h.logoutEverywhere(w, r, realm) {
			return
		}
	} else if tok, ok := h.token(r); ok && authn.Printable(realm, 256) {
		ok, err := h.revoke(r.Context(), realm, tok, h.clientAddr(r))
		if err != nil {
			h.log.Error("token store failed", "op", "logout", "realm", realm, "err", err)
			h.render(w, http.StatusServiceUnavailable, pageData{Title: "Sign out", Error: "The sign-out service is unavailable. Please try again later."})
			return
		}
		h.log.Info("web logout", "realm", realm, "token", short(tok), "known", ok)
	}
	http.SetCookie(w, &http.Cookie{Name: h.cfg.CookieName, Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode})
	target := r.PostForm.Get("return_to")
	if !h.safeReturn(target) {
		target = h.cfg.LoginPath
		if authn.Printable(realm, 256) {
			target += "?realm=" + url.QueryEscape(realm)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	seeOther(w, target)
}

// revoke uses Options.Revoke (the protocol server's, which audits), else
// the token service directly.
func (h *Handler) revoke(ctx context.Context, realm, tok, client string) (bool, error) {
	if h.o.Revoke != nil {
		return h.o.Revoke(ctx, realm, tok, client)
	}
	return h.o.Tokens.Revoke(ctx, realm, tok)
}
