package tokens_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sks-server/sks/tokens"
	"github.com/sks-server/sks/tokens/storetest"
)

func openBadger(t testing.TB, dir string) *tokens.Badger {
	t.Helper()
	s, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBadgerOnDisk(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) tokens.Store { return openBadger(t, t.TempDir()) })
}

func TestBadgerInMemory(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) tokens.Store { return openBadger(t, "") })
}

func TestBadgerEncrypted(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) tokens.Store {
		s, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: t.TempDir(), EncryptionKey: []byte("0123456789abcdef0123456789abcdef")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestBadgerReopen: what was written is there after a clean close and reopen,
// keys included (losing a /gen_key key loses the user's encrypted data).
func TestBadgerReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openBadger(t, dir)
	h := tokens.HashToken("tok")
	if err := issued(s.Issue(ctx, "r", h, tokens.Record{User: "u", Identity: "u\npam\n"}, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKey(ctx, "u\npam\n", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openBadger(t, dir)
	if got, err := s.Get(ctx, "r", h); err != nil || got.Identity != "u\npam\n" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if k, err := s.GetKey(ctx, "u\npam\n"); err != nil || string(k) != "secret" {
		t.Fatalf("key after reopen: %q, %v", k, err)
	}
}

// BenchmarkBadgerIssueDurable: durable issues on disk, the store's share
// of the /stored_token and /auth_token cost (see benchIssue).
func BenchmarkBadgerIssueDurable(b *testing.B) {
	benchIssue(b, func(b *testing.B) tokens.Store { return openBadger(b, b.TempDir()) })
}

// TestCacheNeverStale: validations racing with supersedes, replaces and
// revokes never see an answer older than the last acknowledged write.
func TestCacheNeverStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openBadger(t, "")
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s.Get(ctx, "r", tokens.HashToken(fmt.Sprint("t", i%50)))
			}
		}()
	}
	for i := range 50 {
		a, b := tokens.HashToken(fmt.Sprint("t", i)), tokens.HashToken(fmt.Sprint("u", i))
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(issued(s.Issue(ctx, "r", a, tokens.Record{User: "alice", Identity: "alice\npam\n"}, 1)))
		if got, err := s.Get(ctx, "r", a); err != nil || got.Superseded {
			t.Fatalf("round %d: fresh token %+v, %v", i, got, err)
		}
		must(issued(s.Issue(ctx, "r", b, tokens.Record{User: "alice", Identity: "alice\npam\n"}, 1)))
		if got, err := s.Get(ctx, "r", a); err != nil || !got.Superseded {
			t.Fatalf("round %d: after a new login the old token is %+v, %v; want superseded", i, got, err)
		}
		must(s.Revoke(ctx, "r", a))
		if _, err := s.Get(ctx, "r", a); err == nil {
			t.Fatalf("round %d: revoked token still answered", i)
		}
	}
	close(stop)
	readers.Wait()
}

// issued drops the superseded hashes of Store.Issue where a test does not
// look at them.
func issued(_ []tokens.Hash, err error) error { return err }
