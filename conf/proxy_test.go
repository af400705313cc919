package conf

import (
	"strings"
	"testing"
)

func TestTrustedProxiesAndRelays(t *testing.T) {
	c, err := Parse(strings.NewReader("[http]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n[realms.rcloud]\nrelays = [\"192.0.2.10\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.HTTP.TrustedProxies) != 2 || len(c.Realms["rcloud"].Relays) != 1 {
		t.Fatalf("got %+v, %+v", c.HTTP, c.Realms["rcloud"])
	}
	for _, bad := range []string{"[http]\ntrusted_proxies = [\"proxy.example.org\"]\n", "[realms.x]\nrelays = [\"10.0.0.0/99\"]\n"} {
		_, err := Parse(strings.NewReader(bad))
		if err == nil {
			t.Errorf("%q: accepted", bad)
		} else if !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("%q: error %q does not explain", bad, err)
		}
	}
}
