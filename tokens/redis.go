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
//	P{r:R}:u:<user>      hex hash of the user's current token, same expiry
//	P{r:R}:k             hash: identity -> per-identity key
//	P{g:G}:key           global key of group G
//	P{g:G}:r:<realm>     hash: user -> role bits ("1" admin, "2" member, "3" both)
//
// Cluster: everything one script touches must sit in one hash slot. Token
// records are keyed by hash, not user, and the Issue script finds the
// superseded record through the user's current pointer, so all keys of a
// realm share the hash tag {r:R}, and all keys of a group share {g:G}. The
// trade-off: one realm lives on one cluster shard, so a cluster spreads
// realms, not the users of one realm. For sks (few realms, small records,
// cheap GETs) a shard holds a realm comfortably; scale reads with replicas.
// The Issue, Revoke and Replace scripts build the key of the superseded or
// revoked token inside the script; it is in the script's slot by the tag.
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
	s.log.Debug("token store opened", "addrs", s.where, "db", o.DB, "tls", tc != nil)
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
func (s *Redis) keysKey(realm string) string          { return s.realmBase(realm) + ":k" }
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
`

// issueScript: KEYS[1] new token, KEYS[2] user's current pointer;
// ARGV[1] record, ARGV[2] PXAT or 0, ARGV[3] new hex hash, ARGV[4] token
// key prefix of the realm. The previous current record, if it is still
// there and is another token, gets the superseded flag and keeps its TTL.
var issueScript = redis.NewScript(luaRecord + `
local old = redis.call('GET', KEYS[2])
if old and old ~= ARGV[3] then
  local ok = ARGV[4] .. old
  local v = redis.call('GET', ok)
  if v then
    if not parse(v) then return redis.error_reply('ERR sks: corrupt token record ' .. ok) end
    local f = string.byte(v, 2)
    if f % 2 == 0 then
      redis.call('SET', ok, string.sub(v, 1, 1) .. string.char(f + 1) .. string.sub(v, 3), 'KEEPTTL')
    end
  end
end
set(KEYS[1], ARGV[1], ARGV[2])
set(KEYS[2], ARGV[3], ARGV[2])
return 1
`)

// revokeScript: KEYS[1] token; ARGV[1] its hex hash, ARGV[2] current
// pointer prefix of the realm. Returns 0 if unknown.
var revokeScript = redis.NewScript(luaRecord + `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local _, user = parse(v)
if not user then return redis.error_reply('ERR sks: corrupt token record ' .. KEYS[1]) end
redis.call('DEL', KEYS[1])
local ck = ARGV[2] .. user
if redis.call('GET', ck) == ARGV[1] then redis.call('DEL', ck) end
return 1
`)

// replaceScript: KEYS[1] old token, KEYS[2] next token; ARGV[1] old hex,
// ARGV[2] next hex, ARGV[3] current pointer prefix, ARGV[4] the new issued
// and expires varints, ARGV[5] PXAT or 0. Returns 0 if old is unknown, 1 if
// it is not current, else the new record.
var replaceScript = redis.NewScript(luaRecord + `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local i, user = parse(v)
if not i then return redis.error_reply('ERR sks: corrupt token record ' .. KEYS[1]) end
local ck = ARGV[3] .. user
if string.byte(v, 2) % 2 == 1 or redis.call('GET', ck) ~= ARGV[1] then return 1 end
local nv = string.sub(v, 1, 2) .. ARGV[4] .. string.sub(v, i)
redis.call('DEL', KEYS[1])
set(KEYS[2], nv, ARGV[5])
set(ck, ARGV[2], ARGV[5])
return nv
`)

// touchScript: KEYS[1] token; ARGV[1] its hex hash, ARGV[2] current
// pointer prefix, ARGV[3] the new expires varint, ARGV[4] PXAT or 0. The
// record keeps everything but its expires field; the user's current
// pointer gets the same expiry if it points at this token.
var touchScript = redis.NewScript(luaRecord + `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local _, user = parse(v)
if not user then return redis.error_reply('ERR sks: corrupt token record ' .. KEYS[1]) end
local i1 = varint_end(v, 3)
local i2 = varint_end(v, i1)
set(KEYS[1], string.sub(v, 1, i1 - 1) .. ARGV[3] .. string.sub(v, i2), ARGV[4])
local ck = ARGV[2] .. user
if redis.call('GET', ck) == ARGV[1] then set(ck, ARGV[1], ARGV[4]) end
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

// Issue implements Store: one script supersedes the previous current
// token and makes h current, so concurrent logins on several nodes leave
// exactly one current token.
func (s *Redis) Issue(ctx context.Context, realm string, h Hash, rec Record) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	rec.Superseded = false
	at := strconv.FormatInt(pxat(rec.Expires), 10)
	err = issueScript.Run(ctx, s.c,
		[]string{s.tokenKey(realm, h), s.currentKey(realm, rec.User)},
		encodeRecord(rec), at, hex.EncodeToString(h[:]), s.realmBase(realm)+":t:").Err()
	if err != nil {
		return s.fail(ctx, "issue token "+h.Short(), err)
	}
	return nil
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
		binary.AppendUvarint(nil, unixNano(expires)), strconv.FormatInt(pxat(expires), 10)).Err()
	if err != nil {
		return s.fail(ctx, "touch token "+h.Short(), err)
	}
	return nil
}

// Get implements Store.
func (s *Redis) Get(ctx context.Context, realm string, h Hash) (Record, error) {
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
		hex.EncodeToString(h[:]), s.realmBase(realm)+":u:").Int()
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
		times, strconv.FormatInt(pxat(expires), 10)).Result()
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
func (s *Redis) GetKey(ctx context.Context, realm, identity string) ([]byte, error) {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	b, err := s.c.HGet(ctx, s.keysKey(realm), identity).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.fail(ctx, "get key", err)
	}
	return b, nil
}

// PutKey implements Store.
func (s *Redis) PutKey(ctx context.Context, realm, identity string, key []byte) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.c.HSet(ctx, s.keysKey(realm), identity, key).Err(); err != nil {
		return s.fail(ctx, "put key", err)
	}
	return nil
}

// ForEachKey implements Store. It walks the realm's key hash with HSCAN,
// so an identity changed during the walk may be seen twice or not at all;
// the timeout bounds each batch, not the walk.
func (s *Redis) ForEachKey(ctx context.Context, realm string, fn func(identity string, key []byte) error) error {
	return s.hscan(ctx, s.keysKey(realm), "list keys", func(f, v string) error { return fn(f, []byte(v)) })
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
