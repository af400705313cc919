package cmd

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// postWith sends a form to the binary with extra headers and returns the status.
func postWith(t *testing.T, target string, form url.Values, headers map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestRelayEndToEnd (issue 12.3): RCloud logs its users in from one
// address. Listed as a relay, 20 wrong passwords for 20 users from it do
// not lock out a 21st user; not listed, they ban the address.
func TestRelayEndToEnd(t *testing.T) {
	for _, c := range []struct {
		name, config string
		want21       int
	}{
		{"not a relay", "", http.StatusTooManyRequests},
		{"relay", "[realms.\"*\"]\nrelays = [\"127.0.0.1\"]\n", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "sks.toml")
			os.WriteFile(cfg, []byte(c.config+"[limits]\nmin_failure_latency = \"1ms\"\n"), 0o600)
			srv, _, pw := demoServer(t, "-c", cfg)
			for i := range 20 {
				if got := postWith(t, srv+"/auth_token", url.Values{"realm": {"demo"}, "user": {fmt.Sprintf("user%d", i)}, "pwd": {"wrong"}}, nil); got != http.StatusForbidden {
					t.Fatalf("failure %d: %d, want 403", i, got)
				}
			}
			if got := postWith(t, srv+"/auth_token", url.Values{"realm": {"demo"}, "user": {"demo"}, "pwd": {pw}}, nil); got != c.want21 {
				t.Fatalf("21st user: %d, want %d", got, c.want21)
			}
		})
	}
}

// TestTrustedProxyEndToEnd: behind a trusted proxy the forwarded client is
// banned, not the proxy; the audit log names the client; and no loopback
// privilege is left (/stored_token, /metrics).
func TestTrustedProxyEndToEnd(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	cfg := filepath.Join(dir, "sks.toml")
	os.WriteFile(cfg, []byte("[http]\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]\n[audit]\npath = \""+auditPath+"\"\n[limits]\nmin_failure_latency = \"1ms\"\n"), 0o600)
	srv, _, pw := demoServer(t, "-c", cfg)
	from := func(client string) map[string]string {
		// A spoofed leftmost hop must not matter.
		return map[string]string{"X-Forwarded-For": "6.6.6.6, " + client}
	}
	for i := range 20 {
		postWith(t, srv+"/auth_token", url.Values{"realm": {"demo"}, "user": {fmt.Sprintf("user%d", i)}, "pwd": {"wrong"}}, from("198.51.100.1"))
	}
	login := url.Values{"realm": {"demo"}, "user": {"demo"}, "pwd": {pw}}
	if got := postWith(t, srv+"/auth_token", login, map[string]string{"X-Forwarded-For": "7.7.7.7, 198.51.100.1"}); got != http.StatusTooManyRequests {
		t.Fatalf("banned client: %d, want 429", got)
	}
	if got := postWith(t, srv+"/auth_token", login, from("198.51.100.2")); got != http.StatusOK {
		t.Fatalf("other client behind the same proxy: %d, want 200", got)
	}
	raw, _ := os.ReadFile(auditPath)
	if !strings.Contains(string(raw), `"client":"198.51.100.1"`) || strings.Contains(string(raw), "6.6.6.6") {
		t.Errorf("audit log does not name the forwarded client:\n%s", raw)
	}
	if got := postWith(t, srv+"/stored_token", url.Values{"realm": {"demo"}, "user": {"x"}, "token": {"chosen-token-1"}}, nil); got != http.StatusForbidden {
		t.Errorf("/stored_token from loopback with trusted_proxies: %d, want 403", got)
	}
	resp, err := http.Get(srv + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("/metrics from loopback with trusted_proxies: %d, want 403", resp.StatusCode)
	}
}

// TestLoopbackPrivilegesEndToEnd: without trusted_proxies, loopback keeps
// its privileges unless the request is forwarded (a proxy on the host
// nobody configured): every loopback-privileged endpoint is checked.
func TestLoopbackPrivilegesEndToEnd(t *testing.T) {
	srv, _, _ := demoServer(t)
	for _, h := range []map[string]string{nil, {"X-Forwarded-For": "203.0.113.5"}, {"Forwarded": "for=203.0.113.5"}, {"X-Forwarded-For": "127.0.0.1"}} {
		want := http.StatusForbidden
		if h == nil {
			want = http.StatusOK
		}
		if got := postWith(t, srv+"/stored_token", url.Values{"realm": {"demo"}, "user": {"x"}, "token": {"chosen-token-2"}}, h); got != want {
			t.Errorf("/stored_token with %v: %d, want %d", h, got, want)
		}
		req, _ := http.NewRequest("GET", srv+"/metrics", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("/metrics with %v: %d, want %d", h, resp.StatusCode, want)
		}
	}
}

// TestSmugglingRefusedByBinary (issue 12.8): Content-Length with chunked,
// then a second request on the same connection: the binary answers 400
// once and closes, leaving the second request unanswered.
func TestSmugglingRefusedByBinary(t *testing.T) {
	srv, _, _ := demoServer(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /auth_token HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c) // ends when the server closes
	if err != nil {
		t.Fatalf("reading until the server closes: %v", err)
	}
	if n := strings.Count(string(all), "HTTP/1.1 "); n != 1 || !strings.HasPrefix(string(all), "HTTP/1.1 400 ") {
		t.Fatalf("got %d answers:\n%s", n, all)
	}
}
