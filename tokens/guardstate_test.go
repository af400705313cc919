package tokens_test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestDumpSkipsGuardState: login failures and bans kept in a store (badger
// write-through, Redis shared state) are not tokens: a dump, and so a
// migration, passes over them instead of failing on an unknown key.
func TestDumpSkipsGuardState(t *testing.T) {
	ctx := context.Background()
	b := openBadger(t, t.TempDir())
	seedStore(t, b)
	want := dumpAll(t, b)
	if err := b.GuardPut(ctx, "u:1:r:alice", []byte{1, 2, 3}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := dumpAll(t, b); !slices.Equal(got, want) {
		t.Fatalf("badger dump with guard state:\n got %q\nwant %q", got, want)
	}
	var keys []string
	if err := b.GuardLoad(ctx, func(k string, v []byte) error { keys = append(keys, k); return nil }); err != nil || !slices.Equal(keys, []string{"u:1:r:alice"}) {
		t.Fatalf("GuardLoad: %q %v", keys, err)
	}
	if err := b.GuardDelete(ctx, "u:1:r:alice"); err != nil {
		t.Fatal(err)
	}

	r := openRedis(t, redisOpts(sharedRedis(t)))
	seedStore(t, r)
	want = dumpAll(t, r)
	c, prefix, err := r.GuardClient()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, prefix+"{guard}:u:1:r:alice:f", "3", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if got := dumpAll(t, r); !slices.Equal(got, want) {
		t.Fatalf("redis dump with guard state:\n got %q\nwant %q", got, want)
	}
}
