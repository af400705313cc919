package guard

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the State shared by every node on one Redis (the token store's):
// N nodes allow the same number of guesses as one. Each check and count is
// one Lua script, so concurrent attempts on different nodes cannot both
// take the last place.
//
// Keys (P is the store's key prefix, K a counter's key; all share the hash
// tag {guard}, so a script's keys sit in one Redis Cluster slot):
//
//	P{guard}:K:f  settled failures of the series, PEXPIRE window from the first
//	P{guard}:K:i  attempts in flight, PEXPIRE InFlightTTL from the latest
//	P{guard}:K:b  present while banned, PX ban
type Redis struct {
	c        redis.UniversalClient
	prefix   string
	inflight time.Duration
}

var _ State = (*Redis)(nil)

// NewRedis returns a Redis state on c under prefix. inFlightTTL bounds how
// long an attempt of a node that died mid-login stays counted (at least the
// login timeout; default 2m).
func NewRedis(c redis.UniversalClient, prefix string, inFlightTTL time.Duration) *Redis {
	if inFlightTTL <= 0 {
		inFlightTTL = 2 * time.Minute
	}
	return &Redis{c: c, prefix: prefix, inflight: inFlightTTL}
}

func (r *Redis) keys(cs []Counter) []string {
	ks := make([]string, 0, 3*len(cs))
	for _, c := range cs {
		b := r.prefix + "{guard}:" + c.Key
		ks = append(ks, b+":f", b+":i", b+":b")
	}
	return ks
}

var reserveScript = redis.NewScript(`
local n = tonumber(ARGV[1])
local wait, refused = 0, false
for j = 0, n - 1 do
  local f, i, b = KEYS[3*j+1], KEYS[3*j+2], KEYS[3*j+3]
  local limit = tonumber(ARGV[2+j])
  local ttl = redis.call('PTTL', b)
  if ttl > 0 then
    refused = true
    if ttl > wait then wait = ttl end
  else
    local c = tonumber(redis.call('GET', f) or '0') + tonumber(redis.call('GET', i) or '0')
    if c >= limit then
      refused = true
      if wait < 1000 then wait = 1000 end
    end
  end
end
if refused then return wait end
for j = 0, n - 1 do
  redis.call('INCR', KEYS[3*j+2])
  redis.call('PEXPIRE', KEYS[3*j+2], ARGV[2+n])
end
return -1
`)

// Reserve implements State.
func (r *Redis) Reserve(ctx context.Context, now time.Time, cs []Counter) (time.Duration, bool, error) {
	args := []any{len(cs)}
	for _, c := range cs {
		args = append(args, c.Limit)
	}
	args = append(args, r.inflight.Milliseconds())
	ms, err := reserveScript.Run(ctx, r.c, r.keys(cs), args...).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("redis guard reserve: %w", err)
	}
	if ms < 0 {
		return 0, false, nil
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}

var settleScript = redis.NewScript(`
local n, o = tonumber(ARGV[1]), ARGV[2]
local res = {}
for j = 0, n - 1 do
  local f, i, b = KEYS[3*j+1], KEYS[3*j+2], KEYS[3*j+3]
  local a = 3 + 4*j
  local limit, window, ban, clear = tonumber(ARGV[a]), ARGV[a+1], ARGV[a+2], ARGV[a+3]
  local inf = tonumber(redis.call('GET', i) or '0')
  if inf > 1 then redis.call('DECR', i) elseif inf == 1 then redis.call('DEL', i) end
  res[j+1] = 0
  if o == 'f' then
    if redis.call('EXISTS', b) == 0 then
      local c = redis.call('INCR', f)
      if redis.call('PTTL', f) < 0 then redis.call('PEXPIRE', f, window) end
      if c >= limit then
        redis.call('SET', b, '1', 'PX', ban)
        redis.call('DEL', f)
        res[j+1] = 1
      end
    end
  elseif o == 's' and clear == '1' then
    redis.call('DEL', f)
  end
end
return res
`)

// Settle implements State.
func (r *Redis) Settle(ctx context.Context, now time.Time, cs []Counter, o Outcome) ([]bool, error) {
	os := map[Outcome]string{Failed: "f", Succeeded: "s", Refunded: "r"}[o]
	args := []any{len(cs), os}
	for _, c := range cs {
		clear := "0"
		if c.ClearOnSuccess {
			clear = "1"
		}
		args = append(args, c.Limit, c.Window.Milliseconds(), c.Ban.Milliseconds(), clear)
	}
	res, err := settleScript.Run(ctx, r.c, r.keys(cs), args...).Int64Slice()
	if err != nil {
		return make([]bool, len(cs)), fmt.Errorf("redis guard settle: %w", err)
	}
	banned := make([]bool, len(cs))
	for i, v := range res {
		banned[i] = i < len(banned) && v == 1
	}
	return banned, nil
}

// Unban implements State.
func (r *Redis) Unban(ctx context.Context, key string) (bool, error) {
	ks := r.keys([]Counter{{Key: key}})
	n, err := r.c.Del(ctx, ks[0], ks[2]).Result()
	if err != nil {
		return false, fmt.Errorf("redis guard unban: %w", err)
	}
	return n > 0, nil
}

// String names the state for logs.
func (r *Redis) String() string { return "redis prefix " + strconv.Quote(r.prefix) }
