package tokens_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sks-server/sks/tokens"
)

// Per-realm keys written by earlier versions, as (realm, identity, key).
// Realm "r" sorts before "r2", so carol's key of "r" becomes her global
// key; dave has a global key already, which wins.
var legacyKeys = [][3]string{
	{"r", "alice\npam\n", "ka"},
	{"r2", "alice\npam\n", "ka"}, // same key in two realms: no conflict
	{"r", "bob\npam\nuid=1\n", "kb"},
	{"r2", "carol\npam\n", "kc-r2"},
	{"r", "carol\npam\n", "kc-r"},
	{"r", "dave\npam\n", "kd-r"},
	{"{x}%:*", "erin\npam\n", "ke"},
}

var wantGlobal = map[string]string{
	"alice\npam\n":      "ka",
	"bob\npam\nuid=1\n": "kb",
	"carol\npam\n":      "kc-r",
	"dave\npam\n":       "kd-global",
	"erin\npam\n":       "ke",
}

// wantKept are the per-realm keys left unserved: they differed.
var wantKept = []string{`r "dave\npam\n" "kd-r"`, `r2 "carol\npam\n" "kc-r2"`}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// firstOpenLog is what the open that moves the keys logs.
var firstOpenLog = []string{"user=carol source=pam served_from_realm=r kept_realms=r2", `user=dave source=pam served_from_realm="(global key)" kept_realms=r`, "moved=4 identities_with_conflicting_keys=2"}

// checkMigrated checks the keys of s after migration, and that the log has
// each of wantLog.
func checkMigrated(t *testing.T, s interface {
	tokens.Store
	tokens.Dumper
}, logs string, wantLog ...string) {
	t.Helper()
	ctx := context.Background()
	for id, want := range wantGlobal {
		if got, err := s.GetKey(ctx, id); err != nil || string(got) != want {
			t.Errorf("key of %q: got %q, %v; want %q", id, got, err, want)
		}
	}
	n := 0
	if err := s.ForEachKey(ctx, func(string, []byte) error { n++; return nil }); err != nil || n != len(wantGlobal) {
		t.Errorf("ForEachKey: %d keys, %v; want %d", n, err, len(wantGlobal))
	}
	var kept []string
	if err := s.Dump(ctx, func(e tokens.Entry) error {
		if e.Kind == tokens.EntryRealmKey {
			kept = append(kept, fmt.Sprintf("%s %q %q", e.Realm, e.Name, e.Value))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(kept)
	if fmt.Sprint(kept) != fmt.Sprint(wantKept) {
		t.Errorf("per-realm keys kept: got %q, want %q", kept, wantKept)
	}
	for _, want := range wantLog {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{"kc-r", "kd-r", "kd-global", "ka"} {
		if strings.Contains(logs, "="+secret) || strings.Contains(logs, "\""+secret) {
			t.Errorf("log shows key %q:\n%s", secret, logs)
		}
	}
}

// TestBadgerMigratesPerRealmKeys: a badger directory with keys in the
// per-realm layout opens with them global per identity; conflicting ones
// stay, unserved, and a second open changes nothing.
func TestBadgerMigratesPerRealmKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openBadger(t, dir)
	// Load writes a realm-key entry in the old layout: the bytes earlier
	// versions wrote ('k', realm, identity).
	for _, k := range legacyKeys {
		must(t, s.Load(ctx, tokens.Entry{Kind: tokens.EntryRealmKey, Realm: k[0], Name: k[1], Value: []byte(k[2])}))
	}
	must(t, s.PutKey(ctx, "dave\npam\n", []byte("kd-global")))
	if _, err := s.GetKey(ctx, "alice\npam\n"); err == nil {
		t.Fatal("sanity: per-realm key served before migration")
	}
	s.Close()
	for run := range 2 {
		logs := &logBuf{}
		s, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			checkMigrated(t, s, logs.String(), firstOpenLog...)
		} else {
			// Each open names the conflicts again; nothing more moves.
			checkMigrated(t, s, logs.String(), "user=carol", "kept_realms=r2", "user=dave", "moved=0 identities_with_conflicting_keys=2")
		}
		s.Close()
	}
}

// TestRedisMigratesPerRealmKeys: the same on a real Redis, the per-realm
// hashes written as earlier versions wrote them.
func TestRedisMigratesPerRealmKeys(t *testing.T) {
	ctx := context.Background()
	addr := sharedRedis(t)
	o := redisOpts(addr)
	c := redis.NewClient(&redis.Options{Addr: addr, Password: redisPassword})
	defer c.Close()
	tag := strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")
	for _, k := range legacyKeys {
		must(t, c.HSet(ctx, o.KeyPrefix+"{r:"+tag.Replace(k[0])+"}:k", k[1], k[2]).Err())
	}
	must(t, c.HSet(ctx, o.KeyPrefix+"{keys}", "dave\npam\n", "kd-global").Err())
	// A user list whose name ends like a key hash is not one.
	must(t, c.Set(ctx, o.KeyPrefix+"{r:r}:u:x}:k", strings.Repeat("0", 64), 0).Err())
	for run := range 2 {
		logs := &logBuf{}
		s, err := tokens.OpenRedis(ctx, o, slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			checkMigrated(t, s, logs.String(), firstOpenLog...)
		} else {
			// The layout marker spares later opens the key scan.
			checkMigrated(t, s, logs.String())
			if logs.String() != "" {
				t.Errorf("second open logged:\n%s", logs)
			}
		}
		s.Close()
	}
}
