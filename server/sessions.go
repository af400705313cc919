package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/tokens"
)

// crossOrigin refuses state-changing admin requests that a browser sends
// from another site: loopback callers are admins without a credential, so
// a page open in a browser on the server's host could otherwise post to
// them. Clients that are not browsers send no Sec-Fetch-Site or Origin and
// pass.
var crossOrigin = http.NewCrossOriginProtection()

// SessionInfo is one session in the answer of /sessions. ID is the short
// hash of the token that audit lines and logs show, never the token.
type SessionInfo struct {
	ID      string    `json:"id"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires,omitzero"`
	Source  string    `json:"source"`
}

// SessionList is the answer of /sessions.
type SessionList struct {
	Realm    string        `json:"realm"`
	User     string        `json:"user"`
	Sessions []SessionInfo `json:"sessions"`
}

// RevokedSessions is the answer of /revoke_sessions.
type RevokedSessions struct {
	Realm   string `json:"realm"`
	User    string `json:"user"`
	Revoked int    `json:"revoked"`
}

func replyJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}

// adminUser checks the admin credential and the user parameter of an admin
// sessions request, answering the request itself when either fails.
func (s *Server) adminUser(q *request, op string) (who, user string, ok bool) {
	who, ok = s.isAdmin(q)
	if !ok {
		s.log.Warn(op+" refused: no admin credential", "realm", q.realm, "client", q.client)
		reply(q.w, http.StatusForbidden, "ERR: admin credential required\n")
		return "", "", false
	}
	if user, ok = q.need("user"); !ok {
		return "", "", false
	}
	if authn.ValidUser(user) != nil {
		reply(q.w, http.StatusBadRequest, "ERR: invalid user\n")
		return "", "", false
	}
	return who, user, true
}

// listSessions answers an admin's /sessions?realm=R&user=U with the user's
// current sessions as JSON, oldest first.
func (s *Server) listSessions(q *request) {
	_, user, ok := s.adminUser(q, "sessions")
	if !ok {
		return
	}
	ss, err := s.o.Tokens.Sessions(q.r.Context(), q.realm, user)
	if err != nil {
		s.storeError(q, "sessions", err)
		return
	}
	out := SessionList{Realm: q.realm, User: user, Sessions: make([]SessionInfo, len(ss))}
	for i, x := range ss {
		out.Sessions[i] = SessionInfo{ID: x.Hash.Short(), Issued: x.Record.Issued.UTC(), Expires: x.Record.Expires.UTC(), Source: x.Source()}
	}
	replyJSON(q.w, out)
}

// revokeSessions answers an admin's POST /revoke_sessions (realm, user):
// every current session of the user ends.
func (s *Server) revokeSessions(q *request) {
	if q.r.Method != http.MethodPost {
		q.w.Header().Set("Allow", "POST")
		reply(q.w, http.StatusMethodNotAllowed, "ERR: use POST\n")
		return
	}
	if err := crossOrigin.Check(q.r); err != nil {
		s.log.Warn("revoke_sessions refused: cross-origin browser request", "realm", q.realm, "client", q.client)
		reply(q.w, http.StatusForbidden, "ERR: cross-origin request refused\n")
		return
	}
	who, user, ok := s.adminUser(q, "revoke_sessions")
	if !ok {
		return
	}
	n, status, body := s.endSessions(q.r.Context(), q.realm, user, q.client, "admin="+who, "")
	if status != http.StatusOK {
		reply(q.w, status, body)
		return
	}
	replyJSON(q.w, RevokedSessions{Realm: q.realm, User: user, Revoked: n})
}

// revokeAll answers /revoke_all?realm=R&token=T: a user signs out
// everywhere with one current token. The answer is "OK\n" and the number
// of sessions that ended; a token that is not current gets 403.
func (s *Server) revokeAll(q *request) {
	rec, ok := s.current(q)
	if !ok {
		return
	}
	tok, _ := q.p.get("token")
	n, status, body := s.endSessions(q.r.Context(), q.realm, rec.User, q.client, "self", tok)
	if status != http.StatusOK {
		reply(q.w, status, body)
		return
	}
	reply(q.w, http.StatusOK, "OK\n"+strconv.Itoa(n)+"\n")
}

// RevokeAll signs the owner of a current token out everywhere, as
// /revoke_all does, for other handlers (the web account page). It returns
// how many sessions ended and the status /revoke_all would answer: 200,
// 400 for a malformed realm or token, 403 for a token that is not current,
// 503 when the store or the audit log fails.
func (s *Server) RevokeAll(ctx context.Context, realm, token, client string) (n, status int) {
	if !authn.Printable(realm, 256) || token == "" || !authn.Printable(token, maxToken) {
		return 0, http.StatusBadRequest
	}
	rec, st, err := s.o.Tokens.Validate(ctx, realm, token)
	if err != nil {
		s.log.Error("token store failed", "op", "revoke_all", "realm", realm, "err", err)
		return 0, http.StatusServiceUnavailable
	}
	if st != tokens.Current {
		return 0, http.StatusForbidden
	}
	n, status, _ = s.endSessions(ctx, realm, rec.User, client, "self", token)
	return n, status
}

// endSessions revokes every current session of user and audits it: one
// revoke event per token, then a revoke_all event saying who asked. token
// is the caller's own token when a user asks. It returns how many ended,
// and the status and body to answer.
func (s *Server) endSessions(ctx context.Context, realm, user, client, by, token string) (int, int, string) {
	if err := s.reserveErr(ctx, "revoke_all"); err != nil {
		return 0, http.StatusServiceUnavailable, auditUnavailable
	}
	hs, err := s.o.Tokens.RevokeAll(ctx, realm, user)
	if err != nil {
		s.log.Error("token store failed", "op", "revoke_all", "realm", realm, "revoked", len(hs), "err", err)
		return 0, http.StatusServiceUnavailable, storeUnavailable
	}
	ids := make([]string, len(hs))
	for i, h := range hs {
		ids[i] = h.Short()
		if err := s.emit(ctx, realm, client, Event{Kind: "revoke", User: user, Token: ids[i], Detail: "revoke_all by=" + by}); err != nil {
			return 0, http.StatusServiceUnavailable, auditUnavailable
		}
	}
	e := Event{Kind: "revoke_all", User: user, Detail: "by=" + by + " sessions=" + strconv.Itoa(len(hs)) + " tokens=" + strings.Join(ids, ",")}
	if token != "" {
		e.Token = short(token)
	}
	if err := s.emit(ctx, realm, client, e); err != nil {
		return 0, http.StatusServiceUnavailable, auditUnavailable
	}
	s.log.Info("sessions revoked", "realm", realm, "user", user, "by", by, "sessions", len(hs), "client", client)
	return len(hs), http.StatusOK, ""
}
