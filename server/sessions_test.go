package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sks-server/sks/server"
	"github.com/sks-server/sks/tokens"
)

const cfgSessions = cfgFake + "\n[realms.two]\ndefault = \"Fake\"\nmax_sessions = 3\n"

// recordEvents collects the events of kinds revoke and revoke_all.
type recordEvents struct {
	mu   sync.Mutex
	got  []string
	fail bool
}

func (r *recordEvents) hook(_ context.Context, ev server.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("audit log full")
	}
	if ev.Kind == "revoke" || ev.Kind == "revoke_all" {
		r.got = append(r.got, ev.Kind+" "+ev.Realm+" "+ev.User+" "+ev.Token+" "+ev.Detail)
	}
	return nil
}

func (r *recordEvents) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func short(tok string) string { return tokens.HashToken(tok).Short() }

// adminCall sends one request straight to the handler, from remote with
// the given Authorization and extra headers.
func (e *env) adminCall(method, target, form, remote, auth string, hdr ...string) *httptest.ResponseRecorder {
	var req *http.Request
	if form != "" {
		req = httptest.NewRequest(method, target, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	req.RemoteAddr = remote
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, req)
	return w
}

func TestAdminSessions(t *testing.T) {
	ev := &recordEvents{}
	e := newEnv(t, cfgSessions, func(o *server.Options) { o.Hooks.Event = ev.hook })
	a, b := e.login(t, "two", "alice"), e.login(t, "two", "alice")
	bob := e.login(t, "two", "bob")
	other := e.login(t, "r", "alice")
	const local, remote = "127.0.0.1:5555", "203.0.113.9:5555"

	// Who may list.
	for _, c := range []struct {
		remote, auth string
		status       int
	}{
		{remote, "", 403},
		{remote, "Bearer wrong", 403},
		{remote, "Bearer admin-secret", 200},
		{local, "", 200},
	} {
		w := e.adminCall("GET", "/sessions?realm=two&user=alice", "", c.remote, c.auth)
		if w.Code != c.status {
			t.Errorf("list from %s with %q: got %d %q, want %d", c.remote, c.auth, w.Code, w.Body, c.status)
		}
	}
	w := e.adminCall("POST", "/sessions", "realm=two&user=alice", remote, "Bearer admin-secret")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("list: got %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	if strings.Contains(w.Body.String(), a) || strings.Contains(w.Body.String(), b) {
		t.Fatal("the listing holds a full token")
	}
	var list server.SessionList
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if list.Realm != "two" || list.User != "alice" || len(list.Sessions) != 2 {
		t.Fatalf("list: got %+v, want alice's 2 sessions in two", list)
	}
	for i, tok := range []string{a, b} {
		s := list.Sessions[i]
		if s.ID != short(tok) || s.Source != "auth/Fake" || time.Since(s.Issued) > time.Minute || !s.Expires.IsZero() {
			t.Errorf("session %d: got %+v, want id %s, source auth/Fake, issued now, no expiry", i, s, short(tok))
		}
	}
	if strings.Contains(w.Body.String(), `"expires"`) {
		t.Errorf("a session without expiry shows an expires field: %s", w.Body)
	}
	// Bad requests.
	for _, c := range []struct {
		method, target, form string
		status               int
		body                 string
	}{
		{"GET", "/sessions?realm=two", "", 400, "ERR: missing user\n"},
		{"GET", "/sessions?realm=two&user=a%0Ab", "", 400, "ERR: invalid user\n"},
		{"GET", "/sessions?user=alice", "", 400, "ERR: missing realm\n"},
		{"GET", "/revoke_sessions?realm=two&user=alice", "", 405, "ERR: use POST\n"},
		{"POST", "/revoke_sessions", "realm=two", 400, "ERR: missing user\n"},
	} {
		w := e.adminCall(c.method, c.target, c.form, local, "")
		if w.Code != c.status || w.Body.String() != c.body {
			t.Errorf("%s %s %s: got %d %q, want %d %q", c.method, c.target, c.form, w.Code, w.Body, c.status, c.body)
		}
	}
	// A browser page on another site cannot make a loopback admin revoke.
	w = e.adminCall("POST", "/revoke_sessions", "realm=two&user=alice", local, "", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	if w.Code != 403 {
		t.Fatalf("cross-site revoke_sessions: got %d %q, want 403", w.Code, w.Body)
	}
	w = e.adminCall("POST", "/revoke_sessions", "realm=two&user=alice", remote, "")
	if w.Code != 403 {
		t.Fatalf("revoke_sessions without credential: got %d %q, want 403", w.Code, w.Body)
	}
	expect(t, "a after refused revokes", e.get(t, "/valid?realm=two&token="+a), 200, "YES\nalice\nauth/Fake\nuid=1000\n\n")
	ev.take()

	w = e.adminCall("POST", "/revoke_sessions", "realm=two&user=alice", remote, "Bearer admin-secret")
	var rev server.RevokedSessions
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &rev) != nil || rev != (server.RevokedSessions{Realm: "two", User: "alice", Revoked: 2}) {
		t.Fatalf("revoke_sessions: got %d %q, want 2 revoked", w.Code, w.Body)
	}
	expect(t, "a after revoke_sessions", e.get(t, "/valid?realm=two&token="+a), 200, "NO\n")
	expect(t, "b after revoke_sessions", e.get(t, "/valid?realm=two&token="+b), 200, "NO\n")
	expect(t, "bob after alice's revoke_sessions", e.get(t, "/valid?realm=two&token="+bob), 200, "YES\nbob\nauth/Fake\nuid=1000\n\n")
	expect(t, "alice in another realm", e.get(t, "/valid?realm=r&token="+other), 200, "YES\nalice\nauth/Fake\nuid=1000\n\n")
	want := []string{
		"revoke two alice " + short(a) + " revoke_all by=admin=admin-token",
		"revoke two alice " + short(b) + " revoke_all by=admin=admin-token",
		"revoke_all two alice  by=admin=admin-token sessions=2 tokens=" + short(a) + "," + short(b),
	}
	if got := ev.take(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	w = e.adminCall("GET", "/sessions?realm=two&user=alice", "", local, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"sessions":[]`) {
		t.Errorf("list after revoke: got %d %s, want an empty list", w.Code, w.Body)
	}
}

func TestRevokeAll(t *testing.T) {
	ev := &recordEvents{}
	e := newEnv(t, cfgSessions, func(o *server.Options) { o.Hooks.Event = ev.hook })
	toks := []string{e.login(t, "two", "alice"), e.login(t, "two", "alice"), e.login(t, "two", "alice")}
	first := e.login(t, "two", "alice") // supersedes toks[0]
	bob := e.login(t, "two", "bob")
	expect(t, "superseded token", e.get(t, "/revoke_all?realm=two&token="+toks[0]), 403, "")
	expect(t, "unknown token", e.get(t, "/revoke_all?realm=two&token=nope"), 403, "")
	// Like every endpoint that needs a current token: an empty 403.
	expect(t, "missing token", e.get(t, "/revoke_all?realm=two"), 403, "")
	expect(t, "bad token", e.get(t, "/revoke_all?realm=two&token=a%0Ab"), 403, "")
	ev.take()
	expect(t, "revoke_all", e.do(t, "POST", "/revoke_all", "realm=two&token="+toks[2]), 200, "OK\n3\n")
	for _, tok := range []string{toks[1], toks[2], first} {
		expect(t, "after revoke_all", e.get(t, "/valid?realm=two&token="+tok), 200, "NO\n")
	}
	expect(t, "bob after alice's revoke_all", e.get(t, "/valid?realm=two&token="+bob), 200, "YES\nbob\nauth/Fake\nuid=1000\n\n")
	got := ev.take()
	if len(got) != 4 || got[3] != "revoke_all two alice "+short(toks[2])+" by=self sessions=3 tokens="+short(toks[1])+","+short(toks[2])+","+short(first) {
		t.Errorf("events: got %q", got)
	}
	expect(t, "revoked token", e.get(t, "/revoke_all?realm=two&token="+toks[2]), 403, "")

	// Through the method the web pages use.
	c := e.login(t, "two", "alice")
	if n, status := e.srv.RevokeAll(context.Background(), "two", c, "192.0.2.1"); n != 1 || status != 200 {
		t.Fatalf("RevokeAll: got %d, %d; want 1, 200", n, status)
	}
	if _, status := e.srv.RevokeAll(context.Background(), "two", c, "192.0.2.1"); status != 403 {
		t.Fatalf("RevokeAll with a revoked token: got %d, want 403", status)
	}
	if _, status := e.srv.RevokeAll(context.Background(), "two", "a\nb", "192.0.2.1"); status != 400 {
		t.Fatalf("RevokeAll with a bad token: got %d, want 400", status)
	}

	// An audit log that cannot be written fails the request.
	d := e.login(t, "two", "alice")
	ev.mu.Lock()
	ev.fail = true
	ev.mu.Unlock()
	expect(t, "audit down", e.get(t, "/revoke_all?realm=two&token="+url.QueryEscape(d)), 503, "ERR: audit log unavailable\n")
}
