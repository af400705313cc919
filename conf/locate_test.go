package conf

import (
	"strings"
	"testing"
)

func TestLocateKeys(t *testing.T) {
	src := `# comment
listen = ":1"   # trailing
[admin]
token_file = "/x"
[realms."*"]
modules = [
  "pam",          # a [bracket] in a comment
  "corp",
]
default = "corp"
[realms.rcloud]
desc = """
not = a key
"""
token_lifetime = "8h"
[modules."a.b"]
type = "static"
users = { alice = "x" }
dotted.key = 1
'quoted' = 2
[[jwt.retired_keys]]
public_key = "k"
`
	kl := LocateKeys(src)
	for _, c := range []struct {
		key  []string
		line int
	}{
		{[]string{"listen"}, 2},
		{[]string{"admin"}, 3},
		{[]string{"admin", "token_file"}, 4},
		{[]string{"admin", "allow_loopback"}, 3}, // not written: its table
		{[]string{"realms", "*", "modules"}, 6},
		{[]string{"realms", "*", "default"}, 10},
		{[]string{"realms", "rcloud", "token_lifetime"}, 15},
		{[]string{"realms", "rcloud", "not"}, 11},
		{[]string{"modules", "a.b", "type"}, 17},
		{[]string{"modules", "a.b", "users", "alice"}, 18},
		{[]string{"modules", "a.b", "dotted", "key"}, 19},
		{[]string{"modules", "a.b", "quoted"}, 20},
		{[]string{"jwt", "retired_keys", "public_key"}, 22},
		{[]string{"nothing"}, 0},
	} {
		if got := kl.Line(c.key); got != c.line {
			t.Errorf("Line(%q) = %d, want %d", strings.Join(c.key, "."), got, c.line)
		}
	}
}

// FuzzLocateKeys: the scanner never panics, and every line it reports is
// within the text.
func FuzzLocateKeys(f *testing.F) {
	f.Add("a = 1\n[b]\nc = [\n1,\n]\n")
	f.Add("x = \"\"\"\n[y]\n\"\"\"\n[\"q.r\".s]\nt.'u' = {v = 1}\n")
	f.Add("[[a]]\n'b' = '''c\n")
	f.Fuzz(func(t *testing.T, src string) {
		n := strings.Count(src, "\n") + 1
		for k, l := range LocateKeys(src) {
			if l < 1 || l > n {
				t.Fatalf("key %q at line %d of %d", k, l, n)
			}
		}
	})
}
