package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestScrape(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := New(Options{Modules: []string{"ldap", "pam"}, CertNotAfter: func() time.Time { return exp }})
	m.Request("/valid", 200, time.Millisecond)
	m.Request("/valid", 200, time.Millisecond)
	m.Request("/auth_token", 403, time.Millisecond)
	m.Request("/../../etc/passwd", 404, time.Millisecond)
	m.Request("/random-1234", 404, time.Millisecond)
	m.Login("corp", "alice", "10.0.0.1", "ldap", true, nil, 20*time.Millisecond)
	m.Login("corp", "alice", "10.0.0.1", "made-up-by-client", false, nil, 0)
	m.Event("issue")
	m.Event("replace")
	m.Event("supersede")
	m.Event("supersede")
	m.Event("gen_key")
	m.Ban("user")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	body := string(b)
	for _, want := range []string{
		`sks_requests_total{code="200",endpoint="/valid"} 2`,
		`sks_requests_total{code="403",endpoint="/auth_token"} 1`,
		`sks_requests_total{code="404",endpoint="other"} 2`,
		`sks_login_duration_seconds_count{module="ldap",result="ok"} 1`,
		`sks_login_duration_seconds_count{module="other",result="fail"} 1`,
		`sks_token_events_total{event="issued"} 1`,
		`sks_token_events_total{event="replaced"} 1`,
		`sks_token_events_total{event="superseded"} 2`,
		`sks_token_events_total{event="revoked"} 0`,
		`sks_login_bans_total{reason="user"} 1`,
		`sks_login_bans_total{reason="address"} 0`,
		`sks_tls_certificate_not_after_seconds 1.893456e+09`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if testing.Verbose() {
		t.Log(body)
	}
	for _, bad := range []string{"passwd", "random-1234", "made-up-by-client", "alice", "corp"} {
		if strings.Contains(body, bad) {
			t.Errorf("scrape contains unbounded label value %q", bad)
		}
	}
}
