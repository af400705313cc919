package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Version returns the protocol version the server answers on /version
// ("1.5"). It is the cheapest way to check that a URL is an sks server
// (and that its TLS certificate is trusted) before asking for a password.
func (c *Client) Version(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/version", nil)
	if err != nil {
		return "", fmt.Errorf("sks client: cannot build request: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("sks client: /version: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "", fmt.Errorf("sks client: /version: cannot read answer: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK || v == "" || strings.ContainsAny(v, " \n<") {
		return "", fmt.Errorf("%w: /version answered %d %.40q: not an sks server?", ErrProtocol, resp.StatusCode, v)
	}
	return v, nil
}

// SessionInfo is what /session tells about a session besides its identity.
type SessionInfo struct {
	Status  Status
	Issued  time.Time
	Expires time.Time // zero: no absolute end
}

// SessionInfo asks /session (an sks extension) when token's session was
// issued and when it ends. An unknown or expired token has Status Invalid.
func (c *Client) SessionInfo(ctx context.Context, realm, token string) (SessionInfo, error) {
	body, err := c.call(ctx, "/session", form(realm, "token", token))
	if err != nil {
		return SessionInfo{}, err
	}
	lines := strings.Split(body, "\n")
	var si SessionInfo
	switch lines[0] {
	case "YES":
		si.Status = Valid
	case "SUPERCEDED":
		si.Status = Superseded
	case "NO":
		si.Status = Invalid
		return si, nil
	default:
		return SessionInfo{}, fmt.Errorf("%w: /session answered %.40q", ErrProtocol, lines[0])
	}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			continue
		}
		switch k {
		case "issued":
			si.Issued = t
		case "expires":
			si.Expires = t
		}
	}
	return si, nil
}
