package static

import (
	"context"
	"testing"
)

func TestStatic(t *testing.T) {
	h, err := Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(Config{Users: map[string]string{"alice": h}, Roles: map[string][]string{"alice": {"admin"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pw string
		ok       bool
	}{{"alice", "pw", true}, {"alice", "no", false}, {"bob", "pw", false}, {"alice", "", false}, {"alice\n", "pw", false}} {
		id, ok, err := m.Login(context.Background(), c.user, c.pw)
		if err != nil || ok != c.ok {
			t.Errorf("%q/%q: got %v, %v; want %v", c.user, c.pw, ok, err, c.ok)
		}
		if ok && (id.User != "alice" || len(id.Roles) != 1) {
			t.Errorf("identity %+v", id)
		}
	}
	if _, err := Open(Config{Users: map[string]string{"a": "plaintext"}}, nil); err == nil {
		t.Error("a plain-text password was accepted as a hash")
	}
}
