package tokens

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults of the Redis store's client-side cache.
const (
	// DefaultRedisCacheSize is how many token records a node caches when
	// RedisOptions.CacheSize is zero.
	DefaultRedisCacheSize = 65536
	// DefaultRedisCacheStaleness is RedisOptions.CacheStaleness when zero:
	// the longest a node answers from its cache without having confirmed
	// that it has every invalidation Redis sent until then.
	DefaultRedisCacheStaleness = 50 * time.Millisecond
)

// invalidateChannel is where Redis sends invalidation messages of a RESP2
// connection that redirects tracking to itself.
const invalidateChannel = "__redis__:invalidate"

// redisCache keeps token records read from Redis in memory, exactly:
// Redis tells it about every write of a key under the store's prefix
// (server-assisted client-side caching, CLIENT TRACKING in broadcast mode),
// and it answers from memory only while it can prove it has heard every
// such message until a moment at most staleness ago.
//
// Why not go-redis's own client-side cache (Options.ClientSideCacheConfig):
// it is restricted to database 0, has no cluster or Sentinel client, is
// documented as eventually consistent with no bound except an optional
// MaxStaleness (a TTL), applies invalidations of idle pooled connections
// only at a drainer tick, and gives no way to tell when tracking was lost.
// Here one dedicated RESP2 connection per node runs
//
//	CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <key prefix>
//	SUBSCRIBE __redis__:invalidate
//
// so Redis sends it the name of every key under the prefix that any client
// changes, in any database (other databases only cause extra drops), and
// whatever path wrote it (scripts, revoke-all, expiry, eviction, FLUSHALL).
//
// Exactness rests on three rules:
//
//   - Order: Redis queues a write's invalidation to the tracking connection
//     before it answers the next command from anyone, and one connection
//     delivers in order. A PING sent on the tracking connection at time T
//     is answered after every invalidation of writes finished before T. The
//     pinger sends one every staleness/4 carrying T; the cache answers only
//     while the newest answered PING was sent at most staleness ago. So a
//     write acknowledged to anyone before now-staleness is never answered
//     stale, even if the connection silently stalls (a frozen Redis, a
//     network partition): the cache then stops answering within staleness.
//   - Races: a read registers itself before it asks Redis; an invalidation
//     of its key, or a lost connection, marks it, and a marked read does
//     not fill the cache. An invalidation thus always drops what a read
//     that started before it would insert.
//   - Loss: when the connection fails, or a message is not understood, the
//     cache is flushed and bypassed until a new connection has subscribed
//     and answered a PING. The node's own writes wait (sync) until the
//     tracking connection has answered a PING sent after them, so the node
//     that answered a revoke answers NO at once.
//   - Sentinel: tracking counts only on the server the store's client
//     connects to; a dial elsewhere (a failover) flushes the cache and
//     restarts tracking (mainDialed), and the store's client is pinged
//     with the tracking connection so that even a node answering every
//     read from memory dials the new master promptly.
//
// Entries keep the record's expiry, checked on every hit.
type redisCache struct {
	staleness time.Duration
	max       int
	prefix    string // the store's KeyPrefix
	log       *slog.Logger
	base      time.Time // monotonic origin of the times below

	mu    sync.RWMutex
	m     map[cacheKey]Record
	fills map[cacheKey]*cacheFill // tokens with a read from Redis in flight
	up    bool                    // tracking on the current connection is established
	epoch uint64                  // bumped whenever the cache is flushed

	// confirmed is the send time (nanoseconds since base) of the newest
	// PING the tracking connection answered since it subscribed; 0 while
	// not established.
	confirmed atomic.Int64
	// lastHeard is when (since base) anything last arrived from Redis on
	// the tracking connection.
	lastHeard atomic.Int64
	// pong is closed and replaced on every answered PING (sync waits on it).
	pong atomic.Pointer[chan struct{}]
	kick chan struct{} // asks the pinger for a PING now

	ps     atomic.Pointer[redis.PubSub]
	client redis.UniversalClient // the tracking connection's own client
	stop   context.CancelFunc
	done   sync.WaitGroup

	hits, misses atomic.Uint64
	bypassed     atomic.Uint64 // lookups while the cache could not answer

	// Sentinel mode only (followMaster): the tracking connection must be on
	// the server the store's writes go to. dialed is the server the
	// tracking client last connected to, tracked the one tracking is
	// established on, main the one the store's client last connected to.
	followMaster           bool
	main                   redis.UniversalClient // the store's client, pinged to notice a failover
	addrMu                 sync.Mutex
	dialed, tracked, mainA string
}

type cacheFill struct {
	n     int  // reads in flight
	stale bool // an invalidation came during one of them
}

// newRedisCache starts tracking through client, a client of its own (its
// OnConnect must run trackingOnConnect, its protocol must be RESP2). main
// is the store's client in sentinel mode (the cache follows its master),
// else nil.
func newRedisCache(client redis.UniversalClient, prefix string, size int, staleness time.Duration, timeout time.Duration, log *slog.Logger, main redis.UniversalClient) *redisCache {
	c := &redisCache{
		staleness: staleness, max: size, log: log, base: time.Now(), prefix: prefix,
		followMaster: main != nil, main: main,
		m: make(map[cacheKey]Record), fills: make(map[cacheKey]*cacheFill),
		kick: make(chan struct{}, 1), client: client,
	}
	ch := make(chan struct{})
	c.pong.Store(&ch)
	client.AddHook(trackerHook{c})
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	c.done.Add(2)
	go c.listen(ctx)
	go c.pinger(ctx, timeout)
	return c
}

// trackingOnConnect turns on broadcast tracking of prefix on a new
// connection, redirected to itself; it is the tracking client's OnConnect.
func trackingOnConnect(prefix string) func(context.Context, *redis.Conn) error {
	return func(ctx context.Context, cn *redis.Conn) error {
		id, err := cn.ClientID(ctx).Result()
		if err != nil {
			return err
		}
		return cn.Do(ctx, "CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX", prefix).Err()
	}
}

func (c *redisCache) now() int64 { return int64(time.Since(c.base)) }

// close stops tracking; the cache answers nothing afterwards.
func (c *redisCache) close() {
	c.stop()
	// listen checks ctx after publishing its PubSub, so either it stops by
	// itself or the Close here unblocks its Receive (which does not watch ctx).
	if ps := c.ps.Load(); ps != nil {
		ps.Close()
	}
	c.done.Wait()
	c.client.Close()
	c.reset(false)
}

// fresh reports whether the cache may answer: tracking is established and
// confirmed within staleness.
func (c *redisCache) fresh() bool {
	t := c.confirmed.Load()
	return t != 0 && c.now()-t <= int64(c.staleness)
}

// get returns the cached record of key, if the cache may answer.
func (c *redisCache) get(key cacheKey) (Record, bool) {
	if !c.fresh() {
		c.bypassed.Add(1)
		return Record{}, false
	}
	c.mu.RLock()
	r, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return r, ok
}

// beginFill registers a read of key that is about to go to Redis. It
// returns the epoch to pass to endFill, or false if the read must not
// fill the cache (tracking is not established).
func (c *redisCache) beginFill(key cacheKey) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up {
		return 0, false
	}
	f := c.fills[key]
	if f == nil {
		f = &cacheFill{}
		c.fills[key] = f
	}
	f.n++
	return c.epoch, true
}

// endFill ends a read registered with beginFill, caching r if ok and
// nothing invalidated key or flushed the cache meanwhile.
func (c *redisCache) endFill(key cacheKey, epoch uint64, r Record, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.fills[key]
	if f == nil || c.epoch != epoch {
		return // flushed meanwhile: fills was replaced
	}
	if f.n--; f.n == 0 {
		delete(c.fills, key)
	}
	if !ok || f.stale || !c.up {
		return
	}
	if len(c.m) >= c.max {
		for k := range c.m { // full: drop an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[key] = r
}

// invalidate drops the tokens of Redis keys and marks reads of them in
// flight. Other keys (users' lists, per-identity keys, groups) are not cached.
func (c *redisCache) invalidate(keys []string) {
	c.mu.Lock()
	for _, rk := range keys {
		k, ok := parseTokenKey(c.prefix, rk)
		if !ok {
			continue
		}
		delete(c.m, k)
		if f := c.fills[k]; f != nil {
			f.stale = true
		}
	}
	c.mu.Unlock()
}

// parseTokenKey is the inverse of Redis.tokenKey: the realm and hash of
// a token record's key, or false for any other key.
func parseTokenKey(prefix, key string) (cacheKey, bool) {
	rest, ok := strings.CutPrefix(key, prefix+"{r:")
	if !ok {
		return cacheKey{}, false
	}
	// An escaped realm holds no '}', so the first one ends the tag.
	i := strings.IndexByte(rest, '}')
	if i < 0 {
		return cacheKey{}, false
	}
	hx, ok := strings.CutPrefix(rest[i+1:], ":t:")
	if !ok || len(hx) != 2*len(Hash{}) {
		return cacheKey{}, false
	}
	realm, ok := unescapeTag(rest[:i])
	if !ok {
		return cacheKey{}, false
	}
	var k cacheKey
	if _, err := hex.Decode(k.h[:], []byte(hx)); err != nil {
		return cacheKey{}, false
	}
	k.realm = realm
	return k, true
}

// reset flushes the cache and forgets reads in flight; up says whether
// tracking is established on a new connection (it still needs an answered
// PING before the cache answers).
func (c *redisCache) reset(up bool) {
	c.confirmed.Store(0)
	c.mu.Lock()
	c.m = make(map[cacheKey]Record)
	c.fills = make(map[cacheKey]*cacheFill)
	c.epoch++
	c.up = up
	c.mu.Unlock()
}

// listen runs the tracking connection: subscribe, apply what arrives, and
// on any failure flush, wait a little and start again.
func (c *redisCache) listen(ctx context.Context) {
	defer c.done.Done()
	backoff := 50 * time.Millisecond
	warned := false
	for ctx.Err() == nil {
		ps := c.client.Subscribe(ctx, invalidateChannel)
		c.ps.Store(ps)
		if ctx.Err() != nil {
			// close ran between Subscribe and Store and did not see ps;
			// Receive does not watch ctx, so it would block forever.
			c.ps.Store(nil)
			ps.Close()
			return
		}
		err := c.receive(ctx, ps)
		c.ps.Store(nil)
		ps.Close()
		wasUp := c.confirmed.Load() != 0
		c.reset(false)
		if ctx.Err() != nil {
			return
		}
		switch {
		case wasUp:
			c.log.Warn("redis cache: invalidation connection lost; cache flushed and bypassed until it is back", "err", err)
			backoff = 50 * time.Millisecond
			warned = false
		case !warned:
			// Once per outage: Redis down, or an ACL user without the
			// client command or the __redis__:invalidate channel.
			c.log.Warn("redis cache: cannot set up tracking; every /valid asks redis until it works", "err", err)
			warned = true
		default:
			c.log.Debug("redis cache: cannot set up tracking", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// receive applies the messages of one connection until it fails.
func (c *redisCache) receive(ctx context.Context, ps *redis.PubSub) error {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return err
		}
		c.lastHeard.Store(c.now())
		switch m := msg.(type) {
		case *redis.Subscription:
			// The only subscription: a new connection with tracking on
			// (OnConnect ran before SUBSCRIBE). Whatever was cached may
			// have missed invalidations between the connections.
			if m.Kind != "subscribe" || m.Channel != invalidateChannel {
				return errors.New("redis cache: unexpected " + m.Kind + " " + m.Channel)
			}
			if err := c.establish(); err != nil {
				return err
			}
			c.log.Debug("redis cache: tracking established")
			c.pingNow()
		case *redis.Message:
			if m.Channel != invalidateChannel {
				return errors.New("redis cache: message on unexpected channel " + m.Channel)
			}
			if m.PayloadSlice == nil {
				// A key name alone, never sent in RESP2 but harmless.
				c.invalidate([]string{m.Payload})
			} else {
				c.invalidate(m.PayloadSlice)
			}
		case *redis.Pong:
			t, err := strconv.ParseInt(m.Payload, 10, 64)
			if err != nil || t <= 0 {
				return errors.New("redis cache: unexpected pong " + strconv.Quote(m.Payload))
			}
			c.mu.RLock()
			up := c.up
			c.mu.RUnlock()
			if up && t > c.confirmed.Load() {
				c.confirmed.Store(t)
			}
			ch := make(chan struct{})
			old := c.pong.Swap(&ch)
			close(*old)
		default:
			// A FLUSHALL/FLUSHDB arrives as a null payload, which go-redis
			// reports as an error: flush on anything not understood.
			return errors.New("redis cache: unexpected message")
		}
	}
}

func (c *redisCache) pingNow() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// pinger sends a PING every staleness/4 (and on demand), and closes a
// connection that stays silent for timeout, so that listen reconnects.
func (c *redisCache) pinger(ctx context.Context, timeout time.Duration) {
	defer c.done.Done()
	t := time.NewTicker(max(c.staleness/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		ps := c.ps.Load()
		if ps == nil {
			continue
		}
		c.mu.RLock()
		up := c.up
		c.mu.RUnlock()
		if !up {
			continue // not subscribed yet: a PING now could dial a second connection
		}
		if c.now()-c.lastHeard.Load() > int64(timeout) {
			ps.Close() // silent too long: listen sees the error and reconnects
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		_ = ps.Ping(pctx, strconv.FormatInt(c.now(), 10))
		if c.main != nil {
			// After a failover the store's client drops its connections to
			// the old master and dials the new one (mainDialed), even on a
			// node that answers every /valid from its cache.
			_ = c.main.Ping(pctx).Err()
		}
		cancel()
	}
}

// sync returns once the cache has applied every invalidation of writes
// Redis finished before sync was called, so that the node's own write is
// visible in its own answers at once. If the tracking connection does not
// confirm within staleness, the cache is flushed instead.
func (c *redisCache) sync() {
	c.mu.RLock()
	up := c.up
	c.mu.RUnlock()
	if !up {
		return // nothing cached, no read in flight may fill
	}
	start := c.now()
	c.pingNow()
	timer := time.NewTimer(c.staleness)
	defer timer.Stop()
	for {
		ch := c.pong.Load()
		if c.confirmed.Load() >= start {
			return
		}
		c.mu.RLock()
		up := c.up
		c.mu.RUnlock()
		if !up {
			return // lost meanwhile: flushed
		}
		select {
		case <-*ch:
		case <-timer.C:
			c.mu.Lock()
			c.m = make(map[cacheKey]Record)
			c.epoch++
			c.fills = make(map[cacheKey]*cacheFill)
			c.mu.Unlock()
			return
		}
	}
}

// readOnly lists the commands the store sends that change nothing; after
// any other command the store waits for its cache (syncHook). Unknown
// commands count as writes, so a new write path is covered without a change here.
var readOnly = map[string]bool{
	"get": true, "hget": true, "hgetall": true, "hscan": true, "scan": true, "mget": true,
	"exists": true, "ttl": true, "pttl": true, "type": true, "ping": true, "dbsize": true,
	"strlen": true, "lrange": true, "smembers": true, "sscan": true, "zrange": true, "zscan": true,
	"hello": true, "auth": true, "select": true, "client": true, "cluster": true, "info": true,
	"script": true, "command": true, "evalsha_ro": true, "eval_ro": true,
}

// establish marks tracking established on the connection just
// subscribed; in sentinel mode only if it is on the server the store's
// client last connected to (a failover may have moved one and not yet the
// other).
func (c *redisCache) establish() error {
	c.addrMu.Lock()
	defer c.addrMu.Unlock()
	if c.followMaster && c.mainA != "" && c.dialed != c.mainA {
		return errors.New("redis cache: tracking connection is on " + c.dialed + " but the store uses " + c.mainA)
	}
	c.tracked = c.dialed
	c.reset(true)
	return nil
}

// trackerDialHook records where the tracking client connects.
func (c *redisCache) trackerDialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		if err == nil {
			c.addrMu.Lock()
			c.dialed = cn.RemoteAddr().String()
			c.addrMu.Unlock()
		}
		return cn, err
	}
}

// mainDialed notes that the store's client connected to addr. In sentinel
// mode a server other than the tracked one means a failover: the cache is
// flushed and bypassed at once, before the new connection carries a write,
// and the tracking connection starts again (and must land on addr).
func (c *redisCache) mainDialed(addr string) {
	c.addrMu.Lock()
	c.mainA = addr
	moved := c.followMaster && c.tracked != "" && c.tracked != addr
	if moved {
		c.tracked = ""
	}
	c.addrMu.Unlock()
	if moved {
		c.reset(false)
		c.log.Info("redis cache: the store moved to another server; cache flushed until tracking follows", "addr", addr)
		if ps := c.ps.Load(); ps != nil {
			ps.Close()
		}
	}
}

// syncHook makes every write through the store's client wait for the
// cache (redisCache.sync) before it returns, and tells the cache where
// the client connects.
type syncHook struct{ c *redisCache }

func (h syncHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		if err == nil {
			h.c.mainDialed(cn.RemoteAddr().String())
		}
		return cn, err
	}
}

func (h syncHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !readOnly[cmd.Name()] {
			// Also after an error: a write that timed out may have happened.
			h.c.sync()
		}
		return err
	}
}

func (h syncHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if !readOnly[cmd.Name()] {
				h.c.sync()
				break
			}
		}
		return err
	}
}

// openCache starts the client-side cache as o says: a tracking client of
// its own (RESP2, one connection, the same server, credentials and TLS)
// and the hook that makes the store's writes wait for it.
func (s *Redis) openCache(o RedisOptions, tc *tls.Config) {
	if o.CacheSize < 0 {
		return
	}
	log := s.log.With("part", "cache")
	if o.Mode == RedisCluster {
		// Tracking is per node: a cluster needs a tracking connection to
		// every master and a flush on every slot move. Not done (yet).
		log.Info("client-side cache is not available in cluster mode; every /valid asks redis")
		return
	}
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	var client redis.UniversalClient
	switch o.Mode {
	case RedisSingle:
		client = redis.NewClient(&redis.Options{
			Addr: o.Addrs[0], Username: o.Username, Password: o.Password, DB: o.DB, Protocol: 2,
			TLSConfig: tc, DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			PoolSize: 1, DisableIdentity: true, DialerRetries: 1, MaintNotificationsConfig: noMaint,
			OnConnect: trackingOnConnect(o.KeyPrefix),
		})
	case RedisSentinel:
		client = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.Addrs,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB, Protocol: 2,
			TLSConfig: tc, DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			PoolSize: 1, DisableIdentity: true, DialerRetries: 1,
			OnConnect: trackingOnConnect(o.KeyPrefix),
		})
	}
	var main redis.UniversalClient
	if o.Mode == RedisSentinel {
		main = s.c
	}
	s.cache = newRedisCache(client, o.KeyPrefix, o.CacheSize, o.CacheStaleness, o.Timeout, log, main)
	s.c.AddHook(syncHook{s.cache})
}

// trackerHook is the tracking client's hook: it records where it connects.
type trackerHook struct{ c *redisCache }

func (h trackerHook) DialHook(next redis.DialHook) redis.DialHook { return h.c.trackerDialHook(next) }

func (h trackerHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h trackerHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
