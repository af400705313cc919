// Package guard is sks's brute-force protection: it counts failed logins
// per user of a realm and per client address, and refuses further attempts
// for a while once either count reaches its limit.
//
// It plugs into the server through two hooks: BeforeLogin (may refuse, and
// the server then answers 429 with Retry-After) and AfterLogin (counts).
// The package does not import the server; it takes plain values.
package guard

import (
	"container/list"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
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
	// failure of a series. Default 15m.
	Window time.Duration
	// Ban is how long a ban lasts. Default 15m.
	Ban time.Duration
}

// Ban describes one ban, as passed to Config.OnBan.
type Ban struct {
	// Reason is "user" (too many failures of one user) or "address".
	Reason string
	Realm  string
	// User is the normalized user name (empty for an address ban).
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
	// MaxEntries caps the number of tracked users and addresses; beyond it
	// the least recently updated entry is forgotten. Default 100000 (a few
	// tens of MB at most).
	MaxEntries int
	// MinFailureLatency, if positive, pads every failed login to at least
	// this long, so that a failure takes about the same time whether or not
	// the user exists (modules that answer "no such user" faster than "wrong
	// password", such as LDAP's search-then-bind, leak existence otherwise).
	MinFailureLatency time.Duration
	// OnBan is called (outside the guard's lock) for every new ban, for the
	// audit log and metrics.
	OnBan func(Ban)
	// Logger receives a warning per ban. Passwords are never seen here.
	Logger *slog.Logger
	// Now and Sleep replace the clock in tests.
	Now   func() time.Time
	Sleep func(time.Duration)
}

// Guard counts failures and decides bans. It is safe for concurrent use.
type Guard struct {
	c   Config
	mu  sync.Mutex
	m   map[string]*list.Element
	lru *list.List // front is least recently updated
}

type entry struct {
	key         string
	first       time.Time // first failure of the current series
	count       int
	bannedUntil time.Time
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
	return &Guard{c: c, m: make(map[string]*list.Element), lru: list.New()}
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

// NormalizeUser folds a user name for counting: surrounding white space is
// trimmed and letters are lower-cased, so that "Alice", " alice" and
// "ALICE" share one counter. Unicode NFKC folding (fullwidth letters and
// the like) would need golang.org/x/text, which sks does not depend on;
// such variants are still caught by the per-address limit.
func NormalizeUser(user string) string {
	return strings.ToLower(strings.TrimSpace(user))
}

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

func userKey(realm, user string) string { return "u\x00" + realm + "\x00" + NormalizeUser(user) }
func addrKey(client string) string      { return "a\x00" + NormalizeAddr(client) }

// BeforeLogin reports whether a login attempt must be refused, and for how
// long the client should wait. Refused attempts are not counted.
func (g *Guard) BeforeLogin(realm, user, client string) (retryAfter time.Duration, refused bool) {
	now := g.c.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range [2]string{userKey(realm, user), addrKey(client)} {
		el, ok := g.m[k]
		if !ok {
			continue
		}
		if e := el.Value.(*entry); now.Before(e.bannedUntil) {
			if d := e.bannedUntil.Sub(now); d > retryAfter {
				retryAfter = d
			}
			refused = true
		}
	}
	return retryAfter, refused
}

// AfterLogin counts a failed login (ok false and err nil) and clears the
// user's count after a success. An empty client (a relay that logs many
// users in from one address) is counted per user only. Backend errors (err non-nil) are not the
// client's fault and are not counted. A failure is padded to
// MinFailureLatency.
func (g *Guard) AfterLogin(realm, user, client, module string, ok bool, err error, took time.Duration) {
	if err != nil {
		return
	}
	if ok {
		g.mu.Lock()
		g.remove(userKey(realm, user))
		g.mu.Unlock()
		return
	}
	lim := g.limits(realm)
	now := g.c.Now()
	var bans []Ban
	g.mu.Lock()
	if g.fail(userKey(realm, user), now, lim.UserFailures, lim) {
		bans = append(bans, Ban{Reason: "user", Realm: realm, User: NormalizeUser(user), Client: client, Until: now.Add(lim.Ban)})
	}
	// An empty client is a relay's login, limited per user only.
	if client != "" && g.fail(addrKey(client), now, g.c.Default.AddrFailures, g.c.Default) {
		bans = append(bans, Ban{Reason: "address", Realm: realm, Client: client, Until: now.Add(g.c.Default.Ban)})
	}
	g.mu.Unlock()
	for _, b := range bans {
		g.c.Logger.Warn("login ban", "reason", b.Reason, "realm", b.Realm, "user", b.User, "client", b.Client, "until", b.Until.Format(time.RFC3339))
		if g.c.OnBan != nil {
			g.c.OnBan(b)
		}
	}
	if d := g.c.MinFailureLatency - took; d > 0 {
		g.c.Sleep(d)
	}
}

// fail counts one failure under key and reports whether it started a ban.
// g.mu is held.
func (g *Guard) fail(key string, now time.Time, limit int, lim Limits) bool {
	var e *entry
	if el, ok := g.m[key]; ok {
		e = el.Value.(*entry)
		g.lru.MoveToBack(el)
	} else {
		e = &entry{key: key}
		g.m[key] = g.lru.PushBack(e)
		for g.lru.Len() > g.c.MaxEntries {
			old := g.lru.Remove(g.lru.Front()).(*entry)
			delete(g.m, old.key)
		}
	}
	if now.Before(e.bannedUntil) {
		return false
	}
	if e.count == 0 || now.Sub(e.first) >= lim.Window {
		e.first, e.count, e.bannedUntil = now, 0, time.Time{}
	}
	e.count++
	if e.count >= limit {
		e.bannedUntil = now.Add(lim.Ban)
		e.count = 0
		return true
	}
	return false
}

func (g *Guard) remove(key string) {
	if el, ok := g.m[key]; ok {
		e := el.Value.(*entry)
		if g.c.Now().Before(e.bannedUntil) {
			return // a success cannot happen while banned; keep the ban
		}
		g.lru.Remove(el)
		delete(g.m, key)
	}
}

// Len reports how many users and addresses are tracked.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lru.Len()
}
