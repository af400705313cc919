package server

import (
	"net/http"
	"time"

	"github.com/sks-server/sks/tokens"
)

// sessionInfo answers /session (an sks extension, for "sks whoami" and
// account pages): the /valid status line, then "issued=" and "expires="
// lines in RFC 3339 UTC ("expires=never" without an absolute end). It
// tells nothing /valid does not already grant the token's holder.
func (s *Server) sessionInfo(q *request) {
	tok, missing, handled := q.token()
	if handled {
		return
	}
	if missing {
		reply(q.w, http.StatusOK, "NO\n")
		return
	}
	rec, st, err := s.o.Tokens.Validate(q.r.Context(), q.realm, tok)
	if err != nil {
		s.storeError(q, "session", err)
		return
	}
	status := "YES\n"
	switch st {
	case tokens.Current:
	case tokens.Superseded:
		status = "SUPERCEDED\n"
	default:
		reply(q.w, http.StatusOK, "NO\n")
		return
	}
	expires := "never"
	if !rec.Expires.IsZero() {
		expires = rec.Expires.UTC().Format(time.RFC3339)
	}
	reply(q.w, http.StatusOK, status+"issued="+rec.Issued.UTC().Format(time.RFC3339)+"\nexpires="+expires+"\n")
}
