// Package static is a login module with users and bcrypt password hashes
// written in the configuration. It serves the built-in demo realm and small
// sites that have no directory.
package static

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sort"

	"golang.org/x/crypto/bcrypt"

	"github.com/sks-server/sks/authn"
)

// Config is a [modules.NAME] section with type = "static".
type Config struct {
	// Users maps user names to bcrypt hashes (make one with
	// `sks hash-password`).
	Users map[string]string `toml:"users"`
	// Roles maps user names to roles for signed tokens.
	Roles map[string][]string `toml:"roles"`
}

// Static checks passwords against bcrypt hashes in memory.
type Static struct {
	users map[string][]byte
	roles map[string][]string
	dummy []byte
}

var _ authn.Module = (*Static)(nil)

// Open checks that every hash is a bcrypt hash.
func Open(cfg Config, log *slog.Logger) (*Static, error) {
	s := &Static{users: map[string][]byte{}, roles: cfg.Roles}
	names := make([]string, 0, len(cfg.Users))
	for u := range cfg.Users {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		h := cfg.Users[u]
		if err := authn.ValidUser(u); err != nil {
			return nil, fmt.Errorf("static user %q: not an acceptable user name", u)
		}
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return nil, fmt.Errorf("static user %s: password is not a bcrypt hash (make one with: sks hash-password): %w", u, err)
		}
		s.users[u] = []byte(h)
	}
	// Unknown users are checked against a dummy hash so that a failure takes
	// as long whether the user exists or not.
	s.dummy, _ = bcrypt.GenerateFromPassword([]byte("dummy"), bcrypt.DefaultCost)
	return s, nil
}

// Login implements authn.Module.
func (s *Static) Login(ctx context.Context, user, password string) (authn.Identity, bool, error) {
	if authn.ValidUser(user) != nil || !authn.ValidPassword(password) {
		return authn.Identity{}, false, nil
	}
	h, known := s.users[user]
	if !known {
		h = s.dummy
	}
	ok := bcrypt.CompareHashAndPassword(h, []byte(password)) == nil
	if subtle.ConstantTimeEq(boolInt(ok), 1)&subtle.ConstantTimeEq(boolInt(known), 1) != 1 {
		return authn.Identity{}, false, nil
	}
	return authn.Identity{User: user, Roles: s.roles[user]}, true, nil
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Hash returns a bcrypt hash of password for the configuration.
func Hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}
