// Package web serves sks to browsers and reverse proxies: a forward-auth
// endpoint (nginx auth_request, Caddy forward_auth, Traefik ForwardAuth), a
// login page that sets a session cookie, an account page, and logout (of
// one session or everywhere).
//
// It does not import package server: cmd hands it the token service and a
// Login function, so that every login path shares the protocol's rules
// (brute-force protection, audit events, timeouts).
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/sks-server/sks/clientaddr"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/httpcred"
	"github.com/sks-server/sks/tokens"
)

// LoginFunc logs user in with pwd in realm (the realm's default module) and
// returns a new session token. status is what /auth_token would answer:
// 200 on success, 400 or 403 for refused credentials, 429 when throttled,
// 503 when a backend or the store is down. client is the caller's address.
type LoginFunc func(ctx context.Context, realm, user, pwd, client string) (token string, status int)

// Options configures a Handler.
type Options struct {
	// Tokens validates and revokes sessions. Required.
	Tokens *tokens.Service
	// Login issues sessions for the login page. Required.
	Login LoginFunc
	// Config is the [web] section.
	Config conf.Web
	// Logger receives events; tokens appear only as short hashes.
	Logger *slog.Logger
	// Key signs CSRF tokens; empty makes a random per-process key.
	Key []byte
	// Clients finds the client behind trusted proxies and says which
	// peers are trusted to send X-SKS-Realm; nil trusts none.
	Clients *clientaddr.Resolver
	// RevokeAll ends every session of a token's user ("sign out
	// everywhere"); cmd passes the protocol server's, which audits it.
	// Nil uses Tokens directly, unaudited.
	RevokeAll RevokeAllFunc

	// Revoke ends one session (sign out) and reports whether the token was
	// known; cmd passes the protocol server's, which reserves and writes
	// its audit line (a fail-closed audit log refuses the logout rather
	// than revoke unrecorded). Nil revokes through Tokens, unaudited.
	Revoke func(ctx context.Context, realm, token, client string) (known bool, err error)
}

// Handler serves the web endpoints.
type Handler struct {
	o       Options
	cfg     conf.Web
	log     *slog.Logger
	key     []byte
	allowed map[string]bool
	// cop refuses cross-origin POSTs (CSRF) before any state changes.
	cop *http.CrossOriginProtection
}

// New checks o and returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Tokens == nil || o.Login == nil {
		return nil, errors.New("web: Tokens and Login are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	if cfg.CookieName == "" {
		cfg.CookieName = "sks_token"
	}
	if cfg.LoginPath == "" {
		cfg.LoginPath = "/login"
	}
	h := &Handler{o: o, cfg: cfg, log: o.Logger.With("component", "web"), key: o.Key, allowed: map[string]bool{}}
	if len(h.key) == 0 {
		h.key = make([]byte, 32)
		rand.Read(h.key)
	}
	for _, host := range cfg.AllowedReturnHosts {
		h.allowed[strings.ToLower(host)] = true
	}
	h.cop = http.NewCrossOriginProtection()
	for _, o := range cfg.TrustedOrigins {
		if err := h.cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("web: trusted_origins: %w", err)
		}
	}
	h.cop.SetDenyHandler(http.HandlerFunc(h.crossOrigin))
	return h, nil
}

// crossOrigin answers a state-changing request that a browser sent from
// another origin (CSRF): nothing has been done.
func (h *Handler) crossOrigin(w http.ResponseWriter, r *http.Request) {
	h.log.Info("cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"),
		"sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "client", h.clientAddr(r))
	h.render(w, http.StatusForbidden, pageData{Title: "Refused", Error: "This request came from another site and was refused."})
}

// Paths maps each served path to its handler, for server.Options.Mount.
// Every handler that changes state on POST is wrapped in SameOrigin.
func (h *Handler) Paths() map[string]http.Handler {
	return map[string]http.Handler{
		"/forward_auth": http.HandlerFunc(h.ForwardAuth),
		h.cfg.LoginPath: h.SameOrigin(http.HandlerFunc(h.LoginPage)),
		logoutPath:      h.SameOrigin(http.HandlerFunc(h.Logout)),
		AccountPath:     http.HandlerFunc(h.Account),
	}
}

// SameOrigin refuses (403) unsafe requests (POST and the like) that a
// browser sent from another origin, using Sec-Fetch-Site or else Origin
// against Host (http.CrossOriginProtection); [web] trusted_origins are let
// through. GET, HEAD and OPTIONS always pass, so they must not change state.
func (h *Handler) SameOrigin(next http.Handler) http.Handler { return h.cop.Handler(next) }

// realm returns the realm of r: the realm parameter, else the X-SKS-Realm
// header if a trusted proxy sent it ([http] trusted_proxies; a client could
// send it too), else the configured default.
func (h *Handler) realm(r *http.Request) string {
	if v, ok := queryValue(r.URL.RawQuery, "realm"); ok && v != "" {
		return v
	}
	if v := r.Header.Get("X-Sks-Realm"); v != "" && h.o.Clients.TrustedPeer(r) {
		return v
	}
	return h.cfg.DefaultRealm
}

// queryValue finds one query parameter without building a url.Values.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, ok := strings.Cut(part, "=")
		if !ok || k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := unescape(v)
			if err != nil {
				return "", false
			}
			v = u
		}
		return v, true
	}
	return "", false
}

// token returns the session token of r: the cookie, else a bearer header.
func (h *Handler) token(r *http.Request) (string, bool) {
	t, ok := httpcred.Token(r, h.cfg.CookieName)
	return t, ok && okToken(t)
}

func okToken(t string) bool {
	if len(t) > 1024 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x21 || t[i] > 0x7e {
			return false
		}
	}
	return true
}

func short(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:6])
}

// clientAddr is the client's address, behind trusted proxies too.
func (h *Handler) clientAddr(r *http.Request) string { return h.o.Clients.Client(r) }
