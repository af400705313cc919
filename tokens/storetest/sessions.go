package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sks-server/sks/tokens"
)

// runSessions checks listing a user's sessions and revoking them all
// ("sign out everywhere").
func runSessions(t *testing.T, open Opener) {
	ctx := context.Background()
	h := func(s string) tokens.Hash { return tokens.HashToken(s) }
	hashes := func(ss []tokens.Session) []tokens.Hash {
		out := make([]tokens.Hash, len(ss))
		for i, x := range ss {
			out[i] = x.Hash
		}
		return out
	}
	want := func(toks ...string) []tokens.Hash {
		out := make([]tokens.Hash, len(toks))
		for i, x := range toks {
			out[i] = h(x)
		}
		return out
	}

	t.Run("SessionsList", func(t *testing.T) {
		s := open(t)
		if got, err := s.Sessions(ctx, "r", "alice"); err != nil || len(got) != 0 {
			t.Fatalf("Sessions of a user without any: got %v, %v; want none", got, err)
		}
		exp := time.Now().Add(time.Hour).Round(0)
		r := rec("alice", "auth/ldap")
		r.Expires = exp
		must(t, issued(s.Issue(ctx, "r", h("a"), r, 3)))
		must(t, issued(s.Issue(ctx, "r", h("b"), rec("alice", "pam"), 3)))
		must(t, issued(s.Issue(ctx, "r", h("c"), rec("alice", "pam"), 3)))
		must(t, issued(s.Issue(ctx, "r", h("bob"), rec("bob", "pam"), 3)))
		must(t, issued(s.Issue(ctx, "r2", h("a2"), rec("alice", "pam"), 3)))
		got, err := s.Sessions(ctx, "r", "alice")
		must(t, err)
		if !slices.Equal(hashes(got), want("a", "b", "c")) {
			t.Fatalf("Sessions: got %d sessions %v, want a, b, c oldest first", len(got), hashes(got))
		}
		if got[0].Source() != "auth/ldap" || got[0].Record.User != "alice" || !got[0].Record.Expires.Equal(exp) || got[0].Record.Issued.IsZero() {
			t.Fatalf("first session: got %+v (source %q), want alice auth/ldap expiring %v", got[0].Record, got[0].Source(), exp)
		}
		if !got[1].Record.Expires.IsZero() {
			t.Fatalf("session without expiry: got expires %v", got[1].Record.Expires)
		}
		// A login beyond the cap supersedes a, which leaves the list; a
		// revoked session leaves it too; a replaced one is the newest.
		must(t, issued(s.Issue(ctx, "r", h("d"), rec("alice", "pam"), 3)))
		must(t, s.Revoke(ctx, "r", h("c")))
		if _, err := s.Replace(ctx, "r", h("b"), h("e"), time.Now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
		got, err = s.Sessions(ctx, "r", "alice")
		must(t, err)
		if !slices.Equal(hashes(got), want("d", "e")) {
			t.Fatalf("after supersede, revoke and replace: got %v, want d, e", hashes(got))
		}
	})

	t.Run("SessionsLeaveOutExpired", func(t *testing.T) {
		s := open(t)
		r := rec("alice", "pam")
		r.Expires = time.Now().Add(1200 * time.Millisecond)
		must(t, issued(s.Issue(ctx, "r", h("a"), r, 2)))
		must(t, issued(s.Issue(ctx, "r", h("b"), rec("alice", "pam"), 2)))
		time.Sleep(1300 * time.Millisecond)
		got, err := s.Sessions(ctx, "r", "alice")
		must(t, err)
		if !slices.Equal(hashes(got), want("b")) {
			t.Fatalf("after a's expiry: got %v, want b alone", hashes(got))
		}
	})

	t.Run("RevokeAll", func(t *testing.T) {
		s := open(t)
		if got, err := s.RevokeAll(ctx, "r", "nobody"); err != nil || len(got) != 0 {
			t.Fatalf("RevokeAll of a user without sessions: got %v, %v; want none", got, err)
		}
		must(t, issued(s.Issue(ctx, "r", h("a"), rec("alice", "pam"), 3)))
		must(t, issued(s.Issue(ctx, "r", h("b"), rec("alice", "pam"), 3)))
		must(t, issued(s.Issue(ctx, "r", h("c"), rec("alice", "pam"), 3)))
		must(t, issued(s.Issue(ctx, "r", h("d"), rec("alice", "pam"), 3))) // supersedes a
		must(t, issued(s.Issue(ctx, "r", h("bob"), rec("bob", "pam"), 3)))
		must(t, issued(s.Issue(ctx, "r2", h("a2"), rec("alice", "pam"), 3)))
		// Read b first, so that a store with a cache has it cached.
		if got, err := s.Get(ctx, "r", h("b")); err != nil || got.Superseded {
			t.Fatalf("b before RevokeAll: %+v, %v", got, err)
		}
		got, err := s.RevokeAll(ctx, "r", "alice")
		must(t, err)
		slices.SortFunc(got, func(x, y tokens.Hash) int { return slices.Compare(x[:], y[:]) })
		w := want("b", "c", "d")
		slices.SortFunc(w, func(x, y tokens.Hash) int { return slices.Compare(x[:], y[:]) })
		if !slices.Equal(got, w) {
			t.Fatalf("RevokeAll: got %d hashes, want b, c, d", len(got))
		}
		for _, tok := range []string{"b", "c", "d"} {
			if _, err := s.Get(ctx, "r", h(tok)); !errors.Is(err, tokens.ErrNotFound) {
				t.Errorf("token %s after RevokeAll: got %v, want ErrNotFound", tok, err)
			}
		}
		if got, err := s.Get(ctx, "r", h("a")); err != nil || !got.Superseded {
			t.Errorf("superseded token after RevokeAll: got %+v, %v; want still superseded", got, err)
		}
		for _, x := range []struct{ realm, tok string }{{"r", "bob"}, {"r2", "a2"}} {
			if got, err := s.Get(ctx, x.realm, h(x.tok)); err != nil || got.Superseded {
				t.Errorf("%s in %s after alice's RevokeAll in r: got %+v, %v; want current", x.tok, x.realm, got, err)
			}
		}
		if ss, err := s.Sessions(ctx, "r", "alice"); err != nil || len(ss) != 0 {
			t.Fatalf("Sessions after RevokeAll: got %v, %v; want none", hashes(ss), err)
		}
		// A new login afterwards is current, and alone on the list.
		must(t, issued(s.Issue(ctx, "r", h("e"), rec("alice", "pam"), 1)))
		if ss, err := s.Sessions(ctx, "r", "alice"); err != nil || !slices.Equal(hashes(ss), want("e")) {
			t.Fatalf("Sessions after a new login: got %v, %v; want e", hashes(ss), err)
		}
		if got, err := s.RevokeAll(ctx, "r", "alice"); err != nil || len(got) != 1 {
			t.Fatalf("second RevokeAll: got %d, %v; want 1", len(got), err)
		}
	})

	t.Run("RevokeAllConcurrentWithLogins", func(t *testing.T) {
		s := open(t)
		for i := range 5 {
			must(t, issued(s.Issue(ctx, "r", h(fmt.Sprint("old", i)), rec("alice", "pam"), 5)))
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := s.RevokeAll(ctx, "r", "alice"); err != nil {
				t.Error(err)
			}
		})
		for i := range 5 {
			wg.Go(func() {
				if err := issued(s.Issue(ctx, "r", h(fmt.Sprint("new", i)), rec("alice", "pam"), 5)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		// Every token is either gone or on the list: none is current yet
		// missing from the list, where RevokeAll could not find it.
		ss, err := s.Sessions(ctx, "r", "alice")
		must(t, err)
		listed := hashes(ss)
		for _, p := range []string{"old", "new"} {
			for i := range 5 {
				tok := fmt.Sprint(p, i)
				got, err := s.Get(ctx, "r", h(tok))
				if errors.Is(err, tokens.ErrNotFound) || (err == nil && got.Superseded) {
					continue
				}
				must(t, err)
				if !slices.Contains(listed, h(tok)) {
					t.Errorf("token %s is current but not on the list of sessions", tok)
				}
			}
		}
		if _, err := s.RevokeAll(ctx, "r", "alice"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"old", "new"} {
			for i := range 5 {
				if got, err := s.Get(ctx, "r", h(fmt.Sprint(p, i))); err == nil && !got.Superseded {
					t.Errorf("token %s%d current after a second RevokeAll", p, i)
				}
			}
		}
	})

	t.Run("SessionsClosed", func(t *testing.T) {
		s := open(t)
		must(t, s.Close())
		if _, err := s.Sessions(ctx, "r", "alice"); !errors.Is(err, tokens.ErrClosed) {
			t.Fatalf("Sessions after Close: got %v, want ErrClosed", err)
		}
		if _, err := s.RevokeAll(ctx, "r", "alice"); !errors.Is(err, tokens.ErrClosed) {
			t.Fatalf("RevokeAll after Close: got %v, want ErrClosed", err)
		}
	})
}
