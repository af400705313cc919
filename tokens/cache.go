package tokens

import (
	"sync"
	"sync/atomic"
)

// recordCache keeps recently validated token records in memory, so that
// /valid on badger does not open a transaction each time (every badger read
// transaction costs a channel round trip through its watermark goroutine).
//
// It is exact, not a TTL cache: every write of a token record goes through
// Badger, which drops the written hashes before it returns, so an answered
// revoke, replace or supersede is never followed by a stale YES. A reader
// fills the cache only when no write overlapped its read (writers count
// themselves in inflight and bump gen when done). It is only for a store
// that is the sole writer: the Redis store, shared by several nodes, has its
// own, kept by Redis's invalidation messages (redisCache).
type recordCache struct {
	mu       sync.RWMutex
	m        map[cacheKey]Record
	max      int
	inflight atomic.Int64
	gen      atomic.Uint64
}

type cacheKey struct {
	realm string
	h     Hash
}

func newRecordCache(max int) *recordCache {
	return &recordCache{m: make(map[cacheKey]Record), max: max}
}

func (c *recordCache) get(realm string, h Hash) (Record, bool) {
	c.mu.RLock()
	r, ok := c.m[cacheKey{realm, h}]
	c.mu.RUnlock()
	return r, ok
}

// snapshot returns the generation to pass to put, and whether a read that
// starts now may be cached at all.
func (c *recordCache) snapshot() (uint64, bool) {
	g := c.gen.Load()
	return g, c.inflight.Load() == 0
}

// put caches r if no write started or finished since snapshot returned g.
func (c *recordCache) put(realm string, h Hash, r Record, g uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight.Load() != 0 || c.gen.Load() != g {
		return
	}
	if len(c.m) >= c.max {
		for k := range c.m { // full: drop an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[cacheKey{realm, h}] = r
}

// beginWrite and endWrite bracket every write of token records; endWrite
// drops the written hashes.
func (c *recordCache) beginWrite() { c.inflight.Add(1) }

func (c *recordCache) endWrite(realm string, hs ...Hash) {
	c.mu.Lock()
	for _, h := range hs {
		delete(c.m, cacheKey{realm, h})
	}
	c.gen.Add(1)
	c.mu.Unlock()
	c.inflight.Add(-1)
}
