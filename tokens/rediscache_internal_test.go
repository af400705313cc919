package tokens

import "testing"

// FuzzParseTokenKey: every token key the store writes parses back to its
// realm and hash (an invalidation never misses a cached token), whatever
// the prefix and realm; other keys of the store never parse.
func FuzzParseTokenKey(f *testing.F) {
	for _, c := range [][3]string{
		{"sks:", "r", "tok"}, {"sks:", "", "x"}, {"p:", "a}:u:b", "y"}, {"", "{x}", "z"},
		{"sks:", "%7D", "w"}, {"a:t:", "a:t:", "v"},
	} {
		f.Add(c[0], c[1], c[2])
	}
	f.Fuzz(func(t *testing.T, prefix, realm, tok string) {
		s := &Redis{prefix: prefix}
		h := HashToken(tok)
		k, ok := parseTokenKey(prefix, s.tokenKey(realm, h))
		if !ok || k.realm != realm || k.h != h {
			t.Fatalf("prefix %q realm %q: got %+v, %v", prefix, realm, k, ok)
		}
		for _, other := range []string{s.currentKey(realm, tok), s.keysKey(), s.realmKeysKey(realm), s.groupKey(realm), s.rolesKey(realm, tok)} {
			if k, ok := parseTokenKey(prefix, other); ok {
				t.Fatalf("non-token key %q parsed as %+v", other, k)
			}
		}
		parseTokenKey(prefix, tok) // arbitrary input: no panic
	})
}
