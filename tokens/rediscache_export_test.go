package tokens

import "time"

// RedisCacheStats returns the hits and misses of s's client-side cache.
func RedisCacheStats(s *Redis) (hits, misses uint64) {
	if s.cache == nil {
		return 0, 0
	}
	return s.cache.hits.Load(), s.cache.misses.Load()
}

// RedisCacheBypassed returns how many lookups found the cache unable to answer.
func RedisCacheBypassed(s *Redis) uint64 {
	if s.cache == nil {
		return 0
	}
	return s.cache.bypassed.Load()
}

// RedisCacheFresh reports whether s's cache may answer now.
func RedisCacheFresh(s *Redis) bool { return s.cache != nil && s.cache.fresh() }

// SetRedisClock replaces the clock s judges expiry by.
func SetRedisClock(s *Redis, now func() time.Time) { s.now = now }
