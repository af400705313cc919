package clientaddr

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func mustNew(t *testing.T, cidrs ...string) *Resolver {
	t.Helper()
	r, err := New(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestClient(t *testing.T) {
	r := mustNew(t, "10.0.0.0/8", "127.0.0.1", "::1/128")
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy header", "192.0.2.7:1234", nil, "192.0.2.7"},
		{"untrusted peer: xff ignored", "192.0.2.7:1234", []string{"198.51.100.1"}, "192.0.2.7"},
		{"trusted peer, one hop", "127.0.0.1:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted v6 peer", "[::1]:1234", []string{"2001:db8::5"}, "2001:db8::5"},
		{"trusted peer without xff", "10.1.2.3:1", nil, "10.1.2.3"},
		{"spoofed chain: leftmost forged", "127.0.0.1:1", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"spoofed chain over two lines", "127.0.0.1:1", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops", "127.0.0.1:1", []string{"6.6.6.6, 198.51.100.1, 10.0.0.9"}, "198.51.100.1"},
		{"all trusted: leftmost", "127.0.0.1:1", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"garbage hop stops at reporter", "127.0.0.1:1", []string{"1.2.3.4, nonsense, 10.0.0.9"}, "10.0.0.9"},
		{"garbage only", "127.0.0.1:1", []string{"unknown"}, "127.0.0.1"},
		{"hop with port", "127.0.0.1:1", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"v6 hop with port", "127.0.0.1:1", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"v6 hop in brackets", "127.0.0.1:1", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"mapped v4 peer", "[::ffff:10.0.0.1]:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"empty entries", "127.0.0.1:1", []string{" , 198.51.100.1 , "}, "198.51.100.1"},
		{"zone hop refused", "127.0.0.1:1", []string{"fe80::1%eth0"}, "127.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = c.peer
			for _, v := range c.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := r.Client(req); got != c.want {
				t.Errorf("Client = %q, want %q", got, c.want)
			}
		})
	}
}

func TestNilResolverTrustsNoOne(t *testing.T) {
	var r *Resolver
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "127.0.0.1:5"
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := r.Client(req); got != "127.0.0.1" {
		t.Errorf("Client = %q, want the peer", got)
	}
	if r.TrustedPeer(req) {
		t.Error("nil resolver trusts a peer")
	}
}

func TestLocalCaller(t *testing.T) {
	none := mustNew(t)
	some := mustNew(t, "10.0.0.0/8")
	cases := []struct {
		name   string
		r      *Resolver
		peer   string
		header string
		want   bool
	}{
		{"loopback", none, "127.0.0.1:1", "", true},
		{"loopback v6", none, "[::1]:1", "", true},
		{"other host", none, "192.0.2.1:1", "", false},
		{"loopback with xff", none, "127.0.0.1:1", "X-Forwarded-For", false},
		{"loopback with forwarded", none, "127.0.0.1:1", "Forwarded", false},
		{"loopback, proxies configured", some, "127.0.0.1:1", "", false},
	}
	for _, c := range cases {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = c.peer
		if c.header != "" {
			req.Header.Set(c.header, "for=198.51.100.1")
		}
		if got := c.r.LocalCaller(req); got != c.want {
			t.Errorf("%s: LocalCaller = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	p, err := ParsePrefixes("x", []string{"10.1.2.3/8", "192.0.2.1", "::ffff:10.0.0.0/104", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.1/32", "10.0.0.0/8", "2001:db8::/32"}
	for i, w := range want {
		if p[i].String() != w {
			t.Errorf("prefix %d = %s, want %s", i, p[i], w)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "example.org", "fe80::1%eth0"} {
		if _, err := ParsePrefixes("trusted_proxies", []string{bad}); err == nil {
			t.Errorf("ParsePrefixes(%q) accepted", bad)
		}
	}
}

// FuzzRightmost checks that the walk never panics and always names either
// the peer or an address that appears in the header.
func FuzzRightmost(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "6.6.6.6, 10.0.0.1", "[::1]:80, x", ",,,", "10.0.0.1, 10.0.0.2"} {
		f.Add(s)
	}
	r, _ := New([]string{"10.0.0.0/8"})
	peer := netip.MustParseAddr("10.9.9.9")
	f.Fuzz(func(t *testing.T, xff string) {
		got := r.Rightmost([]string{xff}, peer)
		if !got.IsValid() {
			t.Fatalf("invalid address from %q", xff)
		}
		if got != peer && got.Zone() != "" {
			t.Fatalf("zone in %v", got)
		}
	})
}

func TestClientWithoutProxyAllocatesNothing(t *testing.T) {
	var r *Resolver
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "192.0.2.7:4431"
	if n := testing.AllocsPerRun(100, func() { _ = r.Client(req) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
	req.RemoteAddr = "[::ffff:192.0.2.7]:4431"
	if got := r.Client(req); got != "192.0.2.7" {
		t.Errorf("mapped peer: %q", got)
	}
}
