package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sks-server/sks/httpcred"
)

// MiddlewareOptions configures Middleware. The zero value is usable.
type MiddlewareOptions struct {
	// CookieName is the cookie holding the token. Default "sks_token".
	CookieName string
	// CacheTTL is how long a valid answer is trusted without asking sks
	// again, so a revoke takes effect within it. Default 5s; negative
	// disables caching.
	CacheTTL time.Duration
	// InvalidCacheTTL is how long an invalid answer is remembered, which
	// spares sks floods of bad tokens. Default 5s; negative disables.
	InvalidCacheTTL time.Duration
	// CacheSize bounds each of the two caches (valid and invalid answers).
	// Default 10000 entries.
	CacheSize int
	// AllowSuperseded lets superseded tokens in (a user logged in again
	// elsewhere). Default: only the current token is accepted.
	AllowSuperseded bool
	// Unauthorized answers requests without a valid token. Default: 401.
	// Use it to redirect to a login page.
	Unauthorized http.Handler
	// Logger receives failures to reach sks. Default: discarded.
	Logger *slog.Logger
}

type ctxKey struct{}

// IdentityFrom returns the identity Middleware put in ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// WithIdentity returns a context carrying id, as Middleware makes; it lets
// handlers be tested without a server.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// TokenFrom returns the session token of r: the cookie named cookie, else
// an "Authorization: Bearer" header.
func TokenFrom(r *http.Request, cookie string) (string, bool) {
	return httpcred.Token(r, cookie)
}

// Middleware protects a handler: each request must carry a token of realm
// (see TokenFrom) that sks judges valid. The identity is then available to
// the handler through IdentityFrom. Answers are cached for a few seconds
// under a hash of the token, never the token itself. When sks cannot be
// reached the request gets 503, not 401, so users are not logged out by an
// outage.
func Middleware(c *Client, realm string, o MiddlewareOptions) func(http.Handler) http.Handler {
	if o.CookieName == "" {
		o.CookieName = "sks_token"
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = 5 * time.Second
	}
	if o.InvalidCacheTTL == 0 {
		o.InvalidCacheTTL = 5 * time.Second
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10000
	}
	if o.Unauthorized == nil {
		o.Unauthorized = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		})
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	valid := newCache(o.CacheSize, o.CacheTTL)
	invalid := newCache(o.CacheSize, o.InvalidCacheTTL)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := TokenFrom(r, o.CookieName)
			if !ok || len(tok) > 1024 {
				o.Unauthorized.ServeHTTP(w, r)
				return
			}
			key := sha256.Sum256([]byte(tok))
			now := time.Now()
			if id, ok := valid.get(key, now); ok {
				next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
				return
			}
			if _, ok := invalid.get(key, now); ok {
				o.Unauthorized.ServeHTTP(w, r)
				return
			}
			res, err := c.Valid(r.Context(), realm, tok)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return
				}
				o.Logger.Warn("cannot check session token", "realm", realm, "token", shortHash(key), "err", err)
				http.Error(w, "session check unavailable", http.StatusServiceUnavailable)
				return
			}
			if res.Status == Valid || (o.AllowSuperseded && res.Status == Superseded) {
				valid.put(key, res.Identity, now)
				next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), res.Identity)))
				return
			}
			invalid.put(key, Identity{}, now)
			o.Unauthorized.ServeHTTP(w, r)
		})
	}
}

func shortHash(k [32]byte) string {
	const hexd = "0123456789abcdef"
	b := make([]byte, 12)
	for i := range 6 {
		b[2*i], b[2*i+1] = hexd[k[i]>>4], hexd[k[i]&15]
	}
	return string(b)
}

// cache is a small TTL map keyed by token hash. When full it first drops
// expired entries, then arbitrary ones: simple, bounded, and good enough for
// a few seconds of memory.
type cache struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	m   map[[32]byte]cacheEntry
}

type cacheEntry struct {
	id      Identity
	expires time.Time
}

func newCache(max int, ttl time.Duration) *cache {
	return &cache{ttl: ttl, max: max, m: make(map[[32]byte]cacheEntry)}
}

func (c *cache) get(k [32]byte, now time.Time) (Identity, bool) {
	if c.ttl < 0 {
		return Identity{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return Identity{}, false
	}
	if !now.Before(e.expires) {
		delete(c.m, k)
		return Identity{}, false
	}
	return e.id, true
}

func (c *cache) put(k [32]byte, id Identity, now time.Time) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k2, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k2)
			}
		}
		for k2 := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k2)
		}
	}
	c.m[k] = cacheEntry{id: id, expires: now.Add(c.ttl)}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
