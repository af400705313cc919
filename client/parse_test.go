package client

import (
	"maps"
	"testing"
)

// TestParseIdentity: attributes are read, and Text keeps the identity
// lines as sent, in order, without what follows the empty line.
func TestParseIdentity(t *testing.T) {
	for _, c := range []struct {
		in, text string
		attrs    map[string]string
	}{
		{"alice\npam\nuid=1000\ngid=100\n\n", "alice\npam\nuid=1000\ngid=100\n", map[string]string{"uid": "1000", "gid": "100"}},
		{"alice\nauth/ldap\n", "alice\nauth/ldap\n", nil},
		{"alice\nstored", "alice\nstored", nil},
		{"alice\npam\nnot an attribute\n\ntrailer\n", "alice\npam\nnot an attribute\n", nil},
	} {
		id, err := parseIdentity(c.in)
		if err != nil || id.User != "alice" || id.Text != c.text || !maps.Equal(id.Attrs, c.attrs) {
			t.Errorf("parseIdentity(%q) = %+v, %v; want text %q attrs %v", c.in, id, err, c.text, c.attrs)
		}
	}
	for _, in := range []string{"", "alice", "\npam\n"} {
		if _, err := parseIdentity(in); err == nil {
			t.Errorf("parseIdentity(%q): no error", in)
		}
	}
}
