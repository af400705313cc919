package cmd

import (
	"context"
	"testing"

	"github.com/sks-server/sks/tokens"
)

// TestCopyKeys: keys move from one login source to another, attribute lines
// kept (or dropped), without overwriting unless asked, as the original's
// CopyKeys did.
func TestCopyKeys(t *testing.T) {
	ctx := context.Background()
	s, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(id, key string) {
		if err := s.PutKey(ctx, id, []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
	put("alice\npam\nuid=1000\ngid=1000\n", "ka")
	put("bob\npam\nuid=1001\ngid=1001\n", "kb")
	put("carol\nauth/krb\n", "kc")                        // other source: not copied
	put("bob\nauth/ldap\nuid=1001\ngid=1001\n", "kb-new") // target exists: kept

	copied, skipped, err := CopyKeys(ctx, s, "pam", "auth/ldap", false, false)
	if err != nil || copied != 1 || skipped != 1 {
		t.Fatalf("CopyKeys: copied %d skipped %d err %v; want 1, 1", copied, skipped, err)
	}
	want := map[string]string{
		"alice\nauth/ldap\nuid=1000\ngid=1000\n": "ka",
		"bob\nauth/ldap\nuid=1001\ngid=1001\n":   "kb-new",
		"alice\npam\nuid=1000\ngid=1000\n":       "ka", // the source keeps its key
	}
	for id, key := range want {
		if got, err := s.GetKey(ctx, id); err != nil || string(got) != key {
			t.Errorf("key of %q: got %q, %v; want %q", id, got, err, key)
		}
	}
	if _, err := s.GetKey(ctx, "carol\nauth/ldap\n"); err == nil {
		t.Error("a key of another source was copied")
	}

	copied, _, err = CopyKeys(ctx, s, "pam", "auth/ldap", true, false)
	if err != nil || copied != 2 {
		t.Fatalf("with overwrite: copied %d, %v; want 2", copied, err)
	}
	if got, _ := s.GetKey(ctx, "bob\nauth/ldap\nuid=1001\ngid=1001\n"); string(got) != "kb" {
		t.Errorf("overwrite: got %q, want kb", got)
	}
	if copied, _, _ = CopyKeys(ctx, s, "pam", "auth/static", false, true); copied != 2 {
		t.Fatalf("drop-attrs: copied %d, want 2", copied)
	}
	if got, err := s.GetKey(ctx, "alice\nauth/static\n"); err != nil || string(got) != "ka" {
		t.Errorf("drop-attrs: got %q, %v", got, err)
	}
}
