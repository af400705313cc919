// Package guard is sks's brute-force protection: it counts login attempts
// per account of a realm and per client address, and refuses further
// attempts for a while once either count reaches its limit.
//
// It plugs into the server through two hooks. BeforeLogin reserves one
// attempt on each counter before the login module is asked, or refuses
// (the server then answers 429 with Retry-After); AfterLogin settles the
// reservation: a failure stays counted, a success or a backend error gives
// it back. Because attempts in flight count, at most the limit of password
// checks run per account and window however many requests arrive at once.
//
// The counts live in a State: in memory (optionally kept across restarts in
// the badger store, see Persister), or in Redis, shared by every node.
// The package does not import the server; it takes plain values.
package guard

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/sks-server/sks/authn"
)

// Limits are the thresholds of one realm. A zero field means "inherit the
// default" when used as a per-realm override.
type Limits struct {
	// UserFailures is how many failed logins of one user in one realm,
	// within Window, start a ban of that user in that realm. Default 5.
	UserFailures int
	// AddrFailures is how many failed logins from one client address (IPv6
	// counted per /64), within Window and across realms, start a ban of that
	// address. Default 20.
	AddrFailures int
	// Window is the period over which failures are counted, from the first
	// attempt of a series. Default 15m.
	Window time.Duration
	// Ban is how long a ban lasts. Default 15m.
	Ban time.Duration
}

// Ban describes one ban, as passed to Config.OnBan.
type Ban struct {
	// Reason is "user" (too many failures of one user) or "address".
	Reason string
	Realm  string
	// User is the canonical user name (empty for an address ban).
	User   string
	Client string
	Until  time.Time
}

// Config configures a Guard.
type Config struct {
	// Default applies to every realm; zero fields get the package defaults.
	Default Limits
	// Realms overrides Default per realm, field by field. Address limits
	// are global (an address is counted across realms), so only
	// Default.AddrFailures, Window and Ban apply to addresses.
	Realms map[string]Limits
	// MaxEntries caps the number of tracked users and addresses of the
	// memory state; beyond it the least recently updated entry is
	// forgotten. Default 100000 (a few tens of MB at most).
	MaxEntries int
	// MinFailureLatency, if positive, pads every failed login to at least
	// this long, so that a failure takes about the same time whether or not
	// the user exists (modules that answer "no such user" faster than "wrong
	// password", such as LDAP's search-then-bind, leak existence otherwise).
	MinFailureLatency time.Duration
	// State holds the counts. Nil: a memory state of MaxEntries entries.
	State State
	// OnBan is called (outside any lock) for every new ban, for the audit
	// log and metrics.
	OnBan func(Ban)
	// Logger receives a warning per ban. Passwords are never seen here.
	Logger *slog.Logger
	// Now and Sleep replace the clock in tests.
	Now   func() time.Time
	Sleep func(time.Duration)
}

// Counter is one limit checked for an attempt: the key of an account or an
// address, how many attempts it allows within Window, and how long the ban
// lasts that the last of them starts.
type Counter struct {
	Key    string
	Limit  int
	Window time.Duration
	Ban    time.Duration
	// ClearOnSuccess forgets the counted failures when an attempt succeeds
	// (accounts: the password was known). Address counts are kept.
	ClearOnSuccess bool
}

// Outcome is how a reserved attempt ended.
type Outcome int

const (
	// Failed: a wrong password or unknown user. The attempt stays counted.
	Failed Outcome = iota
	// Succeeded: the attempt is given back (and, with ClearOnSuccess,
	// earlier failures are forgotten).
	Succeeded
	// Refunded: the backend could not answer; not the client's fault.
	Refunded
)

// State stores counts and bans. Implementations must make Reserve atomic
// across every caller that shares the state (all nodes, for Redis).
type State interface {
	// Reserve refuses when any counter's key is banned, or when the
	// attempts counted against it in its window (failures plus attempts in
	// flight) have reached its Limit; otherwise it counts one attempt in
	// flight on every counter. retryAfter is the longest remaining ban, or
	// a second when only attempts in flight stand in the way.
	Reserve(ctx context.Context, now time.Time, cs []Counter) (retryAfter time.Duration, refused bool, err error)
	// Settle ends one reservation on each counter. For Failed it counts a
	// failure and reports, per counter, whether that failure started a ban.
	// Settle without a matching Reserve counts as well (it never goes
	// below zero).
	Settle(ctx context.Context, now time.Time, cs []Counter, o Outcome) (banned []bool, err error)
	// Unban lifts the ban of key and forgets its counts; found reports
	// whether anything was there.
	Unban(ctx context.Context, key string) (found bool, err error)
}

// ErrUnavailable wraps State errors: the shared state could not be asked,
// and the login is refused with 503 rather than let through unlimited.
var ErrUnavailable = errors.New("brute-force state unavailable")

// Guard checks and counts login attempts. It is safe for concurrent use.
type Guard struct {
	c Config
	s State
}

// New returns a Guard with defaults filled in.
func New(c Config) *Guard {
	c.Default = c.Default.fill(Limits{UserFailures: 5, AddrFailures: 20, Window: 15 * time.Minute, Ban: 15 * time.Minute})
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = time.Sleep
	}
	s := c.State
	if s == nil {
		s = NewMemory(c.MaxEntries)
	}
	return &Guard{c: c, s: s}
}

func (l Limits) fill(d Limits) Limits {
	if l.UserFailures <= 0 {
		l.UserFailures = d.UserFailures
	}
	if l.AddrFailures <= 0 {
		l.AddrFailures = d.AddrFailures
	}
	if l.Window <= 0 {
		l.Window = d.Window
	}
	if l.Ban <= 0 {
		l.Ban = d.Ban
	}
	return l
}

func (g *Guard) limits(realm string) Limits {
	if r, ok := g.c.Realms[realm]; ok {
		return r.fill(g.c.Default)
	}
	return g.c.Default
}

// NormalizeUser is the account key of a user name, authn.FoldUser:
// surrounding white space trimmed, Unicode compatibility forms folded
// (NFKC: fullwidth "ｂｏｂ" is "bob") and case folded, so that every spelling
// a directory may accept for one account shares one counter.
// Module-specific forms (a Kerberos principal with the default realm) are
// folded by the server before.
func NormalizeUser(user string) string { return authn.FoldUser(user) }

// NormalizeAddr returns the counting key of a client address: IPv4 as is,
// IPv6 reduced to its /64, since one host usually owns a whole /64.
func NormalizeAddr(client string) string {
	a, err := netip.ParseAddr(client)
	if err != nil {
		return client
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// UserKey is the state key of a user of a realm. The realm's length comes
// first, so that no realm and user pair can spell another's key.
func UserKey(realm, user string) string {
	return "u:" + strconv.Itoa(len(realm)) + ":" + realm + ":" + NormalizeUser(user)
}

// AddrKey is the state key of a client address.
func AddrKey(client string) string { return "a:" + NormalizeAddr(client) }

// counters are the limits of one attempt: the account, and the client
// address unless client is empty (a relay whose callers are limited per
// account only).
func (g *Guard) counters(realm, user, client string) []Counter {
	lim := g.limits(realm)
	cs := []Counter{{Key: UserKey(realm, user), Limit: lim.UserFailures, Window: lim.Window, Ban: lim.Ban, ClearOnSuccess: true}}
	if client != "" {
		d := g.c.Default
		cs = append(cs, Counter{Key: AddrKey(client), Limit: d.AddrFailures, Window: d.Window, Ban: d.Ban})
	}
	return cs
}

// BeforeLogin reserves one attempt for user of realm from client, or
// refuses it (and says how long the client should wait). Every attempt it
// lets through must be settled by exactly one AfterLogin with the same
// realm, user and client. An empty client skips the per-address limit.
// err (wrapping ErrUnavailable) means the state could not be asked.
func (g *Guard) BeforeLogin(ctx context.Context, realm, user, client string) (retryAfter time.Duration, refused bool, err error) {
	retryAfter, refused, err = g.s.Reserve(ctx, g.c.Now(), g.counters(realm, user, client))
	if err != nil {
		return 0, false, errors.Join(ErrUnavailable, err)
	}
	return retryAfter, refused, nil
}

// AfterLogin settles the attempt BeforeLogin reserved: a failed login (ok
// false and err nil) stays counted and may start a ban, a success gives the
// attempt back and clears the user's count, a backend error (err non-nil,
// not the client's fault) gives it back. A failure is padded to
// MinFailureLatency.
func (g *Guard) AfterLogin(realm, user, client, module string, ok bool, err error, took time.Duration) {
	o := Failed
	switch {
	case err != nil:
		o = Refunded
	case ok:
		o = Succeeded
	}
	now := g.c.Now()
	cs := g.counters(realm, user, client)
	// The request's context may be gone by now; the settle must still
	// happen, or the attempt would stay counted as in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	banned, serr := g.s.Settle(ctx, now, cs, o)
	cancel()
	if serr != nil {
		g.c.Logger.Warn("cannot record login attempt", "realm", realm, "user", NormalizeUser(user), "client", client, "err", serr)
	}
	for i, b := range banned {
		if !b {
			continue
		}
		ban := Ban{Reason: "user", Realm: realm, User: NormalizeUser(user), Client: client, Until: now.Add(cs[i].Ban)}
		if i == 1 {
			ban = Ban{Reason: "address", Realm: realm, Client: client, Until: now.Add(cs[i].Ban)}
		}
		g.c.Logger.Warn("login ban", "reason", ban.Reason, "realm", ban.Realm, "user", ban.User, "client", ban.Client, "until", ban.Until.Format(time.RFC3339))
		if g.c.OnBan != nil {
			g.c.OnBan(ban)
		}
	}
	if o != Failed {
		return
	}
	if d := g.c.MinFailureLatency - took; d > 0 {
		g.c.Sleep(d)
	}
}

// Unban lifts a ban of user in realm and forgets its failures. found
// reports whether there was anything to forget.
func (g *Guard) Unban(ctx context.Context, realm, user string) (found bool, err error) {
	return g.s.Unban(ctx, UserKey(realm, user))
}

// UnbanAddr lifts a ban of a client address (IPv6: its /64) and forgets
// its failures.
func (g *Guard) UnbanAddr(ctx context.Context, addr string) (found bool, err error) {
	return g.s.Unban(ctx, AddrKey(addr))
}

// Len reports how many users and addresses the memory state tracks (0 for
// other states).
func (g *Guard) Len() int {
	if m, ok := g.s.(*Memory); ok {
		return m.Len()
	}
	return 0
}

// LoginGate is BeforeLogin in the shape of the server's hook: a relay's
// attempt (a caller that logs many users in from one address) is limited
// per user only, so its address is not counted.
func (g *Guard) LoginGate(ctx context.Context, realm, user, client string, relay bool) (time.Duration, bool, error) {
	return g.BeforeLogin(ctx, realm, user, relayAddr(client, relay))
}

// LoginDone is AfterLogin in the shape of the server's hook; it settles
// the attempt LoginGate let through.
func (g *Guard) LoginDone(realm, user, client string, relay bool, module string, ok bool, err error, took time.Duration) {
	g.AfterLogin(realm, user, relayAddr(client, relay), module, ok, err, took)
}

// relayAddr is the address the guard counts: none for a relay.
func relayAddr(client string, relay bool) string {
	if relay {
		return ""
	}
	return client
}
