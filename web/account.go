package web

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/tokens"
)

// AccountPath is the account page: who is signed in, the session's times,
// sign out and sign out everywhere. The login page sends the browser here
// when no return_to is given.
const AccountPath = "/account"

// logoutPath is where the sign-out forms post.
const logoutPath = "/logout"

// RevokeAllFunc signs the owner of a current token out everywhere and
// returns how many sessions ended, with the status /revoke_all would
// answer (200, 400, 403 for a token that is not current, 503).
type RevokeAllFunc func(ctx context.Context, realm, token, client string) (n, status int)

// accountURL is the account page of realm.
func (h *Handler) accountURL(realm string) string {
	if realm == "" {
		return AccountPath
	}
	return AccountPath + "?realm=" + url.QueryEscape(realm)
}

// loginURL is the login page of realm that comes back to returnTo.
func (h *Handler) loginURL(realm, returnTo string) string {
	v := url.Values{}
	if realm != "" {
		v.Set("realm", realm)
	}
	if returnTo != "" {
		v.Set("return_to", returnTo)
	}
	if len(v) == 0 {
		return h.cfg.LoginPath
	}
	return h.cfg.LoginPath + "?" + v.Encode()
}

// displayTime writes t for people, in UTC so that the page does not depend
// on the server's zone.
func displayTime(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") }

// logoutCSRF sets a fresh form token for the sign-out-everywhere form, with
// its cookie scoped to the sign-out path (the login form's cookie is scoped
// to the login path, so the two never meet), and returns the field value.
func (h *Handler) logoutCSRF(w http.ResponseWriter, r *http.Request) string {
	tok := h.newCSRF(time.Now())
	http.SetCookie(w, &http.Cookie{
		Name: h.csrfCookie(), Value: tok, Path: logoutPath, MaxAge: int(csrfTTL / time.Second),
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteStrictMode,
	})
	return tok
}

// Account serves the account page of the session in the cookie (GET). A
// request without a current session of the realm goes to the login page,
// which comes back here.
func (h *Handler) Account(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	realm := h.realm(r)
	if !authn.Printable(realm, 256) {
		h.render(w, http.StatusBadRequest, pageData{Title: "Your account", Error: "No realm given: add ?realm=NAME to the address."})
		return
	}
	tok, ok := h.token(r)
	if !ok {
		h.toLogin(w, r, realm)
		return
	}
	rec, st, err := h.o.Tokens.Validate(r.Context(), realm, tok)
	if err != nil {
		h.log.Error("token store failed", "op", "account", "realm", realm, "err", err)
		h.render(w, http.StatusServiceUnavailable, pageData{Title: "Your account", Error: "The sign-in service is unavailable. Please try again later."})
		return
	}
	if st != tokens.Current {
		h.toLogin(w, r, realm)
		return
	}
	d := pageData{Title: "Your account", Account: true, Realm: realm, User: rec.User, Source: tokens.SourceOf(rec),
		Issued: displayTime(rec.Issued), IssuedISO: rec.Issued.UTC().Format(time.RFC3339),
		SessionID: tokens.HashToken(tok).Short(), Sessions: 1}
	if !rec.Expires.IsZero() {
		d.Expires, d.ExpiresISO = displayTime(rec.Expires), rec.Expires.UTC().Format(time.RFC3339)
	}
	if ss, err := h.o.Tokens.Sessions(r.Context(), realm, rec.User); err == nil && len(ss) > 0 {
		d.Sessions = len(ss)
	}
	d.CSRF = h.logoutCSRF(w, r)
	h.render(w, http.StatusOK, d)
}

// toLogin sends the browser to the login page of realm, to come back to
// the account page.
func (h *Handler) toLogin(w http.ResponseWriter, r *http.Request, realm string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, h.loginURL(realm, h.accountURL(realm)), http.StatusSeeOther)
}

// signedInAs returns the user of the request's current session in realm,
// or "" (no session, or the store cannot say).
func (h *Handler) signedInAs(r *http.Request, realm string) string {
	tok, ok := h.token(r)
	if !ok {
		return ""
	}
	rec, st, err := h.o.Tokens.Validate(r.Context(), realm, tok)
	if err != nil || st != tokens.Current {
		return ""
	}
	return rec.User
}

// logoutEverywhere is POST /logout with everywhere=1: the form token must
// match (the account page and the sign-out page set it), then every
// current session of the cookie's user in realm ends. It reports whether
// it answered the request itself (an error page).
func (h *Handler) logoutEverywhere(w http.ResponseWriter, r *http.Request, realm string) bool {
	if !h.checkCSRF(r, r.PostForm.Get("csrf"), time.Now()) {
		h.log.Info("sign out everywhere refused: missing or bad csrf token", "realm", realm, "client", h.clientAddr(r))
		h.render(w, http.StatusForbidden, pageData{Title: "Sign out", Error: "This form has expired. Please go back, reload the page and try again.",
			AccountURL: h.accountURL(realm)})
		return true
	}
	tok, ok := h.token(r)
	if !ok || !authn.Printable(realm, 256) {
		return false // nothing to end: clear the cookie and go on
	}
	n, status := h.revokeAll(r.Context(), realm, tok, h.clientAddr(r))
	switch status {
	case http.StatusOK:
		h.log.Info("web sign out everywhere", "realm", realm, "token", short(tok), "sessions", n)
	case http.StatusServiceUnavailable:
		h.render(w, http.StatusServiceUnavailable, pageData{Title: "Sign out", Error: "The sign-out service is unavailable. Please try again later."})
		return true
	default:
		// Not a current session: there is nothing it may end; the cookie
		// is cleared all the same.
		h.log.Info("web sign out everywhere with a session that is not current", "realm", realm, "token", short(tok), "status", status)
	}
	// The form token is spent.
	http.SetCookie(w, &http.Cookie{Name: h.csrfCookie(), Path: logoutPath, MaxAge: -1,
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteStrictMode})
	return false
}

// revokeAll uses Options.RevokeAll (the protocol server's, which audits),
// else the token service directly.
func (h *Handler) revokeAll(ctx context.Context, realm, tok, client string) (int, int) {
	if h.o.RevokeAll != nil {
		return h.o.RevokeAll(ctx, realm, tok, client)
	}
	return h.revokeAllDirect(ctx, realm, tok)
}

// revokeAllDirect is revokeAll through the token service alone.
func (h *Handler) revokeAllDirect(ctx context.Context, realm, tok string) (int, int) {
	rec, st, err := h.o.Tokens.Validate(ctx, realm, tok)
	if err != nil {
		return 0, http.StatusServiceUnavailable
	}
	if st != tokens.Current {
		return 0, http.StatusForbidden
	}
	hs, err := h.o.Tokens.RevokeAll(ctx, realm, rec.User)
	if err != nil {
		h.log.Error("token store failed", "op", "logout_everywhere", "realm", realm, "err", err)
		return 0, http.StatusServiceUnavailable
	}
	return len(hs), http.StatusOK
}
