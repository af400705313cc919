package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
	"github.com/sks-server/sks/tokens"
)

// readyz is /readyz's answer as a loopback caller sees it.
type readyz struct {
	code   int
	Status string
	// Components by name.
	Components map[string]struct {
		Ready bool
		Error string
	}
}

func getReadyz(t *testing.T, url string) readyz {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r readyz
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("/readyz body %q: %v", b, err)
	}
	r.code = resp.StatusCode
	return r
}

// waitReadyz polls /readyz until cond holds, for at most 20 s.
func waitReadyz(t *testing.T, url, what string, cond func(readyz) bool) readyz {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := getReadyz(t, url)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz still %+v", what, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHealthEndpoints runs the real binary on a badger store with an LDAP
// and a Kerberos module against a real slapd and KDC, and freezes, stops
// and restarts them: /readyz and sks_ready follow, /healthz stays 200.
func TestHealthEndpoints(t *testing.T) {
	testrig.RequireKDC(t)
	s := testrig.StartSlapd(t, t.TempDir())
	k := testrig.StartKDC(t, t.TempDir())
	dir := t.TempDir()
	config := backendModules(s, k) + `
[realms.corp]
modules = ["corp", "krb"]
default = "corp"
`
	cf := filepath.Join(dir, "sks.toml")
	os.WriteFile(cf, []byte(config), 0o600)
	port := testrig.FreePort(t)
	p := testrig.Start(t, dir, "sks", nil, sksBinary, "-c", cf, "-d", filepath.Join(dir, "data"), "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-log-format", "json")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.WaitTCP(t, addr, 20*time.Second)
	url := "http://" + addr

	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, b)
	}
	r := getReadyz(t, url)
	if r.code != 200 || r.Status != "ready" || len(r.Components) != 3 ||
		!r.Components["store"].Ready || !r.Components["module:corp"].Ready || !r.Components["module:krb"].Ready {
		t.Fatalf("/readyz with everything up: %+v", r)
	}
	metric := func(component string) string {
		t.Helper()
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, `sks_ready{component="`+component+`"} `) {
				return strings.Fields(l)[1]
			}
		}
		return ""
	}
	if v := metric("module:corp"); v != "1" {
		t.Errorf("sks_ready{module:corp} = %q, want 1", v)
	}

	s.Proc.Freeze(t)
	r = waitReadyz(t, url, "slapd frozen", func(r readyz) bool { return r.code == 503 })
	if r.Components["module:corp"].Ready || r.Components["module:corp"].Error == "" || !r.Components["module:krb"].Ready || !r.Components["store"].Ready {
		t.Errorf("/readyz with slapd frozen: %+v", r)
	}
	if v := metric("module:corp"); v != "0" {
		t.Errorf("sks_ready{module:corp} = %q with slapd frozen, want 0", v)
	}
	s.Proc.Thaw(t)
	waitReadyz(t, url, "slapd thawed", func(r readyz) bool { return r.code == 200 })

	k.Proc.Stop()
	r = waitReadyz(t, url, "kdc stopped", func(r readyz) bool { return r.code == 503 })
	if r.Components["module:krb"].Ready || !r.Components["module:corp"].Ready {
		t.Errorf("/readyz with the kdc stopped: %+v", r)
	}
	k.Start(t)
	waitReadyz(t, url, "kdc restarted", func(r readyz) bool { return r.code == 200 })
	resp, err = http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz after the outages: %v", err)
	}

	// The log is JSON, one object a line, and the outage was a WARN.
	sawWarn := false
	for _, l := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
		if !strings.HasPrefix(l, "{") {
			continue // the original's "SessionKeyServer 1.5 is listening" line
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", l)
			continue
		}
		if rec["level"] == "WARN" && rec["msg"] == "component not ready" && rec["component"] == "module:corp" {
			sawWarn = true
		}
	}
	if !sawWarn {
		t.Errorf("no WARN for the frozen directory in the log:\n%s", p.Output())
	}
}

// TestStoreCheck: the store check is a read of a real badger store; a
// closed store is not ready.
func TestStoreCheck(t *testing.T) {
	store, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	check := storeCheck(store)
	if err := check(context.Background()); err != nil {
		t.Fatalf("open store: %v", err)
	}
	store.Close()
	if err := check(context.Background()); !errors.Is(err, tokens.ErrClosed) {
		t.Errorf("closed store: %v, want ErrClosed", err)
	}
}
