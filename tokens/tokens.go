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
}

// Service implements the token rules on top of a Store.
type Service struct {
	store Store
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// NewService returns a Service over store.
func NewService(store Store) *Service { return &Service{store: store, Now: time.Now} }

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

func (s *Service) expiry(now time.Time, p Policy) time.Time {
	if p.Lifetime <= 0 {
		return time.Time{}
	}
	return now.Add(p.Lifetime)
}

// Issue creates a new token for identity text id of user in realm and makes
// it the user's current token. It returns only after the token is durable.
func (s *Service) Issue(ctx context.Context, realm, user, identity string, roles []string, p Policy) (string, error) {
	tok, h := NewToken()
	return tok, s.put(ctx, realm, h, user, identity, roles, p)
}

// Put stores a token chosen by the caller (/stored_token) as the user's
// current token.
func (s *Service) Put(ctx context.Context, realm, token, user, identity string, p Policy) error {
	return s.put(ctx, realm, HashToken(token), user, identity, nil, p)
}

func (s *Service) put(ctx context.Context, realm string, h Hash, user, identity string, roles []string, p Policy) error {
	now := s.Now()
	return s.store.Issue(ctx, realm, h, Record{
		User: user, Identity: identity, Roles: roles,
		Issued: now, Expires: s.expiry(now, p),
	})
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
	case rec.Superseded:
		return rec, Superseded, nil
	}
	return rec, Current, nil
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
	rec, err := s.store.Replace(ctx, realm, HashToken(token), h, now, s.expiry(now, p))
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotCurrent) {
		return "", Record{}, false, nil
	}
	if err != nil {
		return "", Record{}, false, err
	}
	return tok, rec, true, nil
}
