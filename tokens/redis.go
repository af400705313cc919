package tokens

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis is the Store shared by several sks nodes through one Redis server,
// a Sentinel-managed master or a Redis Cluster.
//
// Keys (P is KeyPrefix, R and G are the realm and group with '%', '{' and
// '}' percent-escaped):
//
//	P{r:R}:t:<hex hash>  token record (encodeRecord), PXAT Record.Expires
//	P{r:R}:u:<user>      hex hashes of the user's current tokens, oldest
//	                     first, expiring with the longest-lived of them
//	P{keys}              hash: identity -> per-identity key (global)
//	P{keys}:layout       "2" once per-realm keys were moved to P{keys}
//	P{r:R}:k             hash: identity -> key, the per-realm layout of
//	                     earlier versions; only keys that differed from
//	                     their identity's global key are left here
//	P{g:G}:key           global key of group G
//	P{g:G}:r:<realm>     hash: user -> role bits ("1" admin, "2" member, "3" both)
//
// Cluster: everything one script touches must sit in one hash slot. Token
// records are keyed by hash, not user, and the Issue script finds the
// superseded records through the user's current list, so all keys of a
// realm share the hash tag {r:R}, and all keys of a group share {g:G}. The
// trade-off: one realm lives on one cluster shard, so a cluster spreads
// realms, not the users of one realm. For sks (few realms, small records,
// cheap GETs) a shard holds a realm comfortably; scale reads with replicas.
// The scripts build the keys of the tokens on the user's list inside the
// script; they are in the script's slot by the tag.
//
// Durability is Redis's: run it with appendonly yes (appendfsync everysec
// or always) if an acknowledged login must survive a Redis crash.
type Redis struct {
	c       redis.UniversalClient
	cluster *redis.ClusterClient // nil unless mode is cluster
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	closed  atomic.Bool
	now     func() time.Time
	where   string
	cache   *redisCache // nil: no client-side cache
}

var (
	_ Store  = (*Redis)(nil)
	_ Dumper = (*Redis)(nil)
)

// OpenRedis connects to Redis as o says and pings it, so that a wrong
// address or password shows at startup rather than at the first login.
// The client reconnects by itself after Redis restarts or fails over.
func OpenRedis(ctx context.Context, o RedisOptions, log *slog.Logger) (*Redis, error) {
	redisLibLogOnce.Do(func() { redis.SetLogger(redisLibLogger{}) })
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	} else {
		redisLibLog.Store(log)
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	s := &Redis{
		prefix: o.KeyPrefix, timeout: o.Timeout, now: time.Now,
		where: strings.Join(o.Addrs, ","),
		log:   log.With("component", "redis", "mode", o.Mode),
	}
	// Every wait is bounded by Timeout; the per-call context deadline
	// (ContextTimeoutEnabled) bounds the retries of one call together.
	// DialerRetries 1: with Redis down a call fails in about 100 ms with
	// "connection refused" rather than after the whole timeout with
	// "deadline exceeded"; the pool then redials once a second, so the
	// store is back within about a second of Redis (measured: 0.95 s).
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch o.Mode {
	case RedisSingle:
		s.c = redis.NewClient(&redis.Options{
			Addr: o.Addrs[0], Username: o.Username, Password: o.Password, DB: o.DB,
			TLSConfig: tc, DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			PoolTimeout: o.Timeout, ContextTimeoutEnabled: true, DisableIdentity: true, DialerRetries: 1,
			MaintNotificationsConfig: noMaint,
		})
	case RedisSentinel:
		s.c = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.Addrs,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB,
			TLSConfig: tc, DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			PoolTimeout: o.Timeout, ContextTimeoutEnabled: true, DisableIdentity: true, DialerRetries: 1,
		})
	case RedisCluster:
		s.cluster = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password,
			TLSConfig: tc, DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			PoolTimeout: o.Timeout, ContextTimeoutEnabled: true, DisableIdentity: true, DialerRetries: 1,
			MaintNotificationsConfig: noMaint,
		})
		s.c = s.cluster
	}
	pctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := s.c.Ping(pctx).Err(); err != nil {
		s.c.Close()
		if redis.IsAuthError(err) || redis.IsPermissionError(err) {
			return nil, fmt.Errorf("cannot log in to redis at %s as %q: %w (check username, password or password_file)", s.where, userOrDefault(o.Username), err)
		}
		return nil, fmt.Errorf("cannot reach redis at %s: %w (is redis-server running? check addrs)", s.where, err)
	}
	if err := s.migrateKeys(ctx); err != nil {
		s.c.Close()
		return nil, fmt.Errorf("cannot move per-realm keys in redis at %s to the global layout: %w", s.where, err)
	}
	s.openCache(o, tc)
	s.log.Debug("token store opened", "addrs", s.where, "db", o.DB, "tls", tc != nil, "cache", s.cache != nil)
	return s, nil
}

// go-redis logs through one process-wide logger (pool dial failures and
// the like). It goes to the logger of the last OpenRedis that was given
// one, at warning level, instead of to the standard library's log.
var (
	redisLibLogOnce sync.Once
	redisLibLog     atomic.Pointer[slog.Logger]
)

type redisLibLogger struct{}

func (redisLibLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLibLog.Load(); l != nil {
		l.WarnContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
	}
}

func userOrDefault(u string) string {
	if u == "" {
		return "default"
	}
	return u
}

// Close closes the connections; later calls return ErrClosed.
func (s *Redis) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.cache != nil {
		s.cache.close()
	}
	return s.c.Close()
}

// call bounds one store call by the configured timeout and refuses calls
// after Close.
func (s *Redis) call(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	return ctx, cancel, nil
}

// fail turns a client error into the store's: a closed client is
// ErrClosed, a caller who gave up gets its own context error, a reply error
// that means "ask again later" and every connection or timeout failure wrap
// ErrUnavailable, so that the HTTP layer answers 503 rather than NO.
func (s *Redis) fail(ctx context.Context, step string, err error) error {
	switch {
	case errors.Is(err, redis.ErrClosed) && s.closed.Load():
		return ErrClosed
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return fmt.Errorf("redis %s: %w", step, err)
	}
	var re redis.Error
	if errors.As(err, &re) && !transient(err) {
		// The server answered: a bug or a misconfiguration (WRONGTYPE,
		// NOPERM, a script error), not an outage.
		return fmt.Errorf("redis %s: %w", step, err)
	}
	s.log.Debug("redis call failed", "step", step, "err", err)
	return fmt.Errorf("redis %s: %w: %w", step, ErrUnavailable, err)
}

func transient(err error) bool {
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.HasErrorPrefix(err, "BUSY") || redis.HasErrorPrefix(err, "NOREPLICAS")
}

// Key names; see the type's comment.

func escapeTag(s string) string {
	if !strings.ContainsAny(s, "%{}") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%', '{', '}':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapeTag(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

func (s *Redis) realmBase(realm string) string { return s.prefix + "{r:" + escapeTag(realm) + "}" }
func (s *Redis) groupBase(group string) string { return s.prefix + "{g:" + escapeTag(group) + "}" }

func (s *Redis) tokenKey(realm string, h Hash) string {
	return s.realmBase(realm) + ":t:" + hex.EncodeToString(h[:])
}
func (s *Redis) currentKey(realm, user string) string { return s.realmBase(realm) + ":u:" + user }
func (s *Redis) keysKey() string                      { return s.prefix + "{keys}" }
func (s *Redis) realmKeysKey(realm string) string     { return s.realmBase(realm) + ":k" }
func (s *Redis) groupKey(group string) string         { return s.groupBase(group) + ":key" }
func (s *Redis) rolesKey(realm, group string) string  { return s.groupBase(group) + ":r:" + realm }

// pxat is the PXAT argument for an expiry: Unix milliseconds rounded up, or
// 0 for none. Rounding up keeps the record until Expires; Get checks the
// exact time itself, as Badger does.
func pxat(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	ms := (t.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return max(ms, 1)
}

// luaRecord reads the user out of an encodeRecord value. It returns the
// 1-based index of the user field (everything from there on is kept by
// Replace) and the user, or nil for a corrupt record. Lua numbers are
// doubles, so the 64-bit times are skipped, never decoded.
const luaRecord = `
local function varint_end(v, i)
  while true do
    local b = string.byte(v, i)
    if not b then return nil end
    i = i + 1
    if b < 128 then return i end
  end
end
local function parse(v)
  if string.byte(v, 1) ~= 1 or #v < 2 then return nil end
  local i = varint_end(v, 3)
  if not i then return nil end
  i = varint_end(v, i)
  if not i then return nil end
  local j, n, m = i, 0, 1
  while true do
    local b = string.byte(v, j)
    if not b or m > 2^28 then return nil end
    j = j + 1
    n = n + (b % 128) * m
    if b < 128 then break end
    m = m * 128
  end
  if j + n - 1 > #v then return nil end
  return i, string.sub(v, j, j + n - 1)
end
local function set(key, value, at)
  if at == '0' then
    redis.call('SET', key, value)
  else
    redis.call('SET', key, value, 'PXAT', at)
  end
end
-- sessions returns the user's current tokens (hex hashes, oldest first),
-- or nil if the list is corrupt.
local function sessions(ck)
  local cur = redis.call('GET', ck)
  local t = {}
  if not cur then return t end
  if #cur == 0 or #cur % 64 ~= 0 then return nil end
  for i = 1, #cur, 64 do t[#t + 1] = string.sub(cur, i, i + 63) end
  return t
end
-- others returns the tokens of t that still exist, except h, and whether
-- h was in t. tp is the realm's token key prefix.
local function others(t, tp, h)
  local keep, found = {}, false
  for _, x in ipairs(t) do
    if x == h then
      found = true
    elseif redis.call('EXISTS', tp .. x) == 1 then
      keep[#keep + 1] = x
    end
  end
  return keep, found
end
-- setsessions writes the list with the expiry of its longest-lived token,
-- or deletes it when no token is left. known and at are a token and its
-- PXAT argument, known to the caller: a list of that token alone (the
-- common case, one session per user) costs no PTTL calls.
local function setsessions(ck, t, tp, known, at)
  if #t == 1 and t[1] == known then
    set(ck, known, at)
    return
  end
  local last = -2
  for _, x in ipairs(t) do
    local ttl = redis.call('PTTL', tp .. x)
    if ttl == -1 then last = -1 break end
    if ttl > last then last = ttl end
  end
  if last == -1 then
    redis.call('SET', ck, table.concat(t))
  elseif last > 0 then
    redis.call('SET', ck, table.concat(t), 'PX', last)
  else
    redis.call('DEL', ck)
  end
end
local function corrupt(key) return redis.error_reply('ERR sks: corrupt token record ' .. key) end
-- token reads the record at key and its user's list of current tokens (cp:
-- the realm's list prefix). It returns the record, the index parse
-- returned, the list's key and the list; or nil and, if either is corrupt,
-- an error reply (nil alone: the token is unknown).
local function token(key, cp)
  local v = redis.call('GET', key)
  if not v then return nil end
  local i, user = parse(v)
  if not i then return nil, corrupt(key) end
  local ck = cp .. user
  local t = sessions(ck)
  if not t then return nil, corrupt(ck) end
  return v, i, ck, t
end
`

// issueScript: KEYS[1] new token, KEYS[2] user's current list; ARGV[1]
// record, ARGV[2] PXAT or 0, ARGV[3] new hex hash, ARGV[4] token key
// prefix of the realm, ARGV[5] how many tokens stay current, ARGV[6] the
// user, ARGV[7] current list prefix of the realm. The oldest current
// tokens beyond that get the superseded flag and keep their TTL; the
// script returns their hex hashes, concatenated. A token stored again for
// another user (/stored_token) leaves its previous owner's list, and is
// not superseded by that user's later logins (the original answers
// "YES <new user>" for it).
var issueScript = redis.NewScript(luaRecord + `
local old = redis.call('GET', KEYS[1])
if old then
  local oi, ouser = parse(old)
  if not oi then return corrupt(KEYS[1]) end
  if ouser ~= ARGV[6] then
    local ock = ARGV[7] .. ouser
    local ot = sessions(ock)
    if not ot then return corrupt(ock) end
    local keep, found = others(ot, ARGV[4], ARGV[3])
    if found then setsessions(ock, keep, ARGV[4]) end
  end
end
local t = sessions(KEYS[2])
if not t then return corrupt(KEYS[2]) end
local live = {}
for _, x in ipairs(t) do
  if x ~= ARGV[3] then
    local v = redis.call('GET', ARGV[4] .. x)
    if v then
      local vi, vuser = parse(v)
      if not vi then return corrupt(ARGV[4] .. x) end
      if string.byte(v, 2) % 2 == 0 and vuser == ARGV[6] then live[#live + 1] = {x, v} end
    end
  end
end
local drop = #live + 1 - math.max(tonumber(ARGV[5]), 1)
local keep, gone = {}, {}
for i, e in ipairs(live) do
  if i <= drop then
    local v = e[2]
    redis.call('SET', ARGV[4] .. e[1], string.sub(v, 1, 1) .. string.char(string.byte(v, 2) + 1) .. string.sub(v, 3), 'KEEPTTL')
    gone[#gone + 1] = e[1]
  else
    keep[#keep + 1] = e[1]
  end
end
set(KEYS[1], ARGV[1], ARGV[2])
keep[#keep + 1] = ARGV[3]
setsessions(KEYS[2], keep, ARGV[4], ARGV[3], ARGV[2])
return table.concat(gone)
`)

// revokeScript: KEYS[1] token; ARGV[1] its hex hash, ARGV[2] current
// list prefix of the realm, ARGV[3] token key prefix. Returns 0 if unknown.
var revokeScript = redis.NewScript(luaRecord + `
local v, i, ck, t = token(KEYS[1], ARGV[2])
if not v then return i or 0 end
redis.call('DEL', KEYS[1])
local keep, found = others(t, ARGV[3], ARGV[1])
if found then setsessions(ck, keep, ARGV[3]) end
return 1
`)

// replaceScript: KEYS[1] old token, KEYS[2] next token; ARGV[1] old hex,
// ARGV[2] next hex, ARGV[3] current list prefix, ARGV[4] the new issued
// and expires varints, ARGV[5] PXAT or 0, ARGV[6] token key prefix.
// Returns 0 if old is unknown, 1 if it is not current, else the new
// record. The new token becomes the newest on the user's list.
var replaceScript = redis.NewScript(luaRecord + `
local v, i, ck, t = token(KEYS[1], ARGV[3])
if not v then return i or 0 end
if string.byte(v, 2) % 2 == 1 then return 1 end
local keep, found = others(t, ARGV[6], ARGV[1])
if not found then return 1 end
local nv = string.sub(v, 1, 2) .. ARGV[4] .. string.sub(v, i)
redis.call('DEL', KEYS[1])
set(KEYS[2], nv, ARGV[5])
keep[#keep + 1] = ARGV[2]
setsessions(ck, keep, ARGV[6], ARGV[2], ARGV[5])
return nv
`)

// touchScript: KEYS[1] token; ARGV[1] its hex hash, ARGV[2] current list
// prefix, ARGV[3] the new expires varint, ARGV[4] PXAT or 0, ARGV[5] token
// key prefix. The record keeps everything but its expires field; the
// user's current list is rewritten for its new expiry if it holds the token.
var touchScript = redis.NewScript(luaRecord + `
local v, i, ck, t = token(KEYS[1], ARGV[2])
if not v then return i or 0 end
local i1 = varint_end(v, 3)
local i2 = varint_end(v, i1)
set(KEYS[1], string.sub(v, 1, i1 - 1) .. ARGV[3] .. string.sub(v, i2), ARGV[4])
local keep = others(t, ARGV[5], nil)
for _, x in ipairs(keep) do
  if x == ARGV[1] then
    setsessions(ck, keep, ARGV[5], ARGV[1], ARGV[4])
    break
  end
end
return 1
`)

// createGroupScript: KEYS[1] group key, KEYS[2] roles of the realm;
// ARGV[1] key, ARGV[2] admin. Returns 0 if the group exists.
var createGroupScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], '1')
return 1
`)

// modGroupScript: KEYS[1] roles of the realm; ARGV[1], ARGV[2] the
// numbers of members and admins to add, then those names, then the names
// to remove from both lists.
var modGroupScript = redis.NewScript(`
local nm, na = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV do
  local u = ARGV[i]
  local r = tonumber(redis.call('HGET', KEYS[1], u) or '0')
  if i < 3 + nm then
    if r % 4 < 2 then r = r + 2 end
  elseif i < 3 + nm + na then
    if r % 2 == 0 then r = r + 1 end
  else
    r = 0
  end
  if r == 0 then
    redis.call('HDEL', KEYS[1], u)
  else
    redis.call('HSET', KEYS[1], u, tostring(r))
  end
end
return 1
`)

// Issue implements Store: one script supersedes the oldest current tokens
// and makes h current, so concurrent logins on several nodes leave exactly
// the allowed number of current tokens.
func (s *Redis) Issue(ctx context.Context, realm string, h Hash, rec Record, sessions int) ([]Hash, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rec.Superseded = false
	at := strconv.FormatInt(pxat(rec.Expires), 10)
	gone, err := issueScript.Run(ctx, s.c,
		[]string{s.tokenKey(realm, h), s.currentKey(realm, rec.User)},
		encodeRecord(rec), at, hex.EncodeToString(h[:]), s.realmBase(realm)+":t:", max(sessions, 1),
		rec.User, s.realmBase(realm)+":u:").Text()
	if err != nil {
		return nil, s.fail(ctx, "issue token "+h.Short(), err)
	}
	return parseHexList(gone)
}

// parseHexList splits concatenated hex hashes, as the scripts return them.
func parseHexList(s string) ([]Hash, error) {
	const n = 2 * len(Hash{})
	if len(s)%n != 0 {
		return nil, errCorrupt
	}
	var hs []Hash
	for i := 0; i < len(s); i += n {
		h, err := parseHex(s[i : i+n])
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// Touch implements Store.
func (s *Redis) Touch(ctx context.Context, realm string, h Hash, expires time.Time) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	err = touchScript.Run(ctx, s.c, []string{s.tokenKey(realm, h)},
		hex.EncodeToString(h[:]), s.realmBase(realm)+":u:",
		binary.AppendUvarint(nil, unixNano(expires)), strconv.FormatInt(pxat(expires), 10),
		s.realmBase(realm)+":t:").Err()
	if err != nil {
		return s.fail(ctx, "touch token "+h.Short(), err)
	}
	return nil
}

// Get implements Store.
func (s *Redis) Get(ctx context.Context, realm string, h Hash) (Record, error) {
	if s.cache == nil {
		return s.get(ctx, realm, h)
	}
	if s.closed.Load() {
		return Record{}, ErrClosed
	}
	k := cacheKey{realm, h}
	if rec, ok := s.cache.get(k); ok {
		if !rec.Expires.IsZero() && !s.now().Before(rec.Expires) {
			return Record{}, ErrNotFound
		}
		return rec, nil
	}
	epoch, fill := s.cache.beginFill(k)
	rec, err := s.get(ctx, realm, h)
	if fill {
		s.cache.endFill(k, epoch, rec, err == nil)
	}
	return rec, err
}

// get reads and decodes the record of h from Redis.
func (s *Redis) get(ctx context.Context, realm string, h Hash) (Record, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return Record{}, err
	}
	defer cancel()
	b, err := s.c.Get(ctx, s.tokenKey(realm, h)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, s.fail(ctx, "get token "+h.Short(), err)
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return Record{}, fmt.Errorf("redis get token %s: %w", h.Short(), err)
	}
	if !rec.Expires.IsZero() && !s.now().Before(rec.Expires) {
		return Record{}, ErrNotFound
	}
	return rec, nil
}

// Revoke implements Store.
func (s *Redis) Revoke(ctx context.Context, realm string, h Hash) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	n, err := revokeScript.Run(ctx, s.c, []string{s.tokenKey(realm, h)},
		hex.EncodeToString(h[:]), s.realmBase(realm)+":u:", s.realmBase(realm)+":t:").Int()
	if err != nil {
		return s.fail(ctx, "revoke token "+h.Short(), err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Replace implements Store.
func (s *Redis) Replace(ctx context.Context, realm string, old, next Hash, issued, expires time.Time) (Record, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return Record{}, err
	}
	defer cancel()
	times := binary.AppendUvarint(nil, unixNano(issued))
	times = binary.AppendUvarint(times, unixNano(expires))
	res, err := replaceScript.Run(ctx, s.c, []string{s.tokenKey(realm, old), s.tokenKey(realm, next)},
		hex.EncodeToString(old[:]), hex.EncodeToString(next[:]), s.realmBase(realm)+":u:",
		times, strconv.FormatInt(pxat(expires), 10), s.realmBase(realm)+":t:").Result()
	if err != nil {
		return Record{}, s.fail(ctx, "replace token "+old.Short(), err)
	}
	switch v := res.(type) {
	case int64:
		if v == 0 {
			return Record{}, ErrNotFound
		}
		return Record{}, ErrNotCurrent
	case string:
		rec, err := decodeRecord([]byte(v))
		if err != nil {
			return Record{}, fmt.Errorf("redis replace token %s: %w", old.Short(), err)
		}
		return rec, nil
	}
	return Record{}, fmt.Errorf("redis replace token %s: unexpected reply %T", old.Short(), res)
}

// GetKey implements Store.
func (s *Redis) GetKey(ctx context.Context, identity string) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	b, err := s.c.HGet(ctx, s.keysKey(), identity).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.fail(ctx, "get key", err)
	}
	return b, nil
}

// PutKey implements Store.
func (s *Redis) PutKey(ctx context.Context, identity string, key []byte) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.c.HSet(ctx, s.keysKey(), identity, key).Err(); err != nil {
		return s.fail(ctx, "put key", err)
	}
	return nil
}

// ForEachKey implements Store. It walks the key hash with HSCAN, so an
// identity changed during the walk may be seen twice or not at all; the
// timeout bounds each batch, not the walk.
func (s *Redis) ForEachKey(ctx context.Context, fn func(identity string, key []byte) error) error {
	return s.hscan(ctx, s.keysKey(), "list keys", func(f, v string) error { return fn(f, []byte(v)) })
}

// hscan calls fn for each field of hash key, batch by batch.
func (s *Redis) hscan(ctx context.Context, key, step string, fn func(field, value string) error) error {
	var cursor uint64
	for {
		if s.closed.Load() {
			return ErrClosed
		}
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		kv, next, err := s.c.HScan(cctx, key, cursor, "", 256).Result()
		cancel()
		if err != nil {
			return s.fail(ctx, step, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if err := fn(kv[i], kv[i+1]); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// CreateGroup implements Store.
func (s *Redis) CreateGroup(ctx context.Context, realm, group, admin string, key []byte) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	n, err := createGroupScript.Run(ctx, s.c, []string{s.groupKey(group), s.rolesKey(realm, group)}, key, admin).Int()
	if err != nil {
		return s.fail(ctx, "create group", err)
	}
	if n == 0 {
		return ErrGroupExists
	}
	return nil
}

// GroupRole implements Store.
func (s *Redis) GroupRole(ctx context.Context, realm, group, user string) (admin, member bool, err error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return false, false, err
	}
	defer cancel()
	r, err := s.c.HGet(ctx, s.rolesKey(realm, group), user).Int()
	if errors.Is(err, redis.Nil) {
		return false, false, nil
	}
	if err != nil {
		return false, false, s.fail(ctx, "get group role", err)
	}
	return r&roleAdmin != 0, r&roleMember != 0, nil
}

// ModGroup implements Store, in one script.
func (s *Redis) ModGroup(ctx context.Context, realm, group string, addMembers, addAdmins, remove []string) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	args := make([]any, 0, 2+len(addMembers)+len(addAdmins)+len(remove))
	args = append(args, len(addMembers), len(addAdmins))
	for _, l := range [][]string{addMembers, addAdmins, remove} {
		for _, u := range l {
			args = append(args, u)
		}
	}
	if err := modGroupScript.Run(ctx, s.c, []string{s.rolesKey(realm, group)}, args...).Err(); err != nil {
		return s.fail(ctx, "modify group", err)
	}
	return nil
}

// GroupKey implements Store.
func (s *Redis) GroupKey(ctx context.Context, group string) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	b, err := s.c.Get(ctx, s.groupKey(group)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.fail(ctx, "get group key", err)
	}
	return b, nil
}
