package tokens_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sks-server/sks/tokens"
)

// TestRedisSessionsCorruptList: a user's list that is not hex hashes fails
// listing and revoking all with an error naming it, and revokes nothing.
func TestRedisSessionsCorruptList(t *testing.T) {
	ctx := context.Background()
	addr := sharedRedis(t)
	o := redisOpts(addr)
	o.KeyPrefix = "sessions-corrupt:"
	s := openRedis(t, o)
	h := tokens.HashToken
	rec := tokens.Record{User: "alice", Identity: "alice\npam\n"}
	must(t, issued(s.Issue(ctx, "r", h("a"), rec, 1)))
	c := redis.NewClient(&redis.Options{Addr: addr, Password: redisPassword})
	defer c.Close()
	must(t, c.Set(ctx, o.KeyPrefix+"{r:r}:u:alice", "not-hex", 0).Err())
	if _, err := s.Sessions(ctx, "r", "alice"); err == nil || !strings.Contains(err.Error(), `list sessions of "alice"`) {
		t.Errorf("Sessions with a corrupt list: got %v, want an error naming the list", err)
	}
	if _, err := s.RevokeAll(ctx, "r", "alice"); err == nil || !strings.Contains(err.Error(), `list sessions of "alice"`) {
		t.Errorf("RevokeAll with a corrupt list: got %v, want an error naming the list", err)
	}
	if got, err := s.Get(ctx, "r", h("a")); err != nil || got.Superseded {
		t.Errorf("token after the failed calls: %+v, %v; want unchanged", got, err)
	}
}

// TestRedisSessionsOutage: with Redis down, listing and revoking all fail
// with ErrUnavailable (503), within the timeout.
func TestRedisSessionsOutage(t *testing.T) {
	ctx := context.Background()
	r := startOwnRedis(t)
	p, o, s := r.p, r.o, r.s
	must(t, issued(s.Issue(ctx, "r", tokens.HashToken("tok"), tokens.Record{User: "alice", Identity: "alice\npam\n"}, 1)))
	p.Kill()
	for name, call := range map[string]func() error{
		"Sessions":  func() error { _, err := s.Sessions(ctx, "r", "alice"); return err },
		"RevokeAll": func() error { _, err := s.RevokeAll(ctx, "r", "alice"); return err },
	} {
		start := time.Now()
		if err := call(); !errors.Is(err, tokens.ErrUnavailable) {
			t.Errorf("%s with redis down: got %v, want ErrUnavailable", name, err)
		}
		if took := time.Since(start); took > o.Timeout+250*time.Millisecond {
			t.Errorf("%s with redis down took %s, want within the %s timeout", name, took, o.Timeout)
		}
	}
}

// TestRedisRevokeAllSeenByOtherNode: sign out everywhere on one node ends
// the sessions for every node sharing the Redis.
func TestRedisRevokeAllSeenByOtherNode(t *testing.T) {
	ctx := context.Background()
	o := redisOpts(sharedRedis(t))
	o.KeyPrefix = "sessions-two-nodes:"
	a, b := openRedis(t, o), openRedis(t, o)
	h := tokens.HashToken
	for _, tok := range []string{"x", "y"} {
		must(t, issued(a.Issue(ctx, "r", h(tok), tokens.Record{User: "alice", Identity: "alice\npam\n"}, 2)))
	}
	if got, err := b.Get(ctx, "r", h("x")); err != nil || got.Superseded {
		t.Fatalf("x on node b before: %+v, %v", got, err)
	}
	if got, err := a.RevokeAll(ctx, "r", "alice"); err != nil || len(got) != 2 {
		t.Fatalf("RevokeAll on node a: %d, %v", len(got), err)
	}
	for _, tok := range []string{"x", "y"} {
		if _, err := b.Get(ctx, "r", h(tok)); !errors.Is(err, tokens.ErrNotFound) {
			t.Errorf("%s on node b after RevokeAll on a: got %v, want ErrNotFound", tok, err)
		}
	}
}
