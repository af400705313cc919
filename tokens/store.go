package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// Hash is the SHA-256 of a token. Only hashes are stored, so a copy of the
// store holds no usable token. Tokens are 256-bit random values, so a plain
// fast hash is enough: there is nothing to brute-force.
type Hash [sha256.Size]byte

// HashToken hashes a token as the store keeps it.
func HashToken(token string) Hash { return sha256.Sum256([]byte(token)) }

// Short is a prefix of the hash, safe for logs and audit lines.
func (h Hash) Short() string { return hex.EncodeToString(h[:4]) }

// Record is what the store keeps for one token.
type Record struct {
	// User is the user name, the key of the "current tokens" rule.
	User string
	// Identity is the identity text answered by /valid and /replace:
	// "<user>\n<source>\n" followed by "name=value\n" lines.
	Identity string
	// Roles are kept for signed tokens; not part of the identity.
	Roles []string
	// Issued is when the token was issued.
	Issued time.Time
	// Expires is the absolute end of the session; zero means never.
	Expires time.Time
	// Superseded is set when newer tokens of the same user pushed this one
	// out of the user's current tokens.
	Superseded bool
}

// Errors a Store returns; callers test them with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrNotCurrent  = errors.New("token is not the current one")
	ErrGroupExists = errors.New("group exists")
	ErrClosed      = errors.New("store closed")
	// ErrUnavailable wraps failures to reach a networked store (Redis down,
	// timeout, failover in progress): the HTTP layer answers 503, never a
	// silent NO, because the token may well be valid.
	ErrUnavailable = errors.New("token store unavailable")
)

// Store persists tokens, per-identity keys and groups. Every method is safe
// for concurrent use, and every write is durable when it returns without error.
// Realms scope everything except group keys, which are global per group
// name, and per-identity keys, which are global per identity text.
type Store interface {
	// Issue makes h the newest of the user's current tokens in realm and
	// keeps at most sessions of them current (below 1 means 1, the
	// protocol's strict supersede): the oldest beyond that stay known but
	// become superseded, and their hashes are returned. One atomic step.
	Issue(ctx context.Context, realm string, h Hash, rec Record, sessions int) (superseded []Hash, err error)
	// Get returns the record of h, or ErrNotFound (also for expired tokens).
	Get(ctx context.Context, realm string, h Hash) (Record, error)
	// Revoke forgets h, and drops it from the user's current tokens.
	// ErrNotFound if h is unknown.
	Revoke(ctx context.Context, realm string, h Hash) error
	// Replace forgets old, which must be current (else ErrNotCurrent or
	// ErrNotFound), and makes next the newest current token with the same
	// identity. issued and expires are the new token's times. It returns the
	// new record.
	Replace(ctx context.Context, realm string, old, next Hash, issued, expires time.Time) (Record, error)

	// Touch moves the expiry of h to expires, for idle timeouts (the list of
	// the user's current tokens lives as long as its longest-lived token).
	// Unknown tokens are ignored.
	Touch(ctx context.Context, realm string, h Hash, expires time.Time) error

	// Sessions returns the user's current tokens in realm (the list Issue
	// keeps), oldest first, with their records; tokens that are gone or
	// expired are left out.
	Sessions(ctx context.Context, realm, user string) ([]Session, error)
	// RevokeAll forgets every current token of user in realm, as Revoke
	// does each, and returns their hashes. Superseded tokens are not on
	// the user's list and stay known (as SUPERCEDED).
	RevokeAll(ctx context.Context, realm, user string) ([]Hash, error)

	// GetKey returns the per-identity key, or ErrNotFound. Keys are global
	// per identity text, not per realm, as in the original: a key made
	// through a token of realm r is the key of that identity in every realm.
	GetKey(ctx context.Context, identity string) ([]byte, error)
	// PutKey stores the per-identity key, replacing any earlier one.
	PutKey(ctx context.Context, identity string, key []byte) error
	// ForEachKey calls fn for each per-identity key.
	ForEachKey(ctx context.Context, fn func(identity string, key []byte) error) error

	// CreateGroup creates group with admin as its admin in realm and key as
	// its global key; ErrGroupExists if the group exists in any realm.
	CreateGroup(ctx context.Context, realm, group, admin string, key []byte) error
	// GroupRole reports whether user is an admin or member of group in realm.
	GroupRole(ctx context.Context, realm, group, user string) (admin, member bool, err error)
	// ModGroup adds members and admins and removes names from both lists.
	ModGroup(ctx context.Context, realm, group string, addMembers, addAdmins, remove []string) error
	// GroupKey returns the global key of group, or ErrNotFound.
	GroupKey(ctx context.Context, group string) ([]byte, error)

	// Close releases the store; later calls return ErrClosed.
	Close() error
}
