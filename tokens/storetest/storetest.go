// Package storetest is the conformance suite every tokens.Store passes:
// badger on disk, badger in memory, and Redis run the same cases.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sks-server/sks/tokens"
)

// Opener returns a fresh, empty store for one subtest.
type Opener func(t *testing.T) tokens.Store

func rec(user, source string) tokens.Record {
	return tokens.Record{User: user, Identity: user + "\n" + source + "\n", Issued: time.Now().Round(0)}
}

// Run runs the whole suite against stores made by open. The subtests run
// in parallel, each on its own store (most of the suite's time is spent
// waiting for real TTLs to pass).
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	h := func(s string) tokens.Hash { return tokens.HashToken(s) }

	t.Run("IssueGetSupersede", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		if _, err := s.Get(ctx, "r", h("a")); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("Get unknown: got %v, want ErrNotFound", err)
		}
		r1 := rec("alice", "pam")
		r1.Roles = []string{"staff", "admins"}
		if err := issued(s.Issue(ctx, "r", h("a"), r1, 1)); err != nil {
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
		if err := issued(s.Issue(ctx, "r", h("b"), rec("alice", "pam"), 1)); err != nil {
			t.Fatal(err)
		}
		if err := issued(s.Issue(ctx, "r", h("c"), rec("alice", "pam"), 1)); err != nil {
			t.Fatal(err)
		}
		for tok, sup := range map[string]bool{"a": true, "b": true, "c": false} {
			got, err := s.Get(ctx, "r", h(tok))
			if err != nil || got.Superseded != sup {
				t.Errorf("token %s: got superseded=%v err=%v, want %v", tok, got.Superseded, err, sup)
			}
		}
		// Another user and another realm are unaffected.
		if err := issued(s.Issue(ctx, "r", h("d"), rec("bob", "pam"), 1)); err != nil {
			t.Fatal(err)
		}
		if err := issued(s.Issue(ctx, "r2", h("e"), rec("alice", "pam"), 1)); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "r", h("c")); got.Superseded {
			t.Error("login of bob or of alice in r2 superseded alice's token in r")
		}
	})

	t.Run("RevokeAndReplace", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		must(t, issued(s.Issue(ctx, "r", h("a"), rec("alice", "pam"), 1)))
		must(t, issued(s.Issue(ctx, "r", h("b"), rec("alice", "pam"), 1)))
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
		must(t, issued(s.Issue(ctx, "r", h("d"), rec("alice", "pam"), 1)))
		if got, err := s.Get(ctx, "r", h("d")); err != nil || got.Superseded {
			t.Fatalf("login after revoke: got %+v, %v", got, err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := rec("alice", "pam")
		r.Expires = time.Now().Add(1500 * time.Millisecond)
		must(t, issued(s.Issue(ctx, "r", h("a"), r, 1)))
		if _, err := s.Get(ctx, "r", h("a")); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		time.Sleep(1600 * time.Millisecond)
		if _, err := s.Get(ctx, "r", h("a")); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("after expiry: got %v, want ErrNotFound", err)
		}
		// An expired current token does not block a new login.
		must(t, issued(s.Issue(ctx, "r", h("b"), rec("alice", "pam"), 1)))
		if got, err := s.Get(ctx, "r", h("b")); err != nil || got.Superseded {
			t.Fatalf("login after expiry: %+v, %v", got, err)
		}
	})

	t.Run("TouchExtendsExpiry", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		r := rec("alice", "pam")
		r.Expires = time.Now().Add(1500 * time.Millisecond)
		must(t, issued(s.Issue(ctx, "r", h("a"), r, 1)))
		must(t, s.Touch(ctx, "r", h("a"), time.Now().Add(time.Hour)))
		must(t, s.Touch(ctx, "r", h("unknown"), time.Now().Add(time.Hour)))
		time.Sleep(1600 * time.Millisecond)
		got, err := s.Get(ctx, "r", h("a"))
		if err != nil || got.Superseded || got.Identity != r.Identity || got.Expires.Before(time.Now().Add(50*time.Minute)) {
			t.Fatalf("after touch and the old expiry: got %+v, %v", got, err)
		}
		// The list of current tokens was extended too: a new login supersedes it.
		must(t, issued(s.Issue(ctx, "r", h("b"), rec("alice", "pam"), 1)))
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

	// current reports, in order, which of toks are current (not superseded).
	current := func(t *testing.T, s tokens.Store, realm string, toks ...string) string {
		t.Helper()
		var b []byte
		for _, tok := range toks {
			got, err := s.Get(ctx, realm, h(tok))
			switch {
			case errors.Is(err, tokens.ErrNotFound):
				b = append(b, '-')
			case err != nil:
				t.Fatalf("Get %s: %v", tok, err)
			case got.Superseded:
				b = append(b, 's')
			default:
				b = append(b, 'C')
			}
		}
		return string(b)
	}

	t.Run("SessionCap", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		// issue logs alice in with token tok and checks which tokens it
		// reports as superseded.
		issue := func(tok string, n int, superseded ...string) {
			t.Helper()
			got, err := s.Issue(ctx, "r", h(tok), rec("alice", "pam"), n)
			must(t, err)
			want := make([]tokens.Hash, len(superseded))
			for i, x := range superseded {
				want[i] = h(x)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("login with %s superseded %d tokens %v, want %v", tok, len(got), got, superseded)
			}
		}
		check := func(want string, toks ...string) {
			t.Helper()
			if got := current(t, s, "r", toks...); got != want {
				t.Fatalf("tokens %v: got %s, want %s (C current, s superseded, - unknown)", toks, got, want)
			}
		}
		issue("a", 3)
		issue("b", 3)
		issue("c", 3)
		check("CCC", "a", "b", "c")
		issue("d", 3, "a") // the oldest goes
		check("sCCC", "a", "b", "c", "d")
		issue("d", 3) // the same token again takes no second place
		check("CCC", "b", "c", "d")
		must(t, s.Revoke(ctx, "r", h("c"))) // a revoked session frees its place
		issue("e", 3)
		check("C-CC", "b", "c", "d", "e")
		issue("f", 3, "b")
		check("sCCC", "b", "d", "e", "f")
		// A replaced token takes the newest place: d's successor outlives e.
		if _, err := s.Replace(ctx, "r", h("d"), h("g"), time.Now(), time.Time{}); err != nil {
			t.Fatalf("Replace a current token within the cap: %v", err)
		}
		issue("h", 3, "e")
		check("sCCC", "e", "f", "g", "h")
		// A superseded token cannot be replaced.
		if _, err := s.Replace(ctx, "r", h("e"), h("x"), time.Now(), time.Time{}); !errors.Is(err, tokens.ErrNotCurrent) {
			t.Fatalf("Replace superseded: got %v, want ErrNotCurrent", err)
		}
		// A lower cap (a configuration change) applies at the next login.
		issue("i", 1, "f", "g", "h")
		check("sssC", "f", "g", "h", "i")
		// Other users are counted apart.
		must(t, issued(s.Issue(ctx, "r", h("bob"), rec("bob", "pam"), 1)))
		check("CC", "i", "bob")
	})

	t.Run("SessionCapExpiry", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		at := func(d time.Duration) tokens.Record {
			r := rec("alice", "pam")
			if d > 0 {
				r.Expires = time.Now().Add(d)
			}
			return r
		}
		// An expired session does not count: b stays current.
		must(t, issued(s.Issue(ctx, "r", h("a"), at(1500*time.Millisecond), 2)))
		must(t, issued(s.Issue(ctx, "r", h("b"), at(0), 2)))
		// The list lives as long as its longest-lived token, not its newest:
		// c outlives d, so c is still counted after d has expired.
		must(t, issued(s.Issue(ctx, "r2", h("c"), at(time.Hour), 2)))
		must(t, issued(s.Issue(ctx, "r2", h("d"), at(1500*time.Millisecond), 2)))
		// A touch extends the list: f is touched past its first expiry.
		must(t, issued(s.Issue(ctx, "r3", h("e"), at(1500*time.Millisecond), 2)))
		must(t, issued(s.Issue(ctx, "r3", h("f"), at(1500*time.Millisecond), 2)))
		must(t, s.Touch(ctx, "r3", h("f"), time.Now().Add(time.Hour)))
		time.Sleep(2100 * time.Millisecond)
		must(t, issued(s.Issue(ctx, "r", h("a2"), at(0), 2)))
		if got := current(t, s, "r", "a", "b", "a2"); got != "-CC" {
			t.Fatalf("after a's expiry and a new login: got %s, want -CC", got)
		}
		must(t, issued(s.Issue(ctx, "r2", h("c2"), at(0), 2)))
		must(t, issued(s.Issue(ctx, "r2", h("c3"), at(0), 2)))
		if got := current(t, s, "r2", "c", "d", "c2", "c3"); got != "s-CC" {
			t.Fatalf("after two logins past d's expiry: got %s, want s-CC (c was forgotten by the list)", got)
		}
		must(t, issued(s.Issue(ctx, "r3", h("f2"), at(0), 2)))
		must(t, issued(s.Issue(ctx, "r3", h("f3"), at(0), 2)))
		if got := current(t, s, "r3", "e", "f", "f2", "f3"); got != "-sCC" {
			t.Fatalf("after two logins past f's first expiry: got %s, want -sCC (the touch did not extend the list)", got)
		}
	})

	t.Run("ConcurrentLoginsWithCap", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const n, limit = 24, 3
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if err := issued(s.Issue(ctx, "r", h(fmt.Sprint("tok", i)), rec("alice", "pam"), limit)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		toks := make([]string, n)
		for i := range toks {
			toks[i] = fmt.Sprint("tok", i)
		}
		if got := strings.Count(current(t, s, "r", toks...), "C"); got != limit {
			t.Fatalf("got %d current tokens after %d concurrent logins with a cap of %d", got, n, limit)
		}
	})

	// Keys are global per identity text, as in the original (its key was
	// named by the identity text alone): no realm in the interface.
	t.Run("Keys", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		if _, err := s.GetKey(ctx, "alice\npam\n"); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("GetKey unknown: %v", err)
		}
		must(t, s.PutKey(ctx, "alice\npam\n", []byte("k1")))
		must(t, s.PutKey(ctx, "alice\npam\n", []byte("k2")))
		must(t, s.PutKey(ctx, "bob\npam\n", []byte("k3")))
		must(t, s.PutKey(ctx, "alice\nauth/ldap\n", []byte("k4")))
		must(t, s.PutKey(ctx, "{x}%:\n*\n", []byte{0, 255}))
		if k, err := s.GetKey(ctx, "alice\npam\n"); err != nil || string(k) != "k2" {
			t.Fatalf("GetKey: got %q, %v; want k2", k, err)
		}
		if _, err := s.GetKey(ctx, "alice\npam\nuid=1\n"); !errors.Is(err, tokens.ErrNotFound) {
			t.Fatalf("GetKey of another identity text: %v", err)
		}
		got := map[string]string{}
		must(t, s.ForEachKey(ctx, func(id string, k []byte) error { got[id] = string(k); return nil }))
		want := map[string]string{"alice\npam\n": "k2", "bob\npam\n": "k3", "alice\nauth/ldap\n": "k4", "{x}%:\n*\n": "\x00\xff"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("ForEachKey: got %q, want %q", got, want)
		}
	})

	// A token stored again for another user (/stored_token T1 for alice,
	// T1 for mallory, T2 for alice): the original answers "YES mallory"
	// for T1. It is mallory's current token; alice's later login does not
	// supersede it, and it no longer counts among alice's sessions.
	t.Run("TokenStoredAgainForAnotherUser", func(t *testing.T) {
		s := open(t)
		must(t, issued(s.Issue(ctx, "r", h("t1"), rec("alice", "stored"), 1)))
		must(t, issued(s.Issue(ctx, "r", h("t1"), rec("mallory", "stored"), 1)))
		sup, err := s.Issue(ctx, "r", h("t2"), rec("alice", "stored"), 1)
		must(t, err)
		if len(sup) != 0 {
			t.Fatalf("alice's login superseded %d tokens, want none (t1 is mallory's now)", len(sup))
		}
		if got, err := s.Get(ctx, "r", h("t1")); err != nil || got.User != "mallory" || got.Superseded {
			t.Fatalf("t1: got %+v, %v; want mallory's current token", got, err)
		}
		if current(t, s, "r", "t1", "t2") != "CC" {
			t.Fatal("t1 and t2 should both be current")
		}
		// alice's sessions: only t2. With a cap of 2 a new login keeps t2.
		must(t, issued(s.Issue(ctx, "r", h("t3"), rec("alice", "stored"), 2)))
		if got := current(t, s, "r", "t1", "t2", "t3"); got != "CCC" {
			t.Fatalf("after alice's second session: %s, want CCC", got)
		}
		// mallory's next login supersedes t1, which is mallory's.
		must(t, issued(s.Issue(ctx, "r", h("t4"), rec("mallory", "stored"), 1)))
		if got := current(t, s, "r", "t1", "t2", "t3", "t4"); got != "sCCC" {
			t.Fatalf("after mallory's login: %s, want sCCC", got)
		}
		// Replace and revoke of t2 and t3 leave mallory's tokens alone.
		if _, err := s.Replace(ctx, "r", h("t2"), h("t5"), time.Now(), time.Time{}); err != nil {
			t.Fatalf("replace t2: %v", err)
		}
		must(t, s.Revoke(ctx, "r", h("t3")))
		if got := current(t, s, "r", "t1", "t4", "t5"); got != "sCC" {
			t.Fatalf("after replace and revoke: %s, want sCC", got)
		}
		// Stored back for alice, t4 leaves mallory: mallory's login then
		// supersedes nothing of alice's.
		must(t, issued(s.Issue(ctx, "r", h("t4"), rec("alice", "stored"), 3)))
		sup, err = s.Issue(ctx, "r", h("t6"), rec("mallory", "stored"), 1)
		must(t, err)
		if len(sup) != 0 {
			t.Fatalf("mallory's login superseded %d tokens, want none", len(sup))
		}
		if got, err := s.Get(ctx, "r", h("t4")); err != nil || got.User != "alice" || got.Superseded {
			t.Fatalf("t4: got %+v, %v; want alice's current token", got, err)
		}
	})

	t.Run("Groups", func(t *testing.T) {
		t.Parallel()
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
		t.Parallel()
		s := open(t)
		const n = 32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- issued(s.Issue(ctx, "r", h(fmt.Sprint("tok", i)), rec("alice", "pam"), 1))
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
		t.Parallel()
		s := open(t)
		const workers, per = 16, 50
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					tok := fmt.Sprintf("w%d-%d", w, i)
					if err := issued(s.Issue(ctx, "r", h(tok), rec(tok, "stored"), 1)); err != nil {
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

	runSessions(t, open)

	t.Run("Close", func(t *testing.T) {
		t.Parallel()
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

// issued drops the superseded hashes of Store.Issue where a case does not
// look at them.
func issued(_ []tokens.Hash, err error) error { return err }
