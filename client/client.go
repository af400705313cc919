// Package client talks to an sks server (or the Java SessionKeyServer 1.5)
// from Go: logins, token checks, replacement, revocation, per-user keys and
// signed tokens, plus an HTTP middleware that protects a web application.
//
// Every request is a POST form, so that passwords and tokens never appear in
// a URL, a proxy log or a server access log.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Sentinel errors classify the server's refusals; test them with errors.Is.
var (
	// ErrBadRequest is a 400 answer: a missing or malformed parameter.
	ErrBadRequest = errors.New("sks: bad request")
	// ErrForbidden is a 403 answer: wrong credentials, or a token that is
	// not current.
	ErrForbidden = errors.New("sks: forbidden")
	// ErrNotFound is a 404 answer: an unknown path or a feature the server
	// does not have configured (for example /jwt without signing keys).
	ErrNotFound = errors.New("sks: not found")
	// ErrTooManyRequests is a 429 answer: too many failed logins.
	ErrTooManyRequests = errors.New("sks: too many requests")
	// ErrUnavailable is a 503 answer: the token store or a login backend
	// is down. It is not a judgement on the credentials.
	ErrUnavailable = errors.New("sks: service unavailable")
	// ErrProtocol means the answer could not be understood.
	ErrProtocol = errors.New("sks: unexpected answer")
)

// Error is a non-200 answer. It wraps one of the sentinel errors.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's explanation (the answer body), if any.
	Message string
	err     error
}

// Error describes the refusal.
func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%v (http %d)", e.err, e.Status)
	}
	return fmt.Sprintf("%v (http %d): %s", e.err, e.Status, e.Message)
}

// Unwrap returns the sentinel error for the status.
func (e *Error) Unwrap() error { return e.err }

// Status is the state of a token as /valid reports it.
type Status int

// The answers of /valid.
const (
	// Invalid is an unknown, revoked or expired token ("NO").
	Invalid Status = iota
	// Valid is the user's current token ("YES").
	Valid
	// Superseded is a known token of a user who has since logged in again
	// ("SUPERCEDED" in the protocol).
	Superseded
)

// String names the status.
func (s Status) String() string {
	switch s {
	case Valid:
		return "valid"
	case Superseded:
		return "superseded"
	}
	return "invalid"
}

// Identity is who a token belongs to.
type Identity struct {
	// User is the user name.
	User string
	// Source says how the token was obtained: "auth/<module>", "pam" or
	// "stored".
	Source string
	// Attrs are the name=value lines of the identity (uid, gid, ...).
	Attrs map[string]string
	// Text is the identity as the server sent it, "<user>\n<source>\n" and
	// the name=value lines in the server's order, for display.
	Text string
}

// Result is the answer of Valid.
type Result struct {
	Status   Status
	Identity Identity
}

// Session is a token and its identity, the answer of Login and Replace.
type Session struct {
	Token    string
	Identity Identity
}

// Client is an sks client. It is safe for concurrent use.
type Client struct {
	base    string
	hc      *http.Client
	caFile  string
	timeout time.Duration
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient makes the client send its requests through hc.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error { c.hc = hc; return nil }
}

// WithCAFile trusts the PEM certificates in path (instead of the system's
// roots) for an https:// server, as for an sks with a private CA.
func WithCAFile(path string) Option {
	return func(c *Client) error { c.caFile = path; return nil }
}

// WithTimeout bounds every request (default 10s). Contexts can shorten it.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error { c.timeout = d; return nil }
}

// New returns a client for the server at baseURL, such as
// "https://sks.example.org:4431".
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sks client: base URL %q: need http:// or https:// and a host", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), timeout: 10 * time.Second}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if c.caFile != "" {
			pem, err := os.ReadFile(c.caFile)
			if err != nil {
				return nil, fmt.Errorf("sks client: cannot read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("sks client: no PEM certificate in %s", c.caFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		c.hc = &http.Client{Transport: tr, Timeout: c.timeout}
	} else if c.caFile != "" {
		return nil, errors.New("sks client: WithCAFile and WithHTTPClient exclude each other; configure the CA in your http.Client")
	}
	return c, nil
}

// maxAnswer bounds the answers read; the largest real one is a key or JWT.
const maxAnswer = 64 << 10

// call POSTs form to path and returns the body of a 200 answer.
func (c *Client) call(ctx context.Context, path string, form url.Values) (string, error) {
	return c.callAs(ctx, path, form, "")
}

// callAs is call with "Authorization: Bearer <bearer>" unless bearer is empty.
func (c *Client) callAs(ctx context.Context, path string, form url.Values, bearer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("sks client: cannot build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// The URL in *url.Error holds no secret: everything is in the body.
		return "", fmt.Errorf("sks client: %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "", fmt.Errorf("sks client: %s: cannot read answer: %w", path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return string(b), nil
	}
	e := &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	switch resp.StatusCode {
	case http.StatusBadRequest:
		e.err = ErrBadRequest
	case http.StatusForbidden:
		e.err = ErrForbidden
	case http.StatusNotFound:
		e.err = ErrNotFound
	case http.StatusTooManyRequests:
		e.err = ErrTooManyRequests
	case http.StatusServiceUnavailable:
		e.err = ErrUnavailable
	default:
		e.err = ErrProtocol
	}
	return "", e
}

func form(realm string, kv ...string) url.Values {
	v := url.Values{"realm": {realm}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v
}

// parseIdentity reads "<user>\n<source>\n[name=value\n...]" lines from
// text, stopping at the first empty line.
func parseIdentity(text string) (Identity, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 2 || lines[0] == "" {
		return Identity{}, ErrProtocol
	}
	id := Identity{User: lines[0], Source: lines[1]}
	end := len(lines[0]) + 1 + len(lines[1]) + 1
	for _, l := range lines[2:] {
		if l == "" {
			break
		}
		end += len(l) + 1
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		if id.Attrs == nil {
			id.Attrs = map[string]string{}
		}
		id.Attrs[k] = v
	}
	id.Text = text[:min(end, len(text))]
	return id, nil
}

// parseSession reads "<token>\n" and an identity.
func parseSession(body string) (Session, error) {
	tok, rest, ok := strings.Cut(body, "\n")
	if !ok || tok == "" {
		return Session{}, fmt.Errorf("%w: no token in answer", ErrProtocol)
	}
	id, err := parseIdentity(rest)
	if err != nil {
		return Session{}, fmt.Errorf("%w: no identity in answer", ErrProtocol)
	}
	return Session{Token: tok, Identity: id}, nil
}

// Login authenticates user with pwd in realm and returns a new session
// token. module picks the login module; empty uses the realm's default.
// Wrong credentials give ErrForbidden; a backend outage ErrUnavailable.
func (c *Client) Login(ctx context.Context, realm, user, pwd, module string) (Session, error) {
	body, err := c.call(ctx, "/auth_token", form(realm, "user", user, "pwd", pwd, "module", module))
	if err != nil {
		return Session{}, err
	}
	return parseSession(body)
}

// Valid reports whether token is valid in realm and whose it is. An invalid
// token is a Result with Status Invalid and a nil error; an error means the
// question could not be answered.
func (c *Client) Valid(ctx context.Context, realm, token string) (Result, error) {
	body, err := c.call(ctx, "/valid", form(realm, "token", token))
	if err != nil {
		return Result{}, err
	}
	first, rest, _ := strings.Cut(body, "\n")
	var r Result
	switch first {
	case "YES":
		r.Status = Valid
	case "SUPERCEDED", "SUPERSEDED":
		r.Status = Superseded
	case "NO":
		return Result{Status: Invalid}, nil
	default:
		return Result{}, fmt.Errorf("%w: /valid answered %.20q", ErrProtocol, first)
	}
	if r.Identity, err = parseIdentity(rest); err != nil {
		return Result{}, fmt.Errorf("%w: /valid answer has no identity", ErrProtocol)
	}
	return r, nil
}

// Replace swaps a current token for a new one with the same identity; the
// old token stops working. A token that is not current gives ErrForbidden.
func (c *Client) Replace(ctx context.Context, realm, token string) (Session, error) {
	body, err := c.call(ctx, "/replace", form(realm, "token", token))
	if err != nil {
		return Session{}, err
	}
	return parseSession(body)
}

// Revoke ends a session. It reports false if the token was not known.
func (c *Client) Revoke(ctx context.Context, realm, token string) (bool, error) {
	body, err := c.call(ctx, "/revoke", form(realm, "token", token))
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(body) {
	case "OK":
		return true, nil
	case "INVALID":
		return false, nil
	}
	return false, fmt.Errorf("%w: /revoke answered %.20q", ErrProtocol, body)
}

func (c *Client) key(ctx context.Context, path, realm, token string) ([]byte, error) {
	body, err := c.call(ctx, path, form(realm, "token", token))
	if err != nil {
		return nil, err
	}
	body = strings.TrimSpace(body)
	if body == "" {
		return nil, nil
	}
	k, err := hex.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s answer is not hex", ErrProtocol, path)
	}
	return k, nil
}

// GenKey makes a new secret key for the identity of a current token,
// replacing any earlier one, and returns it (64 bytes). Data encrypted
// under the earlier key is lost, so call it once per user.
func (c *Client) GenKey(ctx context.Context, realm, token string) ([]byte, error) {
	return c.key(ctx, "/gen_key", realm, token)
}

// GetKey returns the stored key of the identity of a current token, or nil
// if it has none.
func (c *Client) GetKey(ctx context.Context, realm, token string) ([]byte, error) {
	return c.key(ctx, "/get_key", realm, token)
}

// JWT exchanges a current session token for a short-lived signed JWT.
// A server without signing keys gives ErrNotFound.
func (c *Client) JWT(ctx context.Context, realm, token string) (string, error) {
	body, err := c.call(ctx, "/jwt", form(realm, "token", token))
	if err != nil {
		return "", err
	}
	jwt := strings.TrimSpace(body)
	if jwt == "" {
		return "", fmt.Errorf("%w: empty /jwt answer", ErrProtocol)
	}
	return jwt, nil
}
