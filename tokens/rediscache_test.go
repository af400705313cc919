package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sks-server/sks/testrig"
	"github.com/sks-server/sks/tokens"
	"github.com/sks-server/sks/tokens/storetest"
)

// cached waits until s's client-side cache answers, and checks that a Get
// of h is then served from memory.
func cached(t *testing.T, s *tokens.Redis, realm string, h tokens.Hash) tokens.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !tokens.RedisCacheFresh(s) {
		if time.Now().After(deadline) {
			t.Fatal("client-side cache not established within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		if _, err := s.Get(context.Background(), realm, h); err != nil {
			t.Fatalf("Get %s: %v", h.Short(), err)
		}
		hits, _ := tokens.RedisCacheStats(s)
		rec, err := s.Get(context.Background(), realm, h)
		if err != nil {
			t.Fatalf("Get %s: %v", h.Short(), err)
		}
		if h2, _ := tokens.RedisCacheStats(s); h2 > hits {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("token %s never served from the cache", h.Short())
		}
	}
}

// until polls get until it reports true, and returns how long that took
// from start; it fails the test after a second.
func until(t *testing.T, what string, start time.Time, get func() bool) time.Duration {
	t.Helper()
	for !get() {
		if time.Since(start) > time.Second {
			t.Fatalf("%s: not seen within 1s", what)
		}
	}
	d := time.Since(start)
	t.Logf("%s: seen after %s", what, d)
	return d
}

// TestRedisCacheTwoNodes: two nodes on one Redis, each caching. A revoke,
// supersede or replace answered on one is seen at once by itself and,
// within a bound, by the other, although both had the token cached.
func TestRedisCacheTwoNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := redisOpts(sharedRedis(t))
	a, b := openRedis(t, o), openRedis(t, o)
	rec := tokens.Record{User: "alice", Identity: "alice\npam\n"}
	h := tokens.HashToken

	// Revoke on A.
	must(t, issued(a.Issue(ctx, "r", h("t1"), rec, 1)))
	cached(t, a, "r", h("t1"))
	cached(t, b, "r", h("t1"))
	must(t, a.Revoke(ctx, "r", h("t1")))
	start := time.Now()
	if _, err := a.Get(ctx, "r", h("t1")); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("A right after its own revoke: got %v, want ErrNotFound", err)
	}
	until(t, "revoke on A, NO on B", start, func() bool {
		_, err := b.Get(ctx, "r", h("t1"))
		return errors.Is(err, tokens.ErrNotFound)
	})

	// Supersede: a login on B supersedes the token A has cached.
	must(t, issued(a.Issue(ctx, "r", h("t2"), rec, 1)))
	cached(t, a, "r", h("t2"))
	cached(t, b, "r", h("t2"))
	must(t, issued(b.Issue(ctx, "r", h("t3"), rec, 1)))
	start = time.Now()
	if got, err := b.Get(ctx, "r", h("t2")); err != nil || !got.Superseded {
		t.Fatalf("B right after its login: got %+v, %v; want t2 superseded", got, err)
	}
	until(t, "login on B, SUPERCEDED on A", start, func() bool {
		got, err := a.Get(ctx, "r", h("t2"))
		return err == nil && got.Superseded
	})

	// Replace on A: the old token is gone on B, the new one is current.
	cached(t, b, "r", h("t3"))
	if _, err := a.Replace(ctx, "r", h("t3"), h("t4"), time.Now(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	until(t, "replace on A, NO on B", start, func() bool {
		_, err := b.Get(ctx, "r", h("t3"))
		return errors.Is(err, tokens.ErrNotFound)
	})
	if got, err := b.Get(ctx, "r", h("t4")); err != nil || got.Superseded {
		t.Fatalf("replacement on B: got %+v, %v", got, err)
	}

	// Touch on B moves the expiry A has cached.
	cached(t, a, "r", h("t4"))
	exp := time.Now().Add(time.Hour).Round(time.Millisecond)
	must(t, b.Touch(ctx, "r", h("t4"), exp))
	until(t, "touch on B, new expiry on A", time.Now(), func() bool {
		got, err := a.Get(ctx, "r", h("t4"))
		return err == nil && got.Expires.Equal(exp)
	})
}

// TestRedisCacheConcurrent: 64 clients validate on node B while node A
// revokes and supersedes; no answer begun after the bound is stale, and
// the latest stale answer is reported.
func TestRedisCacheConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := redisOpts(sharedRedis(t))
	a, b := openRedis(t, o), openRedis(t, o)
	const users, clients = 16, 64
	h := func(u, n int) tokens.Hash { return tokens.HashToken(fmt.Sprint(u, "/", n)) }
	for u := range users {
		must(t, issued(a.Issue(ctx, "r", h(u, 0), tokens.Record{User: strconv.Itoa(u), Identity: "x\n"}, 1)))
		cached(t, b, "r", h(u, 0))
	}
	// changed[u] is when A's revoke or supersede of user u's token returned.
	var mu sync.Mutex
	changed := make([]time.Time, users)
	var worst time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := (c + i) % users
				begun := time.Now()
				got, err := b.Get(ctx, "r", h(u, 0))
				if err != nil && !errors.Is(err, tokens.ErrNotFound) {
					t.Error(err)
					return
				}
				stale := err == nil && !got.Superseded // still current
				mu.Lock()
				if at := changed[u]; stale && !at.IsZero() && begun.After(at) {
					worst = max(worst, begun.Sub(at))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	for u := range users {
		var err error
		if u%2 == 0 {
			err = a.Revoke(ctx, "r", h(u, 0))
		} else {
			err = issued(a.Issue(ctx, "r", h(u, 1), tokens.Record{User: strconv.Itoa(u), Identity: "x\n"}, 1))
		}
		must(t, err)
		mu.Lock()
		changed[u] = time.Now()
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	hits, misses := tokens.RedisCacheStats(b)
	t.Logf("64 clients on B: latest stale answer began %s after the change returned on A (0: none); cache hits %d, misses %d", worst, hits, misses)
	if worst > time.Second {
		t.Fatalf("B answered from a stale cache %s after the change", worst)
	}
	for u := range users {
		got, err := b.Get(ctx, "r", h(u, 0))
		if u%2 == 0 && !errors.Is(err, tokens.ErrNotFound) || u%2 == 1 && (err != nil || !got.Superseded) {
			t.Errorf("user %d after the run: got %+v, %v", u, got, err)
		}
	}
}

// TestRedisCacheExpiry: a cached record past its expiry is not answered,
// even while Redis still holds it.
func TestRedisCacheExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openRedis(t, redisOpts(sharedRedis(t)))
	h := tokens.HashToken("exp")
	rec := tokens.Record{User: "alice", Identity: "alice\npam\n", Expires: time.Now().Add(time.Hour)}
	must(t, issued(s.Issue(ctx, "r", h, rec, 1)))
	cached(t, s, "r", h)
	tokens.SetRedisClock(s, func() time.Time { return time.Now().Add(2 * time.Hour) })
	hits, _ := tokens.RedisCacheStats(s)
	if _, err := s.Get(ctx, "r", h); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("cached token past its expiry: got %v, want ErrNotFound", err)
	}
	if h2, _ := tokens.RedisCacheStats(s); h2 == hits {
		t.Fatal("the expired token was not answered from the cache: the test tests nothing")
	}
}

// TestRedisNoCache runs the conformance suite with the cache off, the
// path every call takes in cluster mode.
func TestRedisNoCache(t *testing.T) {
	t.Parallel()
	addr := sharedRedis(t)
	storetest.Run(t, func(t *testing.T) tokens.Store {
		o := redisOpts(addr)
		o.CacheSize = -1
		return openRedis(t, o)
	})
}

// TestRedisCacheKill: with Redis killed, a node that had the token cached
// answers ErrUnavailable, not YES from memory; Redis restarted empty, it
// answers NO, not the token it had cached.
func TestRedisCacheKill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startOwnRedis(t)
	p, s := r.p, r.s
	h := tokens.HashToken("tok")
	must(t, issued(s.Issue(ctx, "r", h, tokens.Record{User: "alice", Identity: "alice\npam\n"}, 1)))
	cached(t, s, "r", h)
	p.Kill()
	killed := time.Now()
	for {
		_, err := s.Get(ctx, "r", h)
		if errors.Is(err, tokens.ErrUnavailable) {
			break
		}
		if err != nil {
			t.Fatalf("Get with redis killed: got %v, want ErrUnavailable", err)
		}
		if time.Since(killed) > time.Second {
			t.Fatal("still answering YES from the cache 1s after redis was killed")
		}
	}
	t.Logf("cache bypassed %s after redis was killed", time.Since(killed))
	r.restart(t) // empty: --save ''
	start := time.Now()
	for {
		_, err := s.Get(ctx, "r", h)
		if errors.Is(err, tokens.ErrNotFound) {
			break
		}
		if err == nil {
			t.Fatal("a token lost with redis answered YES after the restart")
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no answer within 10s of the restart: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Tracking comes back and the cache serves again.
	must(t, issued(s.Issue(ctx, "r", h, tokens.Record{User: "alice", Identity: "alice\npam\n"}, 1)))
	cached(t, s, "r", h)
	t.Logf("cache serving again %s after the restart", time.Since(start))
}

// TestRedisCacheFreeze: with Redis frozen (nothing answers, connections
// stay open), the cache stops answering within its staleness bound
// (generous slack in the assertion), so a partitioned node cannot answer
// YES for long after a revoke it cannot hear of. Thawed, it serves again.
func TestRedisCacheFreeze(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startOwnRedis(t)
	p, s := r.p, r.s
	h := tokens.HashToken("tok")
	must(t, issued(s.Issue(ctx, "r", h, tokens.Record{User: "alice", Identity: "alice\npam\n"}, 1)))
	cached(t, s, "r", h)
	p.Freeze(t)
	frozen := time.Now()
	var lastHit time.Duration
	for {
		hits, _ := tokens.RedisCacheStats(s)
		_, err := s.Get(ctx, "r", h)
		if h2, _ := tokens.RedisCacheStats(s); h2 > hits {
			lastHit = time.Since(frozen)
		}
		if errors.Is(err, tokens.ErrUnavailable) {
			break
		}
		if err != nil {
			t.Fatalf("Get with redis frozen: got %v, want ErrUnavailable", err)
		}
		if time.Since(frozen) > time.Second {
			t.Fatal("still answering from the cache 1s after redis froze")
		}
	}
	t.Logf("last answer from the cache %s after redis froze (bound %s)", lastHit, tokens.DefaultRedisCacheStaleness)
	if lastHit > time.Second {
		t.Fatalf("answered from the cache %s after the freeze", lastHit)
	}
	p.Thaw(t)
	cached(t, s, "r", h)
}

// percentiles is for logs: the median and maximum of ds.
func percentiles(ds []time.Duration) (time.Duration, time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[len(ds)-1]
}

// TestRedisCacheRevokeLatency measures, over 50 tokens cached on node B,
// the time from a revoke returning on node A to B answering NO.
func TestRedisCacheRevokeLatency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := redisOpts(sharedRedis(t))
	a, b := openRedis(t, o), openRedis(t, o)
	var ds []time.Duration
	for i := range 50 {
		h := tokens.HashToken(fmt.Sprint("lat", i))
		must(t, issued(a.Issue(ctx, "r", h, tokens.Record{User: fmt.Sprint("u", i), Identity: "x\n"}, 1)))
		cached(t, b, "r", h)
		must(t, a.Revoke(ctx, "r", h))
		start := time.Now()
		for {
			if _, err := b.Get(ctx, "r", h); errors.Is(err, tokens.ErrNotFound) {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("token %d: B still answers 1s after the revoke on A", i)
			}
		}
		ds = append(ds, time.Since(start))
	}
	med, worst := percentiles(ds)
	t.Logf("revoke on A to NO on B over 50 tokens: median %s, max %s", med, worst)
}

// TestRedisCacheNoPermission: an ACL user that may not run CLIENT gets a
// working store without a cache, not an error.
func TestRedisCacheNoPermission(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	addr := sharedRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: addr, Password: redisPassword})
	defer admin.Close()
	must(t, admin.Do(ctx, "ACL", "SETUSER", "nocache", "on", ">nocache-pw", "~*", "&*", "+@all", "-client").Err())
	o := redisOpts(addr)
	o.Username, o.Password = "nocache", "nocache-pw"
	s := openRedis(t, o)
	h := tokens.HashToken("np")
	must(t, issued(s.Issue(ctx, "r", h, tokens.Record{User: "alice", Identity: "alice\npam\n"}, 1)))
	for range 20 {
		if _, err := s.Get(ctx, "r", h); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if tokens.RedisCacheFresh(s) {
		t.Fatal("cache answering although tracking cannot be set up")
	}
	must(t, s.Revoke(ctx, "r", h))
	if _, err := s.Get(ctx, "r", h); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("after revoke: %v", err)
	}
}

// TestRedisCacheTrackingDropped: when only the tracking connection drops
// (a network blip; here CLIENT KILL) and a revoke follows at once, the
// other node does not keep answering YES: within the staleness bound it
// asks Redis, and tracking comes back by itself.
func TestRedisCacheTrackingDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	port := testrig.FreePort(t)
	startRedis(t, dir, port)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	o := redisOpts(addr)
	a, b := openRedis(t, o), openRedis(t, o)
	admin := redis.NewClient(&redis.Options{Addr: addr, Password: redisPassword})
	defer admin.Close()
	rec := tokens.Record{User: "alice", Identity: "alice\npam\n"}
	for i := range 5 {
		h := tokens.HashToken(fmt.Sprint("drop", i))
		must(t, issued(a.Issue(ctx, "r", h, rec, 1)))
		cached(t, b, "r", h)
		// B's tracking connection is up (cached waited for it); A's may
		// still be coming back from the previous round.
		n, err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Int()
		if err != nil || n < 1 {
			t.Fatalf("CLIENT KILL TYPE pubsub: %d, %v; want B's tracking connection killed", n, err)
		}
		must(t, a.Revoke(ctx, "r", h))
		until(t, "revoke right after the tracking connection dropped, NO on B", time.Now(), func() bool {
			_, err := b.Get(ctx, "r", h)
			return errors.Is(err, tokens.ErrNotFound)
		})
	}
	// Tracking is back: a new token is served from the cache again.
	h := tokens.HashToken("back")
	must(t, issued(a.Issue(ctx, "r", h, rec, 1)))
	cached(t, b, "r", h)
}

// TestRedisCacheCloseAtOnce: a store closed right after it opened, while
// its tracking connection is still subscribing, closes promptly (Close
// used to wait forever when it came between Subscribe and the receive loop).
func TestRedisCacheCloseAtOnce(t *testing.T) {
	t.Parallel()
	o := redisOpts(sharedRedis(t))
	for i := range 100 {
		s, err := tokens.OpenRedis(context.Background(), o, nil)
		must(t, err)
		if i%2 == 1 {
			time.Sleep(time.Duration(i%7) * time.Millisecond)
		}
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Close %d did not return within 5s", i)
		}
	}
}
