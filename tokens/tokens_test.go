package tokens_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/sks-server/sks/tokens"
)

func TestNewTokenFormat(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 1000 {
		tok, h := tokens.NewToken()
		if !re.MatchString(tok) {
			t.Fatalf("token %q is not 64 lowercase hex characters", tok)
		}
		if h != tokens.HashToken(tok) {
			t.Fatal("hash does not match token")
		}
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
	}
}

// TestStoreHoldsNoUsableToken: a copy of the data directory must not contain
// any token, in hex or raw form (the original stored them in clear).
func TestStoreHoldsNoUsableToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	svc := tokens.NewService(s)
	var issued []string
	for range 20 {
		tok, _, err := svc.Issue(ctx, "realm", "alice", "alice\npam\n", nil, tokens.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, tok)
	}
	// A unique user name proves that the scan reads the store's data: badger
	// compresses blocks, so only a non-repeating marker is sure to stay literal.
	marker, _ := tokens.NewToken()
	marker = "bob-" + marker[:20]
	if _, err := svc.Put(ctx, "realm", "stored-token-chosen-by-caller-0123456789", marker, marker+"\nstored\n", tokens.Policy{}); err != nil {
		t.Fatal(err)
	}
	issued = append(issued, "stored-token-chosen-by-caller-0123456789")
	s.Close()
	var all []byte
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	if !bytes.Contains(all, []byte(marker)) {
		t.Fatal("sanity: identity not found in store files; the scan reads nothing")
	}
	for _, tok := range issued {
		if bytes.Contains(all, []byte(tok)) {
			t.Fatalf("token %s... found in clear in the data directory", tok[:8])
		}
	}
}

func TestServiceStatusAndExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := tokens.OpenBadger(tokens.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	svc := tokens.NewService(s)
	now := time.Now()
	svc.Now = func() time.Time { return now }
	p := tokens.Policy{Lifetime: time.Hour}
	a, _, _ := svc.Issue(ctx, "r", "alice", "alice\npam\n", nil, p)
	b, _, _ := svc.Issue(ctx, "r", "alice", "alice\npam\n", nil, p)
	for _, c := range []struct {
		tok  string
		want tokens.Status
	}{{a, tokens.Superseded}, {b, tokens.Current}, {"nope", tokens.Invalid}} {
		if _, got, err := svc.Validate(ctx, "r", c.tok); err != nil || got != c.want {
			t.Errorf("Validate: got %v, %v; want %v", got, err, c.want)
		}
	}
	now = now.Add(time.Hour + time.Second)
	if _, got, _ := svc.Validate(ctx, "r", b); got != tokens.Invalid {
		t.Fatalf("after lifetime: got %v, want NO", got)
	}
	if _, _, ok, _ := svc.Replace(ctx, "r", b, p); ok {
		t.Fatal("an expired token was replaced")
	}
}

// TestIdleTimeout: a token unused for the idle timeout answers NO; use
// extends it, but never past the absolute lifetime; the extension is
// written only now and then, not on every validation.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	svc := tokens.NewService(s)
	t0 := time.Now()
	now := t0
	svc.Now = func() time.Time { return now }
	p := tokens.Policy{IdleTimeout: 10 * time.Minute, Lifetime: 22 * time.Minute}
	svc.Policies = func(string) tokens.Policy { return p }
	tok, _, err := svc.Issue(ctx, "r", "alice", "alice\npam\n", nil, p)
	if err != nil {
		t.Fatal(err)
	}
	h := tokens.HashToken(tok)
	expiresAt := func() time.Time {
		rec, err := s.Get(ctx, "r", h)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Expires
	}
	if got := expiresAt(); !got.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("initial expiry %v, want issue + idle", got.Sub(t0))
	}
	validate := func(at time.Duration, want tokens.Status) {
		t.Helper()
		now = t0.Add(at)
		if _, got, err := svc.Validate(ctx, "r", tok); err != nil || got != want {
			t.Fatalf("at %v: got %v, %v; want %v", at, got, err, want)
		}
	}
	waitExpiry := func(want time.Time) {
		t.Helper()
		for range 500 {
			if expiresAt().Equal(want) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("expiry stayed %v, want %v", expiresAt().Sub(t0), want.Sub(t0))
	}
	validate(time.Minute, tokens.Current) // gain of 1m < idle/8: no write
	if got := expiresAt(); !got.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("a validation 1 minute in wrote the expiry (%v): writes must be rare", got.Sub(t0))
	}
	validate(5*time.Minute, tokens.Current)
	waitExpiry(t0.Add(15 * time.Minute))
	validate(14*time.Minute, tokens.Current)
	waitExpiry(t0.Add(22 * time.Minute)) // capped by the absolute lifetime
	validate(21*time.Minute, tokens.Current)
	validate(22*time.Minute, tokens.Invalid)

	// Unused for the idle timeout: gone.
	now = t0
	tok2, _, _ := svc.Issue(ctx, "r", "bob", "bob\npam\n", nil, p)
	now = t0.Add(10*time.Minute + time.Second)
	if _, got, _ := svc.Validate(ctx, "r", tok2); got != tokens.Invalid {
		t.Fatalf("idle token: got %v, want NO", got)
	}
}
