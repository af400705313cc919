package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SessionEntry is one current session of a user, as an admin listing shows
// it. ID is a short hash of the token (the one audit lines show), never
// the token.
type SessionEntry struct {
	ID      string    `json:"id"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires,omitzero"` // zero: no expiry
	Source  string    `json:"source"`
}

// RevokeAll signs the owner of a current token out everywhere: every
// current session of that user in realm ends, token's included. It returns
// how many ended. A token that is not current gives ErrForbidden; a server
// without /revoke_all (older sks, the Java original) gives ErrNotFound.
func (c *Client) RevokeAll(ctx context.Context, realm, token string) (int, error) {
	body, err := c.call(ctx, "/revoke_all", form(realm, "token", token))
	if err != nil {
		return 0, err
	}
	ok, rest, _ := strings.Cut(body, "\n")
	n, err := strconv.Atoi(strings.TrimSpace(rest))
	if ok != "OK" || err != nil || n < 0 {
		return 0, fmt.Errorf("%w: /revoke_all answered %.40q", ErrProtocol, body)
	}
	return n, nil
}

// Sessions lists the current sessions of user in realm, oldest first. It
// is an admin call: adminToken is the server's admin bearer token ([admin]
// token_file), or empty for a loopback caller the server trusts.
func (c *Client) Sessions(ctx context.Context, realm, user, adminToken string) ([]SessionEntry, error) {
	body, err := c.callAs(ctx, "/sessions", form(realm, "user", user), adminToken)
	if err != nil {
		return nil, err
	}
	var out struct {
		Sessions []SessionEntry `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		return nil, fmt.Errorf("%w: /sessions answer is not JSON", ErrProtocol)
	}
	return out.Sessions, nil
}

// RevokeSessions ends every current session of user in realm and returns
// how many ended. It is an admin call, as Sessions.
func (c *Client) RevokeSessions(ctx context.Context, realm, user, adminToken string) (int, error) {
	body, err := c.callAs(ctx, "/revoke_sessions", form(realm, "user", user), adminToken)
	if err != nil {
		return 0, err
	}
	var out struct {
		Revoked *int `json:"revoked"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Revoked == nil {
		return 0, fmt.Errorf("%w: /revoke_sessions answer has no count", ErrProtocol)
	}
	return *out.Revoked, nil
}

// Unban lifts a brute-force ban (POST /unban, an admin call): of user in
// realm, or, with address set (user empty), of a client address. found
// reports whether there was a ban or failures to forget.
func (c *Client) Unban(ctx context.Context, realm, user, address, adminToken string) (found bool, err error) {
	f := url.Values{}
	if realm != "" {
		f.Set("realm", realm)
	}
	if address != "" {
		f.Set("address", address)
	} else {
		f.Set("user", user)
	}
	body, err := c.callAs(ctx, "/unban", f, adminToken)
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(body) {
	case "OK":
		return true, nil
	case "NONE":
		return false, nil
	}
	return false, fmt.Errorf("%w: /unban answered %.40q", ErrProtocol, body)
}
