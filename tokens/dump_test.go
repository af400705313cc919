package tokens_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/tokens"
)

// seedStore fills s with one of everything: current, superseded and
// expiring tokens in two realms, keys, groups and roles.
func seedStore(t *testing.T, s tokens.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().Round(0)
	issue := func(realm, tok, user string, expires time.Time, roles ...string) {
		must(t, issued(s.Issue(ctx, realm, tokens.HashToken(tok), tokens.Record{
			User: user, Identity: user + "\npam\nmail=" + user + "@example.org\n",
			Roles: roles, Issued: now, Expires: expires,
		}, 1)))
	}
	issue("r", "alice-1", "alice", time.Time{})
	issue("r", "alice-2", "alice", time.Time{}, "staff")
	issue("r", "bob-1", "bob", now.Add(time.Hour), "staff", "admins")
	issue("r2", "alice-3", "alice", now.Add(2*time.Hour))
	issue("r2", "gone", "carol", now.Add(300*time.Millisecond))
	for _, tok := range []string{"dora-1", "dora-2", "dora-3"} { // three sessions allowed
		must(t, issued(s.Issue(ctx, "r", tokens.HashToken(tok), tokens.Record{User: "dora", Identity: "dora\npam\n", Issued: now}, 3)))
	}
	must(t, s.PutKey(ctx, "alice\npam\n", []byte{0, 1, 2, 255}))
	must(t, s.PutKey(ctx, "bob\npam\n", []byte("k2")))
	must(t, s.CreateGroup(ctx, "r", "g1", "alice", []byte("gk1")))
	must(t, s.ModGroup(ctx, "r", "g1", []string{"bob", "dave"}, []string{"dave"}, nil))
	must(t, s.CreateGroup(ctx, "r2", "g2", "bob", []byte("gk2")))
	time.Sleep(400 * time.Millisecond) // "gone" has expired and is not copied
}

// dumpAll returns the entries of d as sorted, comparable lines. Expiry of
// current pointers is kept to the second: Badger stores whole seconds.
func dumpAll(t *testing.T, d tokens.Dumper) []string {
	t.Helper()
	var out []string
	must(t, d.Dump(context.Background(), func(e tokens.Entry) error {
		exp := ""
		if !e.Expires.IsZero() {
			exp = "expires"
		}
		r := e.Record
		var sessions []string
		for _, h := range e.Sessions {
			sessions = append(sessions, h.Short())
		}
		out = append(out, fmt.Sprintf("%s realm=%q name=%q group=%q hash=%s sessions=%v value=%q admin=%v member=%v %s rec={%q %q %q %d %d %v}",
			e.Kind, e.Realm, e.Name, e.Group, e.Hash.Short(), sessions, e.Value, e.Admin, e.Member, exp,
			r.User, r.Identity, r.Roles, unixNano(r.Issued), unixNano(r.Expires), r.Superseded))
		return nil
	}))
	sort.Strings(out)
	return out
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// TestCopyBadgerRedisBadger: a store copied badger -> redis -> badger keeps
// every token, current pointer, key, group and role, and behaves the same.
func TestCopyBadgerRedisBadger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := openBadger(t, t.TempDir())
	seedStore(t, src)
	// A per-realm key kept from before keys became global travels too.
	must(t, src.Load(ctx, tokens.Entry{Kind: tokens.EntryRealmKey, Realm: "r2", Name: "alice\npam\n", Value: []byte("old")}))
	want := dumpAll(t, src)
	kinds := map[string]int{}
	for _, l := range want {
		kinds[strings.Fields(l)[0]]++
	}
	if fmt.Sprint(kinds) != "map[current:4 group:2 key:2 realm-key:1 role:4 token:7]" {
		t.Fatalf("source dump: got %v", kinds)
	}

	mid := openRedis(t, redisOpts(sharedRedis(t)))
	n, err := tokens.Copy(ctx, src, mid, nil)
	if err != nil || n != len(want) {
		t.Fatalf("copy badger to redis: %d, %v; want %d", n, err, len(want))
	}
	if got := dumpAll(t, mid); !slices.Equal(got, want) {
		t.Fatalf("redis after copy:\n got %q\nwant %q", got, want)
	}
	dst := openBadger(t, t.TempDir())
	if n, err := tokens.Copy(ctx, mid, dst, nil); err != nil || n != len(want) {
		t.Fatalf("copy redis to badger: %d, %v; want %d", n, err, len(want))
	}
	if got := dumpAll(t, dst); !slices.Equal(got, want) {
		t.Fatalf("badger after round trip:\n got %q\nwant %q", got, want)
	}

	// Behaviour, not just bytes: the copies know who is current.
	for name, s := range map[string]tokens.Store{"redis": mid, "badger": dst} {
		h := tokens.HashToken
		if _, err := s.Replace(ctx, "r", h("alice-1"), h("x"), time.Now(), time.Time{}); err == nil {
			t.Errorf("%s: superseded alice-1 replaced", name)
		}
		if _, err := s.Replace(ctx, "r", h("alice-2"), h("alice-4"), time.Now(), time.Time{}); err != nil {
			t.Errorf("%s: current alice-2 not replaceable: %v", name, err)
		}
		must(t, issued(s.Issue(ctx, "r", h("bob-2"), tokens.Record{User: "bob", Identity: "bob\npam\n"}, 1)))
		if got, err := s.Get(ctx, "r", h("bob-1")); err != nil || !got.Superseded {
			t.Errorf("%s: bob-1 after a new login: %+v, %v; want superseded", name, got, err)
		}
		// dora's three sessions stay current; a fourth supersedes the oldest.
		must(t, issued(s.Issue(ctx, "r", h("dora-4"), tokens.Record{User: "dora", Identity: "dora\npam\n"}, 3)))
		for i, want := range []bool{true, false, false, false} {
			if got, err := s.Get(ctx, "r", h(fmt.Sprint("dora-", i+1))); err != nil || got.Superseded != want {
				t.Errorf("%s: dora-%d after a fourth login: %+v, %v; want superseded=%v", name, i+1, got, err, want)
			}
		}
		if a, m, err := s.GroupRole(ctx, "r", "g1", "dave"); err != nil || !a || !m {
			t.Errorf("%s: dave in g1: admin=%v member=%v err=%v", name, a, m, err)
		}
		if k, err := s.GroupKey(ctx, "g2"); err != nil || string(k) != "gk2" {
			t.Errorf("%s: g2 key %q, %v", name, k, err)
		}
		if err := s.CreateGroup(ctx, "r", "g2", "x", nil); err == nil {
			t.Errorf("%s: group g2 created twice", name)
		}
	}
}

// TestCopyProgress: a long copy reports its progress every 10,000 entries.
func TestCopyProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, dst := openBadger(t, ""), openBadger(t, "")
	for i := range 20001 {
		tok := fmt.Sprint("t", i)
		must(t, issued(src.Issue(ctx, "r", tokens.HashToken(tok), tokens.Record{User: tok, Identity: tok + "\nstored\n"}, 1)))
	}
	var seen []int
	n, err := tokens.Copy(ctx, src, dst, func(n int) { seen = append(seen, n) })
	// Each token has its record and its user's list of current tokens.
	if err != nil || n != 40002 || !slices.Equal(seen, []int{10000, 20000, 30000, 40000}) {
		t.Fatalf("copy: %d entries, %v, progress at %v", n, err, seen)
	}
}
