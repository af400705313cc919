package tokens_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sks-server/sks/tokens"
)

// benchTokens is how many tokens the Get benchmarks seed.
const benchTokens = 10000

// The seeded stores are built once per test binary, because a benchmark
// function runs several times while its b.N grows; TestMain closes them.
var bench struct {
	sync.Mutex
	stores map[string]tokens.Store
	open   []func()
}

func closeBenchStores() {
	bench.Lock()
	defer bench.Unlock()
	for _, c := range bench.open {
		c()
	}
}

func benchStore(b *testing.B, name string, open func() (tokens.Store, error)) tokens.Store {
	b.Helper()
	bench.Lock()
	defer bench.Unlock()
	if s, ok := bench.stores[name]; ok {
		return s
	}
	s, err := open()
	if err != nil {
		b.Fatal(err)
	}
	bench.open = append(bench.open, func() { s.Close() })
	ctx := context.Background()
	for i := range benchTokens {
		if err := issued(s.Issue(ctx, "r", tokens.HashToken(fmt.Sprint("tok", i)), tokens.Record{
			User: fmt.Sprint("user", i), Identity: fmt.Sprintf("user%d\npam\nmail=user%d@example.org\n", i, i),
		}, 1)); err != nil {
			b.Fatal(err)
		}
	}
	if bench.stores == nil {
		bench.stores = map[string]tokens.Store{}
	}
	bench.stores[name] = s
	return s
}

// benchGet runs parallel Gets of existing tokens, as /valid does: 8
// goroutines per CPU, like a server with many requests in flight, which
// lets the Redis client keep several round trips going at once.
func benchGet(b *testing.B, s tokens.Store) {
	hashes := make([]tokens.Hash, benchTokens)
	for i := range hashes {
		hashes[i] = tokens.HashToken(fmt.Sprint("tok", i))
	}
	ctx := context.Background()
	for _, h := range hashes { // steady state: every token read once (and cached)
		if _, err := s.Get(ctx, "r", h); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Get(ctx, "r", hashes[i%benchTokens]); err != nil {
				b.Error(err)
				return
			}
			i += 7919 // a prime stride, so goroutines spread over the keys
		}
	})
}

func BenchmarkRedisGet(b *testing.B) {
	addr := sharedRedis(b)
	s := benchStore(b, "redis", func() (tokens.Store, error) {
		return tokens.OpenRedis(context.Background(), redisOpts(addr), nil)
	})
	r := s.(*tokens.Redis)
	h0, m0 := tokens.RedisCacheStats(r)
	x0 := tokens.RedisCacheBypassed(r)
	benchGet(b, s)
	h, m := tokens.RedisCacheStats(r)
	b.Logf("cache hits %d, misses %d, bypassed (tracking unconfirmed) %d", h-h0, m-m0, tokens.RedisCacheBypassed(r)-x0)
}

// BenchmarkRedisGetNoCache: the same without the client-side cache,
// every Get a round trip.
func BenchmarkRedisGetNoCache(b *testing.B) {
	addr := sharedRedis(b)
	s := benchStore(b, "redis-nocache", func() (tokens.Store, error) {
		o := redisOpts(addr)
		o.CacheSize = -1
		return tokens.OpenRedis(context.Background(), o, nil)
	})
	benchGet(b, s)
}

func BenchmarkBadgerGet(b *testing.B) {
	s := benchStore(b, "badger", func() (tokens.Store, error) {
		// In memory: a /valid lookup of a recent token is served from
		// badger's memtable either way, and seeding on disk would sync
		// each of the 10,000 logins.
		return tokens.OpenBadger(tokens.BadgerOptions{})
	})
	benchGet(b, s)
}

// benchIssue runs issues from 32 goroutines. "new-user" logs in a new user
// each time; "relogin" logs in one of 1,000 users again, superseding their
// oldest token, with max_sessions 1 and 3.
func benchIssue(b *testing.B, open func(b *testing.B) tokens.Store) {
	for _, c := range []struct {
		name            string
		users, sessions int
	}{{"new-user", 0, 1}, {"relogin/max1", 1000, 1}, {"relogin/max3", 1000, 3}} {
		b.Run(c.name, func(b *testing.B) {
			s := open(b)
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					tok := fmt.Sprint("bench-", c.name, i)
					user := tok
					if c.users > 0 {
						user = fmt.Sprint("user-", i%int64(c.users))
					}
					if err := issued(s.Issue(ctx, "r", tokens.HashToken(tok), tokens.Record{User: user, Identity: user + "\nstored\n"}, c.sessions)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "issues/s")
		})
	}
}

// BenchmarkRedisIssue: the Issue script's cost, against the shared Redis.
func BenchmarkRedisIssue(b *testing.B) {
	addr := sharedRedis(b)
	benchIssue(b, func(b *testing.B) tokens.Store { return openRedis(b, redisOpts(addr)) })
}
