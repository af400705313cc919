// Package tokens issues, supersedes, validates, replaces, revokes and expires
// session tokens, and defines the Store that persists them.
//
// A token is 256 bits from crypto/rand written as 64 lowercase hex
// characters. Only its SHA-256 is stored.
package tokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// Status is the answer of Validate.
type Status int

// The three answers of /valid.
const (
	Invalid Status = iota
	Current
	Superseded
)

// String returns the status as the protocol spells it.
func (s Status) String() string {
	switch s {
	case Current:
		return "YES"
	case Superseded:
		return "SUPERCEDED"
	}
	return "NO"
}

// Policy is the per-realm lifetime policy of tokens.
type Policy struct {
	// Lifetime is the absolute lifetime of a token; zero means unlimited.
	Lifetime time.Duration
	// IdleTimeout ends a token not validated for this long; zero means none.
	IdleTimeout time.Duration
	// MaxSessions is how many tokens of one user stay current at once: a
	// new login supersedes the oldest beyond it. 0 or 1 is the protocol's
	// strict supersede (only the newest token is current).
	MaxSessions int
}

// Service implements the token rules on top of a Store.
type Service struct {
	store Store
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Policies returns the policy of a realm, for idle timeouts on Validate.
	// Nil means no idle timeouts.
	Policies func(realm string) Policy

	touching sync.Map      // hashes with a Touch in flight
	touchSem chan struct{} // bounds concurrent Touch writes
}

// NewService returns a Service over store.
func NewService(store Store) *Service {
	return &Service{store: store, Now: time.Now, touchSem: make(chan struct{}, 16)}
}

// Store returns the underlying store.
func (s *Service) Store() Store { return s.store }

// TokenLen is the length of an issued token in characters.
const TokenLen = 64

// NewToken returns a fresh random token and its hash.
func NewToken() (string, Hash) {
	var b [32]byte
	// crypto/rand.Read never fails on Linux (Go 1.24+ panics instead of
	// returning an error), so there is no error to handle.
	rand.Read(b[:])
	t := hex.EncodeToString(b[:])
	return t, HashToken(t)
}

// expiry is when a token used at now expires: the earlier of its absolute
// end (issued + Lifetime) and now + IdleTimeout. Idle timeouts live in the
// record's expiry, so the store's TTL removes idle tokens too.
func expiry(issued, now time.Time, p Policy) time.Time {
	var end time.Time
	if p.Lifetime > 0 {
		end = issued.Add(p.Lifetime)
	}
	if p.IdleTimeout > 0 {
		if idle := now.Add(p.IdleTimeout); end.IsZero() || idle.Before(end) {
			end = idle
		}
	}
	return end
}

// Issue creates a new token for identity text id of user in realm and makes
// it the user's newest current token, superseding the oldest beyond
// p.MaxSessions, whose hashes it returns. It returns only after the token
// is durable.
func (s *Service) Issue(ctx context.Context, realm, user, identity string, roles []string, p Policy) (token string, superseded []Hash, err error) {
	tok, h := NewToken()
	superseded, err = s.put(ctx, realm, h, user, identity, roles, p)
	return tok, superseded, err
}

// Put stores a token chosen by the caller (/stored_token) as the user's
// newest current token, and returns the hashes of the tokens it superseded.
func (s *Service) Put(ctx context.Context, realm, token, user, identity string, p Policy) ([]Hash, error) {
	return s.put(ctx, realm, HashToken(token), user, identity, nil, p)
}

func (s *Service) put(ctx context.Context, realm string, h Hash, user, identity string, roles []string, p Policy) ([]Hash, error) {
	now := s.Now()
	return s.store.Issue(ctx, realm, h, Record{
		User: user, Identity: identity, Roles: roles,
		Issued: now, Expires: expiry(now, now, p),
	}, p.MaxSessions)
}

// Validate reports whether token is current, superseded or invalid in realm.
// Store errors other than "not found" are returned, so that an outage is not
// mistaken for an invalid token.
func (s *Service) Validate(ctx context.Context, realm, token string) (Record, Status, error) {
	rec, err := s.store.Get(ctx, realm, HashToken(token))
	switch {
	case errors.Is(err, ErrNotFound):
		return Record{}, Invalid, nil
	case err != nil:
		return Record{}, Invalid, err
	case !rec.Expires.IsZero() && !s.Now().Before(rec.Expires):
		return Record{}, Invalid, nil
	}
	if s.Policies != nil {
		s.refresh(realm, token, rec, s.Policies(realm))
	}
	if rec.Superseded {
		return rec, Superseded, nil
	}
	return rec, Current, nil
}

// refresh extends an idle timeout after a successful validation. To keep
// /valid free of a disk write on every call, it writes only when the new
// expiry is more than an eighth of the idle timeout later than the stored
// one (so a session may end up to IdleTimeout/8 early), in the background,
// and at most once at a time per token.
func (s *Service) refresh(realm, token string, rec Record, p Policy) {
	if p.IdleTimeout <= 0 || rec.Expires.IsZero() {
		return
	}
	now := s.Now()
	next := expiry(rec.Issued, now, p)
	if next.Sub(rec.Expires) <= p.IdleTimeout/8 {
		return
	}
	h := HashToken(token)
	if _, busy := s.touching.LoadOrStore(h, struct{}{}); busy {
		return
	}
	select {
	case s.touchSem <- struct{}{}:
	default:
		s.touching.Delete(h) // too many writes in flight: a later /valid retries
		return
	}
	go func() {
		defer func() { <-s.touchSem; s.touching.Delete(h) }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.store.Touch(ctx, realm, h, next)
	}()
}

// Revoke forgets token; it reports false if the token was unknown.
func (s *Service) Revoke(ctx context.Context, realm, token string) (bool, error) {
	err := s.store.Revoke(ctx, realm, HashToken(token))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Replace swaps a current token for a new one with the same identity. It
// reports ok=false if the token is not current (unknown, expired or superseded).
func (s *Service) Replace(ctx context.Context, realm, token string, p Policy) (string, Record, bool, error) {
	// The store judges expiry by wall time; check by the service's clock first
	// so that both agree (they differ only under a test clock).
	if _, st, err := s.Validate(ctx, realm, token); err != nil || st != Current {
		return "", Record{}, false, err
	}
	tok, h := NewToken()
	now := s.Now()
	rec, err := s.store.Replace(ctx, realm, HashToken(token), h, now, expiry(now, now, p))
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotCurrent) {
		return "", Record{}, false, nil
	}
	if err != nil {
		return "", Record{}, false, err
	}
	return tok, rec, true, nil
}
