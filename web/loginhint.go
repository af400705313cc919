package web

import (
	"net/http"
	"net/url"

	"github.com/sks-server/sks/authn"
)

// LoginHeader is the header in which a refusing /forward_auth names the
// login page to send the browser to, with the original request URI
// escaped as return_to. Proxies redirect to it as it is (nginx:
// auth_request_set and return 302; Caddy: {rp.header.X-SKS-Login}), so no
// proxy has to escape a URI itself, which nginx cannot do without extra
// modules: $request_uri pasted into a query loses everything after its
// first "&" and turns %2F into "/".
const LoginHeader = "X-Sks-Login"

// originalURIHeaders carry the URI the browser asked for, as the proxy
// received it: X-Original-URI (set in the nginx snippet), X-Forwarded-Uri
// (set by Caddy's forward_auth and Traefik's ForwardAuth).
var originalURIHeaders = []string{"X-Original-Uri", "X-Forwarded-Uri"}

// loginLocation is the login page for realm, with return_to the original
// URI of r when a proxy passed one and the login page would follow it
// (a path on this site; anything else is left out rather than passed on).
func (h *Handler) loginLocation(r *http.Request, realm string) string {
	q := url.Values{}
	if realm != "" && authn.Printable(realm, 256) {
		q.Set("realm", realm)
	}
	for _, name := range originalURIHeaders {
		if v := r.Header.Get(name); v != "" {
			if len(v) > 0 && v[0] == '/' && h.safeReturn(v) {
				q.Set("return_to", v)
			}
			break
		}
	}
	if len(q) == 0 {
		return h.cfg.LoginPath
	}
	// realm first, as people write it; url.Values.Encode would sort, which
	// happens to give the same order.
	return h.cfg.LoginPath + "?" + q.Encode()
}

// seeOther redirects to target, a return_to that safeReturn accepted (or
// the login page), exactly as given. Not http.Redirect: it cleans paths
// ("//" to "/", "/./" to "/"), and a return_to must come back as the
// browser first asked for it.
func seeOther(w http.ResponseWriter, target string) {
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}
