package server

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
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
		// Names are taken as they are, as the original did: only values
		// are decoded.
		{"r%65alm=x", map[string]string{"r%65alm": "x"}, false},
		{"a+b=1&a%zz=2", map[string]string{"a+b": "1", "a%zz": "2"}, false},
		{"=v", map[string]string{"": "v"}, false},
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

func manyParams(n int, distinct bool) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString("p")
		if distinct {
			b.WriteString(strconv.Itoa(i))
		}
		b.WriteString("=1")
	}
	return b.String()
}

// TestParamsLimit: at most maxParams name=value parts per request, counted
// over the query and the form body together and with repeats; parts
// without '=' do not count. 10,000 distinct parameters took 0.4 s of CPU
// before the limit (50,000 took 21 s).
func TestParamsLimit(t *testing.T) {
	var p params
	if err := p.parse(manyParams(maxParams, true)); err != nil {
		t.Fatalf("%d parameters: %v", maxParams, err)
	}
	if err := p.parse("x=1"); !errors.Is(err, errTooMany) {
		t.Fatalf("one more in the body: got %v, want errTooMany", err)
	}
	p = params{}
	if err := p.parse(manyParams(maxParams+1, false)); !errors.Is(err, errTooMany) {
		t.Fatalf("%d repeats of one name: got %v, want errTooMany", maxParams+1, err)
	}
	p = params{}
	if err := p.parse(strings.Repeat("a&", 10000) + "realm=r"); err != nil {
		t.Fatalf("parts without '=': %v", err)
	}
	// Parsing stops at the first parameter over the limit: the work is
	// bounded by the limit, not by the size of the request.
	p = params{}
	if err := p.parse(manyParams(50000, true)); !errors.Is(err, errTooMany) {
		t.Fatalf("50,000 parameters: got %v, want errTooMany", err)
	}
	if p.n != maxParams+1 || len(p.kv) != maxParams {
		t.Fatalf("50,000 parameters: read %d and kept %d before refusing, want %d and %d", p.n, len(p.kv), maxParams+1, maxParams)
	}
}

// refParse is the obvious implementation of the parsing rules, for the
// differential fuzz test: split everything, decode values, a map keeps the
// last value of each name; the parameters of all texts count together.
func refParse(texts ...string) (map[string]string, error) {
	m := map[string]string{}
	n := 0
	for _, raw := range texts {
		for _, part := range strings.Split(raw, "&") {
			kv := strings.SplitN(part, "=", 2)
			if len(kv) != 2 {
				continue
			}
			n++
			if n > maxParams {
				return nil, errTooMany
			}
			v, err := url.QueryUnescape(kv[1])
			if err != nil {
				return nil, errBadEscape
			}
			m[kv[0]] = v
		}
	}
	return m, nil
}

// FuzzParams compares the parser with refParse on any input, split at any
// point into a query and a form body.
func FuzzParams(f *testing.F) {
	for _, s := range []string{"realm=r&token=t", "a=1&a=2", "u=%0A", "x=%zz", "a&b=&=c", "+=%2B", "r%65alm=x&realm=y", manyParams(maxParams+1, true)} {
		f.Add(s, uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, raw string, cut uint16) {
		query, body := raw, ""
		if int(cut) < len(raw) {
			query, body = raw[:cut], raw[cut:]
		}
		var p params
		err := p.parse(query)
		if err == nil {
			err = p.parse(body)
		}
		want, werr := refParse(query, body)
		if (err == nil) != (werr == nil) || (err != nil && !errors.Is(err, werr)) {
			t.Fatalf("query %q body %q: error %v, reference %v", query, body, err, werr)
		}
		if err != nil {
			return
		}
		if len(p.kv) != len(want) {
			t.Fatalf("query %q body %q: got %q, reference %q", query, body, p.kv, want)
		}
		for k, v := range want {
			if got, ok := p.get(k); !ok || got != v {
				t.Fatalf("query %q body %q: %q = %q, %v; reference %q", query, body, k, got, ok, v)
			}
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
