package server

import (
	"testing"
)

func TestParams(t *testing.T) {
	cases := []struct {
		raw  string
		want map[string]string
		bad  bool
	}{
		{"", map[string]string{}, false},
		{"realm=r&token=t", map[string]string{"realm": "r", "token": "t"}, false},
		{"realm", map[string]string{}, false},                     // no '=': ignored
		{"realm=&x", map[string]string{"realm": ""}, false},       // empty value
		{"a=1&a=2", map[string]string{"a": "2"}, false},           // last wins
		{"a=b=c", map[string]string{"a": "b=c"}, false},           // first '='
		{"u=a+b%20c%2B", map[string]string{"u": "a b c+"}, false}, // '+' is space
		{"r%65alm=x", map[string]string{"realm": "x"}, false},     // names decoded
		{"&&a=1&&", map[string]string{"a": "1"}, false},
		{"u=%0Aroot", map[string]string{"u": "\nroot"}, false}, // decoded; refused later
		{"u=%zz", nil, true},
		{"u=%", nil, true},
	}
	for _, c := range cases {
		var p params
		err := p.parse(c.raw)
		if (err != nil) != c.bad {
			t.Errorf("%q: error %v, want error %v", c.raw, err, c.bad)
			continue
		}
		if c.bad {
			continue
		}
		if len(p.kv) != len(c.want) {
			t.Errorf("%q: got %v, want %v", c.raw, p.kv, c.want)
		}
		for k, v := range c.want {
			if got, ok := p.get(k); !ok || got != v {
				t.Errorf("%q: %s = %q, %v; want %q", c.raw, k, got, ok, v)
			}
		}
	}
}

func FuzzParams(f *testing.F) {
	for _, s := range []string{"realm=r&token=t", "a=1&a=2", "u=%0A", "x=%zz", "a&b=&=c", "+=%2B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var p params
		if err := p.parse(raw); err != nil {
			return
		}
		seen := map[string]bool{}
		for _, kv := range p.kv {
			if seen[kv[0]] {
				t.Fatalf("name %q kept twice", kv[0])
			}
			seen[kv[0]] = true
		}
	})
}

func BenchmarkParamsValid(b *testing.B) {
	raw := "realm=rcloud&token=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	b.ReportAllocs()
	for b.Loop() {
		var p params
		p.kv = make([][2]string, 0, 4)
		_ = p.parse(raw)
	}
}
