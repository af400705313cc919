// Package server is sks's HTTP layer: the SessionKeyServer 1.5 protocol
// (see shared/SKS-PROTOCOL.md), answered byte for byte, plus sks's own
// endpoints mounted beside it.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/clientaddr"
	"github.com/sks-server/sks/httpcred"
	"github.com/sks-server/sks/realms"
	"github.com/sks-server/sks/tokens"
)

// Version is the protocol version answered by /version.
const Version = "1.5"

// AdminCheck reports whether a request carries an admin credential, and
// names it for the log. Checks must compare secrets in constant time.
type AdminCheck func(r *http.Request) (who string, ok bool)

// Options configures a Server.
type Options struct {
	Tokens *tokens.Service
	Realms *realms.Router
	Logger *slog.Logger
	// AllowLoopbackAdmin lets loopback callers use admin endpoints without a
	// credential (RCloud on the same host calls /stored_token so). It does
	// not apply while Clients trusts a proxy, nor to requests that carry
	// X-Forwarded-For or Forwarded.
	AllowLoopbackAdmin bool
	// Clients finds the client behind trusted proxies ([http]
	// trusted_proxies); nil trusts none.
	Clients *clientaddr.Resolver
	// Relays are, per realm ("*" for realms without an entry), the
	// addresses whose logins are limited per user only.
	Relays map[string][]netip.Prefix
	// AdminToken, if non-empty, is accepted as "Authorization: Bearer <it>".
	AdminToken string
	// AdminChecks are further admin credentials (client certificates, master
	// tokens, HMAC API keys).
	AdminChecks []AdminCheck
	// Mount serves extra paths (metrics, JWKS, minting) before the protocol.
	Mount map[string]http.Handler
	// MaxConcurrentLogins bounds logins in flight; LoginTimeout bounds each.
	MaxConcurrentLogins int
	LoginTimeout        time.Duration
	// MaxBodyBytes bounds POST form bodies.
	MaxBodyBytes int64
	// SessionJWT, if set, signs a short-lived JWT for a current session
	// (/jwt). sid is a short hash of the session token, never the token.
	SessionJWT func(sub, realm, source, sid string, roles []string) (string, time.Time, error)
	// Hooks observe events (metrics, audit, brute-force protection).
	Hooks Hooks
	// Unban, if set, serves the admin endpoint POST /unban: it lifts the
	// ban of user in realm (address empty) or of a client address (user
	// empty) and forgets its failures; found reports whether there was any.
	Unban func(ctx context.Context, realm, user, address string) (found bool, err error)
}

// Hooks lets other packages observe and gate the protocol without the
// server importing them. Every field is optional.
type Hooks struct {
	// BeforeLogin reserves a login attempt before any module is asked
	// (brute-force protection: attempts in flight count), or refuses it
	// and returns how long the client should wait. An error (the shared
	// state is unreachable) answers 503. user is the account's canonical
	// spelling as the module defines it (authn.Canonicalizer). relay
	// reports a caller that logs many users in from one address (a realm's
	// relays, or an admin credential): limit it per user only.
	BeforeLogin func(ctx context.Context, realm, user, client string, relay bool) (retryAfter time.Duration, refused bool, err error)
	// AfterLogin reports the result of a login attempt that BeforeLogin let
	// through, exactly once per such attempt, with the same realm, user,
	// client and relay: it settles the reservation.
	AfterLogin func(realm, user, client string, relay bool, module string, ok bool, err error, took time.Duration)
	// Event reports token and group events: issue, supersede, replace,
	// revoke, revoke_all, gen_key, create_group, mod_group, stored. It may return an
	// error to fail the request (an audit log that cannot be written).
	Event func(ctx context.Context, e Event) error
	// Reserve is called before every change that Event will report, before
	// anything changes: an error fails the request (503) with nothing
	// changed. A fail-closed audit log reserves room for its lines here, so
	// that no change is made without its line.
	Reserve func(ctx context.Context) error
	// Request reports each answered request for metrics.
	Request func(path string, status int, took time.Duration)
}

// Event is one auditable action.
type Event struct {
	Kind   string
	Realm  string
	User   string
	Source string
	Client string
	Token  string // short hash of the token, never the token
	Detail string
}

// Server answers the protocol.
type Server struct {
	o        Options
	log      *slog.Logger
	loginSem chan struct{}
	adminSum [32]byte
}

// New returns a Server. Tokens and Realms are required.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxConcurrentLogins <= 0 {
		o.MaxConcurrentLogins = 64
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = 10 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	s := &Server{o: o, log: o.Logger, loginSem: make(chan struct{}, o.MaxConcurrentLogins)}
	if o.Tokens.Policies == nil {
		o.Tokens.Policies = s.policy
	}
	if o.AdminToken != "" {
		s.adminSum = sha256.Sum256([]byte(o.AdminToken))
	}
	return s
}

var (
	textPlain = []string{"text/plain"}
	bufPool   = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

// reply writes a text/plain answer.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header()["Content-Type"] = textPlain
	w.WriteHeader(status)
	if body != "" {
		w.Write([]byte(body))
	}
}

// replyParts writes parts concatenated through a pooled buffer, so that the
// hot /valid answer costs no allocation for the body.
func replyParts(w http.ResponseWriter, status int, parts ...string) {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	for _, p := range parts {
		b = append(b, p...)
	}
	w.Header()["Content-Type"] = textPlain
	w.WriteHeader(status)
	w.Write(b)
	*bp = b
	bufPool.Put(bp)
}

type request struct {
	w      http.ResponseWriter
	r      *http.Request
	p      params
	realm  string
	client string
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.o.Hooks.Request == nil {
		s.serve(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.serve(sw, r)
	s.o.Hooks.Request(r.URL.Path, sw.status, time.Since(start))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if h, ok := s.o.Mount[r.URL.Path]; ok {
		h.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/version" && r.Method == http.MethodGet {
		reply(w, http.StatusOK, Version+"\n")
		return
	}
	// The parameters live in an array on the stack: a typical request has
	// fewer than six, so parsing them allocates nothing.
	var kv [6][2]string
	q := request{w: w, r: r}
	q.p.kv = kv[:0]
	if err := q.p.parse(r.URL.RawQuery); err != nil {
		reply(w, http.StatusBadRequest, paramError("malformed query", err))
		return
	}
	isForm := r.Method == http.MethodPost && isFormPost(r)
	if isForm {
		if err := s.parseBody(&q); err != nil {
			reply(w, http.StatusBadRequest, "ERR: "+err.Error()+"\n")
			return
		}
	}
	if r.URL.Path == "/unban" {
		var ok bool
		if q.client, ok = s.clientOf(&q); !ok {
			return
		}
		s.unban(&q, isForm)
		return
	}
	realm, ok := q.p.get("realm")
	if !ok {
		reply(w, http.StatusBadRequest, "ERR: missing realm\n")
		return
	}
	if r.Method != http.MethodGet && !isForm {
		reply(w, http.StatusNotFound, "Unknown path")
		return
	}
	if !authn.Printable(realm, 256) {
		reply(w, http.StatusBadRequest, "ERR: invalid realm\n")
		return
	}
	q.realm = realm
	if q.client, ok = s.clientOf(&q); !ok {
		return
	}
	switch r.URL.Path {
	case "/valid":
		s.valid(&q)
	case "/revoke":
		s.revoke(&q)
	case "/replace":
		s.replace(&q)
	case "/auth_token":
		s.authToken(&q, false)
	case "/pam_token":
		s.authToken(&q, true)
	case "/stored_token":
		s.storedToken(&q)
	case "/gen_key":
		s.genKey(&q)
	case "/get_key":
		s.getKey(&q)
	case "/create_group":
		s.createGroup(&q)
	case "/mod_group":
		s.modGroup(&q)
	case "/group_hash":
		s.groupHash(&q)
	case "/jwt":
		s.sessionJWT(&q)
	case "/revoke_all":
		s.revokeAll(&q)
	case "/sessions":
		s.listSessions(&q)
	case "/revoke_sessions":
		s.revokeSessions(&q)
	case "/session":
		s.sessionInfo(&q)
	default:
		reply(w, http.StatusNotFound, "")
	}
}

func isFormPost(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

func (s *Server) parseBody(q *request) error {
	b, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, s.o.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errors.New("request body too large")
		}
		return errors.New("cannot read request body")
	}
	if err := q.p.parse(string(b)); err != nil {
		if errors.Is(err, errTooMany) {
			return err
		}
		return errors.New("malformed form body: " + err.Error())
	}
	return nil
}

// paramError is the 400 answer for a query that params cannot parse.
func paramError(what string, err error) string {
	if errors.Is(err, errTooMany) {
		return "ERR: " + err.Error() + "\n"
	}
	return "ERR: " + what + ": " + err.Error() + "\n"
}

// maxToken bounds client-supplied tokens (ours are 64 characters; stored
// tokens from OAuth providers can be longer).
const maxToken = 1024

// token returns the token parameter. missing reports it absent or empty.
// A token with control characters or over maxToken is answered with 400
// here, and handled reports that.
func (q *request) token() (tok string, missing, handled bool) {
	tok, ok := q.p.get("token")
	if !ok || tok == "" {
		return "", true, false
	}
	if !authn.Printable(tok, maxToken) {
		reply(q.w, http.StatusBadRequest, "ERR: invalid token\n")
		return "", false, true
	}
	return tok, false, false
}

// knownToken returns the token parameter, or ok false when it is missing,
// empty, over maxToken or has control characters: no stored token looks so
// (/stored_token refuses them), so the caller answers as for an unknown
// token, which is what the original answered. RCloud reads the answers of
// /replace and /valid as data, so an error text must not stand there.
func (q *request) knownToken() (tok string, ok bool) {
	tok, ok = q.p.get("token")
	return tok, ok && authn.Printable(tok, maxToken)
}

// need returns a required parameter or answers 400 naming it.
func (q *request) need(name string) (string, bool) {
	v, ok := q.p.get(name)
	if !ok || v == "" {
		reply(q.w, http.StatusBadRequest, "ERR: missing "+name+"\n")
		return "", false
	}
	return v, true
}

func (s *Server) policy(realm string) tokens.Policy {
	p := s.o.Realms.Policy(realm)
	return tokens.Policy{Lifetime: p.Lifetime, IdleTimeout: p.IdleTimeout, MaxSessions: p.MaxSessions}
}

const (
	storeUnavailable = "ERR: token store unavailable\n"
	auditUnavailable = "ERR: audit log unavailable\n"
)

func (s *Server) storeError(q *request, op string, err error) {
	s.log.Error("token store failed", "op", op, "realm", q.realm, "err", err)
	reply(q.w, http.StatusServiceUnavailable, storeUnavailable)
}

func (s *Server) event(q *request, e Event) bool {
	if err := s.emit(q.r.Context(), q.realm, q.client, e); err != nil {
		reply(q.w, http.StatusServiceUnavailable, auditUnavailable)
		return false
	}
	return true
}

// reserve calls the Reserve hook before a state change; false means it
// failed and the request was answered 503.
func (s *Server) reserve(q *request, op string) bool {
	if err := s.reserveErr(q.r.Context(), op); err != nil {
		reply(q.w, http.StatusServiceUnavailable, auditUnavailable)
		return false
	}
	return true
}

func (s *Server) reserveErr(ctx context.Context, op string) error {
	if s.o.Hooks.Reserve == nil {
		return nil
	}
	if err := s.o.Hooks.Reserve(ctx); err != nil {
		s.log.Error("event could not be reserved; nothing changed, request failed", "op", op, "err", err)
		return err
	}
	return nil
}

// emit reports e to the Event hook; an error means the request must fail.
func (s *Server) emit(ctx context.Context, realm, client string, e Event) error {
	if s.o.Hooks.Event == nil {
		return nil
	}
	e.Realm, e.Client = realm, client
	if err := s.o.Hooks.Event(ctx, e); err != nil {
		s.log.Error("event not recorded; request failed", "kind", e.Kind, "err", err)
		return err
	}
	return nil
}

// emitSuperseded reports one supersede event per token that the new token
// by pushed out of the user's current tokens.
func (s *Server) emitSuperseded(ctx context.Context, realm, client, user, by string, superseded []tokens.Hash) error {
	for _, h := range superseded {
		if err := s.emit(ctx, realm, client, Event{Kind: "supersede", User: user, Token: h.Short(), Detail: "by=" + short(by)}); err != nil {
			return err
		}
	}
	return nil
}

func short(tok string) string { return tokens.HashToken(tok).Short() }

// valid answers YES, SUPERCEDED or NO. A missing or malformed token is
// answered NO, as the protocol specifies.
func (s *Server) valid(q *request) {
	tok, ok := q.knownToken()
	if !ok {
		reply(q.w, http.StatusOK, "NO\n")
		return
	}
	rec, st, err := s.o.Tokens.Validate(q.r.Context(), q.realm, tok)
	if err != nil {
		s.storeError(q, "valid", err)
		return
	}
	switch st {
	case tokens.Current:
		replyParts(q.w, http.StatusOK, "YES\n", rec.Identity, "\n")
	case tokens.Superseded:
		replyParts(q.w, http.StatusOK, "SUPERCEDED\n", rec.Identity, "\n")
	default:
		reply(q.w, http.StatusOK, "NO\n")
	}
}

func (s *Server) revoke(q *request) {
	tok, ok := q.knownToken()
	if !ok {
		reply(q.w, http.StatusOK, "INVALID\n")
		return
	}
	if !s.reserve(q, "revoke") {
		return
	}
	ok, err := s.o.Tokens.Revoke(q.r.Context(), q.realm, tok)
	if err != nil {
		s.storeError(q, "revoke", err)
		return
	}
	if !ok {
		reply(q.w, http.StatusOK, "INVALID\n")
		return
	}
	if !s.event(q, Event{Kind: "revoke", Token: short(tok)}) {
		return
	}
	reply(q.w, http.StatusOK, "OK\n")
}

// Revoke forgets token as /revoke does, reserved and audited like every
// change (the web logout uses it); known is false for an unknown token.
func (s *Server) Revoke(ctx context.Context, realm, token, client string) (known bool, err error) {
	if err := s.reserveErr(ctx, "revoke"); err != nil {
		return false, err
	}
	known, err = s.o.Tokens.Revoke(ctx, realm, token)
	if err != nil || !known {
		return known, err
	}
	return true, s.emit(ctx, realm, client, Event{Kind: "revoke", Token: short(token), Detail: "logout"})
}

func (s *Server) replace(q *request) {
	tok, ok := q.knownToken()
	if !ok {
		reply(q.w, http.StatusForbidden, "")
		return
	}
	if !s.reserve(q, "replace") {
		return
	}
	next, rec, ok, err := s.o.Tokens.Replace(q.r.Context(), q.realm, tok, s.policy(q.realm))
	if err != nil {
		s.storeError(q, "replace", err)
		return
	}
	if !ok {
		reply(q.w, http.StatusForbidden, "")
		return
	}
	if !s.event(q, Event{Kind: "replace", User: rec.User, Token: short(next), Detail: "old=" + short(tok)}) {
		return
	}
	// "<new token>\n<identity>\n": the identity text ends in a newline and
	// one more follows, a trailing blank line as in /valid's answer.
	replyParts(q.w, http.StatusOK, next, "\n", rec.Identity, "\n")
}

// identityText builds "<user>\n<source>\n[name=value\n...]". Attribute lines
// with characters that could forge a line are left out.
func identityText(user, source string, attrs []authn.Attr) string {
	var b strings.Builder
	b.WriteString(user)
	b.WriteByte('\n')
	b.WriteString(source)
	b.WriteByte('\n')
	for _, a := range attrs {
		if !authn.Printable(a.Name, 64) || !authn.Printable(a.Value, 1024) || strings.ContainsRune(a.Name, '=') {
			continue
		}
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(a.Value)
		b.WriteByte('\n')
	}
	return b.String()
}

// authToken logs a user in. legacy is /pam_token: always PAM, source "pam".
func (s *Server) authToken(q *request, legacy bool) {
	user, ok := q.need("user")
	if !ok {
		return
	}
	pwd, ok := q.need("pwd")
	if !ok {
		return
	}
	moduleName, _ := q.p.get("module")
	res := s.doLogin(q.r.Context(), q.realm, moduleName, user, pwd, q.client, legacy, s.credentialRelay(q))
	if res.retryAfter > 0 {
		q.w.Header().Set("Retry-After", strconv.Itoa(res.retryAfter))
	}
	if res.status == http.StatusOK {
		replyParts(q.w, http.StatusOK, res.token, "\n", res.identity)
		return
	}
	reply(q.w, res.status, res.body)
}

// loginResult is the outcome of doLogin: the status and body that
// /auth_token answers, and on success the token and its identity text.
type loginResult struct {
	status     int
	body       string
	token      string
	identity   string
	retryAfter int // seconds, for 429
}

// Login authenticates user with pwd in realm through module (empty: the
// realm's default) and issues a session token, exactly as /auth_token does:
// status is what /auth_token would answer (200, 400, 403, 429 or 503), and
// on 200 token and identity are set. client is the caller's address, for
// brute-force protection and the log. Other handlers (the login page) use it
// so that every login path shares one set of rules.
func (s *Server) Login(ctx context.Context, realm, module, user, pwd, client string) (token, identity string, status int) {
	if !authn.Printable(realm, 256) {
		return "", "", http.StatusBadRequest
	}
	if user == "" || pwd == "" {
		return "", "", http.StatusBadRequest
	}
	res := s.doLogin(ctx, realm, module, user, pwd, client, false, false)
	return res.token, res.identity, res.status
}

// doLogin logs in; relay is set for callers that presented an admin
// credential (the realm's relay addresses are checked here).
func (s *Server) doLogin(ctx context.Context, realm, moduleName, user, pwd, client string, legacy, relay bool) loginResult {
	if authn.ValidUser(user) != nil {
		return loginResult{status: http.StatusBadRequest, body: "ERR: invalid user\n"}
	}
	if strings.ContainsRune(pwd, 0) || len(pwd) > 4096 {
		return loginResult{status: http.StatusBadRequest, body: "ERR: invalid pwd\n"}
	}
	if legacy {
		moduleName = "pam"
	} else if moduleName != "" && !authn.Printable(moduleName, 64) {
		return loginResult{status: http.StatusBadRequest, body: "ERR: invalid module\n"}
	}
	relay = relay || s.relayAddr(realm, client)
	log := s.log.With("realm", realm, "user", user, "client", client)
	forbidden := loginResult{status: http.StatusForbidden}
	module, source, rerr := s.o.Realms.Resolve(realm, moduleName)
	if legacy {
		source = "pam"
	}
	// The account's canonical name keys the brute-force counts, so that
	// "alice@REALM" and "alice" share one (the guard folds case and
	// Unicode compatibility forms on top).
	account := user
	if c, ok := module.(authn.Canonicalizer); ok && rerr == nil {
		account = c.CanonicalUser(user)
	}
	if h := s.o.Hooks.BeforeLogin; h != nil {
		wait, refused, err := h(ctx, realm, account, client, relay)
		if err != nil {
			log.Warn("login refused: brute-force state unavailable", "err", err)
			return loginResult{status: http.StatusServiceUnavailable, body: "ERR: authentication backend unavailable\n"}
		}
		if refused {
			secs := int(wait.Round(time.Second) / time.Second)
			if secs < 1 {
				secs = 1
			}
			return loginResult{status: http.StatusTooManyRequests, body: "ERR: too many failed logins, retry later\n", retryAfter: secs}
		}
	}
	if rerr != nil {
		// A realm or module the configuration does not provide: the
		// administrator's to fix (or a client's typo), so WARN.
		log.Warn("login refused", "module", moduleName, "reason", rerr.Error())
		s.afterLogin(realm, client, relay, account, moduleName, false, nil, 0)
		return forbidden
	}
	start := time.Now()
	settled := false
	defer func() {
		if !settled { // the module panicked: give the reservation back
			s.afterLogin(realm, client, relay, account, strings.TrimPrefix(source, "auth/"), false, errors.New("login module panicked"), time.Since(start))
		}
	}()
	id, ok, err := s.login(ctx, module, user, pwd)
	took := time.Since(start)
	settled = true
	s.afterLogin(realm, client, relay, account, strings.TrimPrefix(source, "auth/"), ok, err, took)
	if err != nil {
		log.Warn("login backend failed", "source", source, "err", err)
		return loginResult{status: http.StatusServiceUnavailable, body: "ERR: authentication backend unavailable\n"}
	}
	if !ok {
		log.Info("login failed", "source", source)
		return forbidden
	}
	name := id.User
	if name == "" {
		name = user
	}
	if authn.ValidUser(name) != nil {
		log.Error("login module returned an unacceptable user name", "source", source)
		return forbidden
	}
	identity := identityText(name, source, id.Attrs)
	if err := s.reserveErr(ctx, "issue"); err != nil {
		return loginResult{status: http.StatusServiceUnavailable, body: auditUnavailable}
	}
	tok, superseded, err := s.o.Tokens.Issue(ctx, realm, name, identity, id.Roles, s.policy(realm))
	if err != nil {
		s.log.Error("token store failed", "op", "issue", "realm", realm, "err", err)
		return loginResult{status: http.StatusServiceUnavailable, body: storeUnavailable}
	}
	if err := s.emit(ctx, realm, client, Event{Kind: "issue", User: name, Source: source, Token: short(tok)}); err != nil {
		return loginResult{status: http.StatusServiceUnavailable, body: auditUnavailable}
	}
	if err := s.emitSuperseded(ctx, realm, client, name, tok, superseded); err != nil {
		return loginResult{status: http.StatusServiceUnavailable, body: auditUnavailable}
	}
	log.Info("login", "source", source, "token", short(tok))
	return loginResult{status: http.StatusOK, token: tok, identity: identity}
}

func (s *Server) afterLogin(realm, client string, relay bool, user, module string, ok bool, err error, took time.Duration) {
	if h := s.o.Hooks.AfterLogin; h != nil {
		h(realm, user, client, relay, module, ok, err, took)
	}
}

// login runs one module login bounded by the login semaphore and timeout.
func (s *Server) login(ctx context.Context, m authn.Module, user, pwd string) (authn.Identity, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.LoginTimeout)
	defer cancel()
	select {
	case s.loginSem <- struct{}{}:
		defer func() { <-s.loginSem }()
	case <-ctx.Done():
		return authn.Identity{}, false, errors.Join(errors.New("too many logins in flight"), authn.ErrUnavailable)
	}
	return m.Login(ctx, user, pwd)
}

// isAdmin reports whether the caller may use admin endpoints: an admin
// credential, or (with AllowLoopbackAdmin) a local caller.
func (s *Server) isAdmin(q *request) (string, bool) {
	if who, ok := s.adminCredential(q); ok {
		return who, true
	}
	if s.o.AllowLoopbackAdmin && s.o.Clients.LocalCaller(q.r) {
		return "loopback", true
	}
	return "", false
}

// adminCredential reports whether the request presents an admin
// credential (admin token, master token, HMAC API key, client certificate).
func (s *Server) adminCredential(q *request) (string, bool) {
	if s.o.AdminToken != "" {
		if tok, ok := httpcred.Bearer(q.r); ok {
			sum := sha256.Sum256([]byte(tok))
			if subtle.ConstantTimeCompare(sum[:], s.adminSum[:]) == 1 {
				return "admin-token", true
			}
		}
	}
	for _, check := range s.o.AdminChecks {
		if who, ok := check(q.r); ok {
			return who, true
		}
	}
	return "", false
}

// storedToken registers a caller-chosen token. The original asked no
// credential; here the caller must be on loopback or present an admin
// credential.
func (s *Server) storedToken(q *request) {
	who, ok := s.isAdmin(q)
	if !ok {
		s.log.Warn("stored_token refused: no admin credential", "realm", q.realm, "client", q.client)
		reply(q.w, http.StatusForbidden, "ERR: admin credential required\n")
		return
	}
	user, ok := q.need("user")
	if !ok {
		return
	}
	tok, missing, handled := q.token()
	if handled {
		return
	}
	if missing {
		reply(q.w, http.StatusBadRequest, "ERR: missing token\n")
		return
	}
	if authn.ValidUser(user) != nil {
		reply(q.w, http.StatusBadRequest, "ERR: invalid user\n")
		return
	}
	identity := user + "\nstored\n"
	if !s.reserve(q, "stored") {
		return
	}
	superseded, err := s.o.Tokens.Put(q.r.Context(), q.realm, tok, user, identity, s.policy(q.realm))
	if err != nil {
		s.storeError(q, "stored", err)
		return
	}
	if !s.event(q, Event{Kind: "stored", User: user, Source: "stored", Token: short(tok), Detail: "by=" + who}) {
		return
	}
	if err := s.emitSuperseded(q.r.Context(), q.realm, q.client, user, tok, superseded); err != nil {
		reply(q.w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	replyParts(q.w, http.StatusOK, tok, "\n", identity)
}

// unban lifts a brute-force ban: POST /unban with realm and user, or with
// address. Admin callers only; audited.
func (s *Server) unban(q *request, isForm bool) {
	if s.o.Unban == nil {
		reply(q.w, http.StatusNotFound, "ERR: brute-force protection is off ([limits])\n")
		return
	}
	if q.r.Method != http.MethodPost || !isForm {
		q.w.Header().Set("Allow", http.MethodPost)
		reply(q.w, http.StatusMethodNotAllowed, "ERR: unban takes a form POST\n")
		return
	}
	who, ok := s.isAdmin(q)
	if !ok {
		s.log.Warn("unban refused: no admin credential", "client", q.client)
		reply(q.w, http.StatusForbidden, "ERR: admin credential required\n")
		return
	}
	realm, _ := q.p.get("realm")
	user, hasUser := q.p.get("user")
	addr, hasAddr := q.p.get("address")
	var ev Event
	switch {
	case hasUser && hasAddr:
		reply(q.w, http.StatusBadRequest, "ERR: give user or address, not both\n")
		return
	case hasUser:
		if !authn.Printable(realm, 256) {
			reply(q.w, http.StatusBadRequest, "ERR: missing or invalid realm\n")
			return
		}
		if authn.ValidUser(user) != nil {
			reply(q.w, http.StatusBadRequest, "ERR: invalid user\n")
			return
		}
		// The ban is keyed on the account as the realm's default module
		// spells it (a Kerberos principal without the default realm).
		if m, _, err := s.o.Realms.Resolve(realm, ""); err == nil {
			if c, ok := m.(authn.Canonicalizer); ok {
				user = c.CanonicalUser(user)
			}
		}
		ev = Event{Kind: "unban", Realm: realm, User: user, Detail: "by=" + who}
	case hasAddr:
		a, err := netip.ParseAddr(addr)
		if err != nil {
			reply(q.w, http.StatusBadRequest, "ERR: invalid address\n")
			return
		}
		addr = a.Unmap().String()
		ev = Event{Kind: "unban", Realm: realm, Detail: "address=" + addr + " by=" + who}
	default:
		reply(q.w, http.StatusBadRequest, "ERR: missing user or address\n")
		return
	}
	if !s.reserve(q, "unban") {
		return
	}
	found, err := s.o.Unban(q.r.Context(), realm, user, addr)
	if err != nil {
		s.log.Error("unban failed", "realm", realm, "user", user, "address", addr, "err", err)
		reply(q.w, http.StatusServiceUnavailable, "ERR: cannot lift the ban\n")
		return
	}
	if !found {
		ev.Detail += " found=false"
	}
	q.realm = realm
	if !s.event(q, ev) {
		return
	}
	s.log.Info("unban", "realm", realm, "user", user, "address", addr, "by", who, "found", found)
	if !found {
		reply(q.w, http.StatusOK, "NONE\n")
		return
	}
	reply(q.w, http.StatusOK, "OK\n")
}

// current returns the record of a current token or answers 403 with an
// empty body, as the original did for every request without a current
// token: a missing, empty, unknown, superseded or malformed one alike.
// RCloud reads the bodies of /get_key, /gen_key and /group_hash as data (a
// key it hex-decodes, a hash), so no error text may stand where data would.
func (s *Server) current(q *request) (tokens.Record, bool) {
	tok, ok := q.knownToken()
	if !ok {
		reply(q.w, http.StatusForbidden, "")
		return tokens.Record{}, false
	}
	rec, st, err := s.o.Tokens.Validate(q.r.Context(), q.realm, tok)
	if err != nil {
		s.storeError(q, "valid", err)
		return tokens.Record{}, false
	}
	if st != tokens.Current {
		reply(q.w, http.StatusForbidden, "")
		return tokens.Record{}, false
	}
	return rec, true
}

func (s *Server) genKey(q *request) {
	rec, ok := s.current(q)
	if !ok {
		return
	}
	key := make([]byte, 64)
	rand.Read(key)
	if !s.reserve(q, "gen_key") {
		return
	}
	if err := s.o.Tokens.Store().PutKey(q.r.Context(), rec.Identity, key); err != nil {
		s.storeError(q, "gen_key", err)
		return
	}
	if !s.event(q, Event{Kind: "gen_key", User: rec.User}) {
		return
	}
	reply(q.w, http.StatusOK, hex.EncodeToString(key))
}

func (s *Server) getKey(q *request) {
	rec, ok := s.current(q)
	if !ok {
		return
	}
	key, err := s.o.Tokens.Store().GetKey(q.r.Context(), rec.Identity)
	if errors.Is(err, tokens.ErrNotFound) {
		reply(q.w, http.StatusOK, "")
		return
	}
	if err != nil {
		s.storeError(q, "get_key", err)
		return
	}
	reply(q.w, http.StatusOK, hex.EncodeToString(key))
}

func (s *Server) group(q *request) (string, bool) {
	g, ok := q.need("group")
	if !ok {
		return "", false
	}
	if !authn.Printable(g, 256) {
		reply(q.w, http.StatusBadRequest, "ERR: invalid group\n")
		return "", false
	}
	return g, true
}

func (s *Server) createGroup(q *request) {
	g, ok := s.group(q)
	if !ok {
		return
	}
	rec, ok := s.current(q)
	if !ok {
		return
	}
	key := make([]byte, 32)
	rand.Read(key)
	if !s.reserve(q, "create_group") {
		return
	}
	err := s.o.Tokens.Store().CreateGroup(q.r.Context(), q.realm, g, rec.User, []byte(hex.EncodeToString(key)))
	if errors.Is(err, tokens.ErrGroupExists) {
		reply(q.w, http.StatusForbidden, "ERROR: group exists")
		return
	}
	if err != nil {
		s.storeError(q, "create_group", err)
		return
	}
	if !s.event(q, Event{Kind: "create_group", User: rec.User, Detail: "group=" + g}) {
		return
	}
	reply(q.w, http.StatusOK, "OK\n")
}

// userList splits a comma-separated list, skipping empty names. A name with
// control characters makes the whole request invalid.
func userList(v string) ([]string, bool) {
	var out []string
	for _, u := range strings.Split(v, ",") {
		if u == "" {
			continue
		}
		if authn.ValidUser(u) != nil {
			return nil, false
		}
		out = append(out, u)
	}
	return out, true
}

// groupCaller checks the group parameter, the caller's current token and
// the caller's role in the group (admin, or with members too, member),
// answering the request itself when one fails.
//
// A missing or malformed group is answered 403 with an empty body, as
// for a group the caller has no role in (the protocol's "else 403"):
// RCloud reads /group_hash's body as the hash.
func (s *Server) groupCaller(q *request, op string, membersToo bool) (string, tokens.Record, bool) {
	g, ok := q.p.get("group")
	if !ok || !authn.Printable(g, 256) {
		reply(q.w, http.StatusForbidden, "")
		return "", tokens.Record{}, false
	}
	rec, ok := s.current(q)
	if !ok {
		return "", tokens.Record{}, false
	}
	admin, member, err := s.o.Tokens.Store().GroupRole(q.r.Context(), q.realm, g, rec.User)
	if err != nil {
		s.storeError(q, op, err)
		return "", tokens.Record{}, false
	}
	if !admin && !(membersToo && member) {
		reply(q.w, http.StatusForbidden, "")
		return "", tokens.Record{}, false
	}
	return g, rec, true
}

func (s *Server) modGroup(q *request) {
	g, rec, ok := s.groupCaller(q, "mod_group", false)
	if !ok {
		return
	}
	var lists [3][]string
	for i, name := range []string{"add_members", "add_admins", "remove"} {
		v, _ := q.p.get(name)
		if lists[i], ok = userList(v); !ok {
			reply(q.w, http.StatusBadRequest, "ERR: invalid user in "+name+"\n")
			return
		}
	}
	answer := "OK\n"
	remove := lists[2][:0:0]
	for _, u := range lists[2] {
		if u == rec.User {
			answer = "WARN: self-removal ignored\n"
			continue
		}
		remove = append(remove, u)
	}
	if !s.reserve(q, "mod_group") {
		return
	}
	if err := s.o.Tokens.Store().ModGroup(q.r.Context(), q.realm, g, lists[0], lists[1], remove); err != nil {
		s.storeError(q, "mod_group", err)
		return
	}
	detail := "group=" + g + " add_members=" + strings.Join(lists[0], ",") + " add_admins=" + strings.Join(lists[1], ",") + " remove=" + strings.Join(remove, ",")
	if !s.event(q, Event{Kind: "mod_group", User: rec.User, Detail: detail}) {
		return
	}
	reply(q.w, http.StatusOK, answer)
}

func (s *Server) groupHash(q *request) {
	g, _, ok := s.groupCaller(q, "group_hash", true)
	if !ok {
		return
	}
	key, err := s.o.Tokens.Store().GroupKey(q.r.Context(), g)
	if err != nil {
		s.storeError(q, "group_hash", err)
		return
	}
	salt, _ := q.p.get("salt")
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write([]byte{'\n'})
	h.Write(key)
	reply(q.w, http.StatusOK, hex.EncodeToString(h.Sum(nil))+"\n")
}

// statusWriter records the status for the Request hook.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sessionJWT exchanges a current session token for a signed JWT. A
// superseded, revoked or expired session gets 403.
func (s *Server) sessionJWT(q *request) {
	if s.o.SessionJWT == nil {
		reply(q.w, http.StatusNotFound, "ERR: signed tokens are not configured ([jwt] signing_key)\n")
		return
	}
	rec, ok := s.current(q)
	if !ok {
		return
	}
	tok, _ := q.p.get("token")
	source, _, _ := strings.Cut(strings.TrimPrefix(rec.Identity, rec.User+"\n"), "\n")
	jwt, _, err := s.o.SessionJWT(rec.User, q.realm, source, short(tok), rec.Roles)
	if err != nil {
		s.log.Error("cannot sign session jwt", "realm", q.realm, "err", err)
		reply(q.w, http.StatusServiceUnavailable, "ERR: cannot sign token\n")
		return
	}
	replyParts(q.w, http.StatusOK, jwt, "\n")
}
