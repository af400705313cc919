package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/tokens"
)

var (
	noStore = []string{"no-store"}
	empty   = []string{}
)

// ForwardAuth answers a reverse proxy's subrequest: 200 with identity
// headers X-SKS-User, X-SKS-Realm, X-SKS-Roles (comma-separated) and
// X-SKS-Source when the original request carries a current session token of
// the realm (cookie or bearer), else 401 with the login page to redirect to
// in X-SKS-Login (see LoginHeader). A store outage is 503, so the proxy
// fails closed without logging users out.
func (h *Handler) ForwardAuth(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr["Cache-Control"] = noStore
	realm := h.realm(r)
	tok, ok := h.token(r)
	if !ok || !authn.Printable(realm, 256) {
		hdr.Set(LoginHeader, h.loginLocation(r, realm))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rec, st, err := h.o.Tokens.Validate(r.Context(), realm, tok)
	if err != nil {
		h.log.Error("token store failed", "op", "forward_auth", "realm", realm, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if st != tokens.Current {
		hdr.Set(LoginHeader, h.loginLocation(r, realm))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	hdr["X-Sks-User"] = []string{rec.User}
	hdr["X-Sks-Realm"] = []string{realm}
	hdr["X-Sks-Source"] = []string{source(rec)}
	if len(rec.Roles) > 0 {
		hdr["X-Sks-Roles"] = []string{roles(rec.Roles)}
	} else {
		hdr["X-Sks-Roles"] = empty
	}
	w.WriteHeader(http.StatusOK)
}

// source is the second line of the identity text.
func source(rec tokens.Record) string {
	rest := strings.TrimPrefix(rec.Identity, rec.User+"\n")
	s, _, _ := strings.Cut(rest, "\n")
	return s
}

// roles joins role names, leaving out any that could not sit in a header or
// be split back (commas, control characters).
func roles(rs []string) string {
	if len(rs) == 1 && authn.Printable(rs[0], 256) && !strings.Contains(rs[0], ",") {
		return rs[0]
	}
	var b strings.Builder
	for _, r := range rs {
		if !authn.Printable(r, 256) || strings.Contains(r, ",") {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r)
	}
	return b.String()
}

func unescape(s string) (string, error) { return url.QueryUnescape(s) }
