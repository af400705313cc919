package tokens_test

import (
	"context"
	"testing"

	"sks/tokens"
	"sks/tokens/storetest"
)

func openBadger(t *testing.T, dir string) *tokens.Badger {
	t.Helper()
	s, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBadgerOnDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tokens.Store { return openBadger(t, t.TempDir()) })
}

func TestBadgerInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tokens.Store { return openBadger(t, "") })
}

func TestBadgerEncrypted(t *testing.T) {
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
	ctx := context.Background()
	dir := t.TempDir()
	s := openBadger(t, dir)
	h := tokens.HashToken("tok")
	if err := s.Issue(ctx, "r", h, tokens.Record{User: "u", Identity: "u\npam\n"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKey(ctx, "r", "u\npam\n", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openBadger(t, dir)
	if got, err := s.Get(ctx, "r", h); err != nil || got.Identity != "u\npam\n" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if k, err := s.GetKey(ctx, "r", "u\npam\n"); err != nil || string(k) != "secret" {
		t.Fatalf("key after reopen: %q, %v", k, err)
	}
}
