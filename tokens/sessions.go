package tokens

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/redis/go-redis/v9"
)

// Session is one of a user's current sessions: the hash of its token (the
// token itself is never stored) and its record.
type Session struct {
	Hash   Hash
	Record Record
}

// Source is the second line of the session's identity text: "auth/<module>",
// "pam" or "stored".
func (s Session) Source() string { return SourceOf(s.Record) }

// SourceOf returns the source line of rec's identity text.
func SourceOf(rec Record) string {
	rest := strings.TrimPrefix(rec.Identity, rec.User+"\n")
	src, _, _ := strings.Cut(rest, "\n")
	return src
}

// Sessions returns the user's current sessions in realm, oldest first.
// Superseded tokens are not sessions (the protocol refuses them for
// /replace, /gen_key and the web), and expired ones are left out.
func (s *Service) Sessions(ctx context.Context, realm, user string) ([]Session, error) {
	all, err := s.store.Sessions(ctx, realm, user)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	out := all[:0]
	for _, x := range all {
		if x.Record.Superseded || (!x.Record.Expires.IsZero() && !now.Before(x.Record.Expires)) {
			continue
		}
		out = append(out, x)
	}
	return out, nil
}

// RevokeAll ends every current session of user in realm ("sign out
// everywhere") and returns the hashes of the tokens it revoked.
func (s *Service) RevokeAll(ctx context.Context, realm, user string) ([]Hash, error) {
	return s.store.RevokeAll(ctx, realm, user)
}

// Sessions implements Store: the records of the tokens on the user's list
// of current tokens, read in one transaction.
func (s *Badger) Sessions(ctx context.Context, realm, user string) ([]Session, error) {
	var out []Session
	err := s.view(func(txn *badger.Txn) error {
		hs, err := sessionsOf(txn, realm, user)
		if err != nil {
			return err
		}
		for _, h := range hs {
			rec, _, err := s.getRecord(txn, tokenKey(realm, h))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, Session{Hash: h, Record: rec})
		}
		return nil
	})
	return out, err
}

// RevokeAll implements Store: one transaction deletes every token on the
// user's list of current tokens and the list, through the same write path
// as Revoke, so the record cache drops them before it returns.
func (s *Badger) RevokeAll(ctx context.Context, realm, user string) ([]Hash, error) {
	var revoked []Hash
	err := s.writeTokens(ctx, realm, func(txn *badger.Txn) ([]Hash, error) {
		hs, err := s.liveSessions(txn, realm, user)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			if err := txn.Delete(tokenKey(realm, h)); err != nil {
				return nil, err
			}
		}
		revoked = hs
		return hs, txn.Delete(currentKey(realm, user))
	})
	if err != nil {
		return nil, err
	}
	return revoked, nil
}

// Sessions implements Store: the user's list, then the records it names
// (one MGET: all keys of a realm share a hash slot).
func (s *Redis) Sessions(ctx context.Context, realm, user string) ([]Session, error) {
	hs, err := s.sessionList(ctx, realm, user)
	if err != nil || len(hs) == 0 {
		return nil, err
	}
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	keys := make([]string, len(hs))
	for i, h := range hs {
		keys[i] = s.tokenKey(realm, h)
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, s.fail(ctx, "list sessions", err)
	}
	now := s.now()
	var out []Session
	for i, v := range vals {
		str, ok := v.(string)
		if !ok { // nil: the token is gone
			continue
		}
		rec, err := decodeRecord([]byte(str))
		if err != nil {
			return nil, fmt.Errorf("redis list sessions: token %s: %w", hs[i].Short(), err)
		}
		if !rec.Expires.IsZero() && !now.Before(rec.Expires) {
			continue
		}
		out = append(out, Session{Hash: hs[i], Record: rec})
	}
	return out, nil
}

// sessionList reads the user's list of current tokens.
func (s *Redis) sessionList(ctx context.Context, realm, user string) ([]Hash, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	v, err := s.c.Get(ctx, s.currentKey(realm, user)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, "list sessions", err)
	}
	hs, err := parseHexList(v)
	if err != nil || len(hs) == 0 {
		return nil, fmt.Errorf("redis list sessions of %q: %w", user, errCorrupt)
	}
	return hs, nil
}

// RevokeAll implements Store by revoking each token on the user's list
// with Revoke, the single revoke path (its script also rewrites the list),
// so that whatever Revoke does for other nodes holds here too. A token
// replaced while this runs puts its successor on the list: the list is read
// again until it names nothing left to revoke, a few rounds at most.
func (s *Redis) RevokeAll(ctx context.Context, realm, user string) ([]Hash, error) {
	var revoked []Hash
	for range 4 {
		hs, err := s.sessionList(ctx, realm, user)
		if err != nil {
			return revoked, err
		}
		if len(hs) == 0 {
			return revoked, nil
		}
		before := len(revoked)
		for _, h := range hs {
			switch err := s.Revoke(ctx, realm, h); {
			case errors.Is(err, ErrNotFound): // expired or revoked meanwhile
			case err != nil:
				return revoked, err
			default:
				revoked = append(revoked, h)
			}
		}
		if len(revoked) == before { // only tokens that are gone: nothing left to end
			return revoked, nil
		}
	}
	return revoked, nil
}
