// Package httpcred reads the credentials an HTTP request carries: an
// "Authorization: Bearer" header, or a session cookie. The server, the
// signed-token code, the web handlers and the Go client's middleware all
// read them the same way through it.
package httpcred

import (
	"net/http"
	"strings"
)

// Bearer returns the credential of an "Authorization: Bearer <credential>"
// header (scheme case-insensitive, surrounding space trimmed); ok is false
// when there is none or it is empty.
func Bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

// Token returns a session token: the non-empty cookie named cookie, else a
// bearer credential.
func Token(r *http.Request, cookie string) (string, bool) {
	if c, err := r.Cookie(cookie); err == nil && c.Value != "" {
		return c.Value, true
	}
	return Bearer(r)
}
