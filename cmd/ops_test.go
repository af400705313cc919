package cmd

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpsEndToEnd runs the binary with [limits], [audit] and [metrics] and
// checks a ban (429, Retry-After), the audit lines and the metrics.
func TestOpsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	cfg := filepath.Join(dir, "sks.toml")
	os.WriteFile(cfg, []byte("[audit]\npath = \""+auditPath+"\"\n[limits]\nuser_failures = 3\nmin_failure_latency = \"1ms\"\n"), 0o600)
	srv, _, pw := demoServer(t, "-c", cfg)

	login := func(user, pwd string) *http.Response {
		t.Helper()
		resp, err := http.PostForm(srv+"/auth_token", url.Values{"realm": {"demo"}, "user": {user}, "pwd": {pwd}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 2 { // the second login supersedes the first
		if r := login("demo", pw); r.StatusCode != 200 {
			t.Fatalf("good login: %d", r.StatusCode)
		}
	}
	for _, u := range []string{"demo", "DEMO", "dEmo"} {
		if r := login(u, "wrong-password-123"); r.StatusCode != 403 {
			t.Fatalf("bad login: %d, want 403", r.StatusCode)
		}
	}
	r := login("demo", pw)
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures: %d Retry-After %q, want 429 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}

	raw, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	for _, want := range []string{`"kind":"login"`, `"kind":"issue"`, `"kind":"supersede"`, `"kind":"login_failed"`, `"kind":"ban"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, pw) || strings.Contains(log, "wrong-password-123") {
		t.Error("audit log contains a password")
	}

	resp, err := http.Get(srv + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sks_requests_total{code="429",endpoint="/auth_token"} 1`,
		`sks_token_events_total{event="issued"} 2`,
		`sks_token_events_total{event="superseded"} 1`,
		`sks_login_bans_total{reason="user"} 1`,
		`sks_login_duration_seconds_count{module="demo",result="fail"} 3`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
