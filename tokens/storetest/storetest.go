// Package storetest is the conformance suite every tokens.Store passes:
// badger on disk, badger in memory, and Redis run the same cases.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sks/tokens"
)

// Opener returns a fresh, empty store for one subtest.
type Opener func(t *testing.T) tokens.Store

func rec(user, source string) tokens.Record {
	return tokens.Record{User: user, Identity: user + "\n" + source + "\n", Issued: time.Now().Round(0)}
}

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	h := func(s string) tokens.Hash { return tokens.HashToken(s) }

	t.Run("IssueGetSupersede", func(t *testing.T) {
		s := open(t)
		if _, err := s.Get(ctx, "r", h("a")); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("Get unknown: got %v, want ErrNotFound", err)
		}
		r1 := rec("alice", "pam")
		r1.Roles = []string{"staff", "admins"}
		if err := s.Issue(ctx, "r", h("a"), r1); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "r", h("a"))
		if err != nil || got.Superseded || got.Identity != r1.Identity || got.User != "alice" ||
			len(got.Roles) != 2 || got.Roles[1] != "admins" || !got.Issued.Equal(r1.Issued) {
			t.Fatalf("Get: got %+v, %v; want %+v current", got, err, r1)
		}
		if _, err := s.Get(ctx, "other", h("a")); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("Get in another realm: got %v, want ErrNotFound", err)
		}
		if err := s.Issue(ctx, "r", h("b"), rec("alice", "pam")); err != nil {
			t.Fatal(err)
		}
		if err := s.Issue(ctx, "r", h("c"), rec("alice", "pam")); err != nil {
			t.Fatal(err)
		}
		for tok, sup := range map[string]bool{"a": true, "b": true, "c": false} {
			got, err := s.Get(ctx, "r", h(tok))
			if err != nil || got.Superseded != sup {
				t.Errorf("token %s: got superseded=%v err=%v, want %v", tok, got.Superseded, err, sup)
			}
		}
		// Another user and another realm are unaffected.
		if err := s.Issue(ctx, "r", h("d"), rec("bob", "pam")); err != nil {
			t.Fatal(err)
		}
		if err := s.Issue(ctx, "r2", h("e"), rec("alice", "pam")); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "r", h("c")); got.Superseded {
			t.Error("login of bob or of alice in r2 superseded alice's token in r")
		}
	})

	t.Run("RevokeAndReplace", func(t *testing.T) {
		s := open(t)
		must(t, s.Issue(ctx, "r", h("a"), rec("alice", "pam")))
		must(t, s.Issue(ctx, "r", h("b"), rec("alice", "pam")))
		if _, err := s.Replace(ctx, "r", h("a"), h("x"), time.Now(), time.Time{}); !errors.Is(err, tokens.ErrNotCurrent) {
			t.Fatalf("Replace superseded: got %v, want ErrNotCurrent", err)
		}
		if _, err := s.Replace(ctx, "r", h("zz"), h("x"), time.Now(), time.Time{}); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("Replace unknown: got %v, want ErrNotFound", err)
		}
		got, err := s.Replace(ctx, "r", h("b"), h("c"), time.Now(), time.Time{})
		if err != nil || got.Identity != "alice\npam\n" {
			t.Fatalf("Replace current: got %+v, %v", got, err)
		}
		if _, err := s.Get(ctx, "r", h("b")); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("replaced token still known: %v", err)
		}
		if got, err := s.Get(ctx, "r", h("c")); err != nil || got.Superseded {
			t.Fatalf("new token: got %+v, %v; want current", got, err)
		}
		// Revoke a superseded token: allowed, the current one stays current.
		must(t, s.Revoke(ctx, "r", h("a")))
		if got, err := s.Get(ctx, "r", h("c")); err != nil || got.Superseded {
			t.Fatalf("after revoking a superseded token: got %+v, %v", got, err)
		}
		if err := s.Revoke(ctx, "r", h("a")); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("second revoke: got %v, want ErrNotFound", err)
		}
		// Revoke the current one: the user has no current token; a new login works.
		must(t, s.Revoke(ctx, "r", h("c")))
		must(t, s.Issue(ctx, "r", h("d"), rec("alice", "pam")))
		if got, err := s.Get(ctx, "r", h("d")); err != nil || got.Superseded {
			t.Fatalf("login after revoke: got %+v, %v", got, err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		s := open(t)
		r := rec("alice", "pam")
		r.Expires = time.Now().Add(1500 * time.Millisecond)
		must(t, s.Issue(ctx, "r", h("a"), r))
		if _, err := s.Get(ctx, "r", h("a")); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		time.Sleep(1600 * time.Millisecond)
		if _, err := s.Get(ctx, "r", h("a")); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("after expiry: got %v, want ErrNotFound", err)
		}
		// An expired current token does not block a new login.
		must(t, s.Issue(ctx, "r", h("b"), rec("alice", "pam")))
		if got, err := s.Get(ctx, "r", h("b")); err != nil || got.Superseded {
			t.Fatalf("login after expiry: %+v, %v", got, err)
		}
	})

	t.Run("TouchExtendsExpiry", func(t *testing.T) {
		s := open(t)
		r := rec("alice", "pam")
		r.Expires = time.Now().Add(1500 * time.Millisecond)
		must(t, s.Issue(ctx, "r", h("a"), r))
		must(t, s.Touch(ctx, "r", h("a"), time.Now().Add(time.Hour)))
		must(t, s.Touch(ctx, "r", h("unknown"), time.Now().Add(time.Hour)))
		time.Sleep(1600 * time.Millisecond)
		got, err := s.Get(ctx, "r", h("a"))
		if err != nil || got.Superseded || got.Identity != r.Identity || got.Expires.Before(time.Now().Add(50*time.Minute)) {
			t.Fatalf("after touch and the old expiry: got %+v, %v", got, err)
		}
		// The current pointer was extended too: a new login supersedes it.
		must(t, s.Issue(ctx, "r", h("b"), rec("alice", "pam")))
		if got, err := s.Get(ctx, "r", h("a")); err != nil || !got.Superseded {
			t.Fatalf("touched token after a new login: got %+v, %v; want superseded", got, err)
		}
		// A touch keeps the superseded flag.
		must(t, s.Touch(ctx, "r", h("a"), time.Now().Add(2*time.Hour)))
		if got, _ := s.Get(ctx, "r", h("a")); !got.Superseded {
			t.Fatal("touch cleared the superseded flag")
		}
		// A touch after revoke does not bring the token back.
		must(t, s.Revoke(ctx, "r", h("a")))
		must(t, s.Touch(ctx, "r", h("a"), time.Now().Add(time.Hour)))
		if _, err := s.Get(ctx, "r", h("a")); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("revoked token after touch: %v", err)
		}
	})

	t.Run("Keys", func(t *testing.T) {
		s := open(t)
		if _, err := s.GetKey(ctx, "r", "alice\npam\n"); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("GetKey unknown: %v", err)
		}
		must(t, s.PutKey(ctx, "r", "alice\npam\n", []byte("k1")))
		must(t, s.PutKey(ctx, "r", "alice\npam\n", []byte("k2")))
		must(t, s.PutKey(ctx, "r", "bob\npam\n", []byte("k3")))
		must(t, s.PutKey(ctx, "r2", "carol\npam\n", []byte("k4")))
		if k, err := s.GetKey(ctx, "r", "alice\npam\n"); err != nil || string(k) != "k2" {
			t.Fatalf("GetKey: got %q, %v; want k2", k, err)
		}
		got := map[string]string{}
		must(t, s.ForEachKey(ctx, "r", func(id string, k []byte) error { got[id] = string(k); return nil }))
		if len(got) != 2 || got["bob\npam\n"] != "k3" {
			t.Fatalf("ForEachKey: got %q", got)
		}
	})

	t.Run("Groups", func(t *testing.T) {
		s := open(t)
		must(t, s.CreateGroup(ctx, "r", "g", "alice", []byte("key")))
		if err := s.CreateGroup(ctx, "r2", "g", "bob", []byte("key2")); !errors.Is(err, tokens.ErrGroupExists) {
			t.Fatalf("CreateGroup in another realm: got %v, want ErrGroupExists", err)
		}
		if a, m, err := s.GroupRole(ctx, "r", "g", "alice"); err != nil || !a || m {
			t.Fatalf("creator: admin=%v member=%v err=%v", a, m, err)
		}
		if a, _, _ := s.GroupRole(ctx, "r2", "g", "alice"); a {
			t.Fatal("admin in another realm")
		}
		must(t, s.ModGroup(ctx, "r", "g", []string{"bob", "carol"}, []string{"dave"}, nil))
		must(t, s.ModGroup(ctx, "r", "g", nil, nil, []string{"carol", "dave"}))
		for user, want := range map[string][2]bool{"bob": {false, true}, "carol": {}, "dave": {}, "alice": {true, false}} {
			a, m, err := s.GroupRole(ctx, "r", "g", user)
			if err != nil || a != want[0] || m != want[1] {
				t.Errorf("%s: admin=%v member=%v err=%v; want %v", user, a, m, err, want)
			}
		}
		if k, err := s.GroupKey(ctx, "g"); err != nil || !bytes.Equal(k, []byte("key")) {
			t.Fatalf("GroupKey: %q, %v", k, err)
		}
		if _, err := s.GroupKey(ctx, "nope"); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("GroupKey unknown: %v", err)
		}
	})

	t.Run("ConcurrentLoginsOfOneUser", func(t *testing.T) {
		s := open(t)
		const n = 32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Issue(ctx, "r", h(fmt.Sprint("tok", i)), rec("alice", "pam"))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err)
		}
		current := 0
		for i := range n {
			got, err := s.Get(ctx, "r", h(fmt.Sprint("tok", i)))
			must(t, err)
			if !got.Superseded {
				current++
			}
		}
		if current != 1 {
			t.Fatalf("got %d current tokens after %d concurrent logins of one user, want exactly 1", current, n)
		}
	})

	t.Run("ConcurrentDistinctUsersLoseNothing", func(t *testing.T) {
		s := open(t)
		const workers, per = 16, 50
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					tok := fmt.Sprintf("w%d-%d", w, i)
					if err := s.Issue(ctx, "r", h(tok), rec(tok, "stored")); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		for w := range workers {
			for i := range per {
				tok := fmt.Sprintf("w%d-%d", w, i)
				if got, err := s.Get(ctx, "r", h(tok)); err != nil || got.Superseded {
					t.Fatalf("token %s lost: %+v, %v", tok, got, err)
				}
			}
		}
	})

	t.Run("Close", func(t *testing.T) {
		s := open(t)
		must(t, s.Close())
		if _, err := s.Get(ctx, "r", h("a")); !errors.Is(err, tokens.ErrClosed) {
			t.Fatalf("Get after Close: got %v, want ErrClosed", err)
		}
		must(t, s.Close())
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
