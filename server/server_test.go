package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/user"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/realms"
	"github.com/sks-server/sks/server"
	"github.com/sks-server/sks/testrig"
	"github.com/sks-server/sks/tokens"
)

// fakeModule accepts password "pw" for any user but "down", which fails
// like an unreachable backend.
type fakeModule struct{}

func (fakeModule) Login(ctx context.Context, user, pw string) (authn.Identity, bool, error) {
	if user == "down" {
		return authn.Identity{}, false, errors.New("dial tcp: connection refused: " + authn.ErrUnavailable.Error())
	}
	if pw != "pw" {
		return authn.Identity{}, false, nil
	}
	return authn.Identity{User: user, Attrs: []authn.Attr{{Name: "uid", Value: "1000"}, {Name: "bad\nline", Value: "x"}}, Roles: []string{"staff"}}, true, nil
}

type env struct {
	url   string
	srv   *server.Server
	logs  *syncBuf
	store tokens.Store
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newEnv(t *testing.T, cfgText string, mod func(*server.Options)) *env {
	t.Helper()
	cfg, err := conf.Parse(strings.NewReader(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PAMDir == "/etc/pam.d" {
		cfg.PAMDir = t.TempDir() // no PAM service files unless a test makes them
	}
	logs := &syncBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := realms.Open(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	r.AddModule("Fake", fakeModule{})
	store, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	o := server.Options{Tokens: tokens.NewService(store), Realms: r, Logger: log, AllowLoopbackAdmin: true, AdminToken: "admin-secret"}
	if mod != nil {
		mod(&o)
	}
	s := server.New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &env{url: ts.URL, srv: s, logs: logs, store: store}
}

type answer struct {
	status int
	body   string
	ctype  string
}

func (e *env) get(t *testing.T, pathQuery string) answer {
	t.Helper()
	return e.do(t, http.MethodGet, pathQuery, "")
}

func (e *env) do(t *testing.T, method, pathQuery, form string) answer {
	t.Helper()
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, _ := http.NewRequest(method, e.url+pathQuery, body)
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, pathQuery, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header.Get("Content-Type")}
}

func expect(t *testing.T, what string, got answer, status int, body string) {
	t.Helper()
	if got.status != status || got.body != body {
		t.Errorf("%s: got %d %q, want %d %q", what, got.status, got.body, status, body)
	}
	if got.ctype != "text/plain" {
		t.Errorf("%s: Content-Type %q, want text/plain", what, got.ctype)
	}
}

var tokenRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// login returns the token of a successful /auth_token and checks the answer.
func (e *env) login(t *testing.T, realm, user string) string {
	t.Helper()
	a := e.get(t, "/auth_token?realm="+url.QueryEscape(realm)+"&user="+url.QueryEscape(user)+"&pwd=pw&module=Fake")
	tok, rest, _ := strings.Cut(a.body, "\n")
	if a.status != 200 || !tokenRE.MatchString(tok) || rest != user+"\nauth/Fake\nuid=1000\n" {
		t.Fatalf("login %s: got %d %q", user, a.status, a.body)
	}
	return tok
}

const cfgFake = `
[realms."*"]
default = "Fake"
`

func TestVersionAndRouting(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	expect(t, "version", e.get(t, "/version"), 200, "1.5\n")
	expect(t, "missing realm", e.get(t, "/valid?token=x"), 400, "ERR: missing realm\n")
	expect(t, "missing realm, unknown path", e.get(t, "/nope"), 400, "ERR: missing realm\n")
	expect(t, "missing realm, POST", e.do(t, "POST", "/valid", ""), 400, "ERR: missing realm\n")
	expect(t, "PUT with realm", e.do(t, "PUT", "/valid?realm=r", ""), 404, "Unknown path")
	expect(t, "POST without a form", e.do(t, "POST", "/valid?realm=r", ""), 404, "Unknown path")
	expect(t, "unknown GET path", e.get(t, "/nope?realm=r"), 404, "")
	expect(t, "part without =", e.get(t, "/valid?realm=r&token"), 200, "NO\n")
	expect(t, "last value wins", e.get(t, "/valid?realm=&realm=r&token=x"), 200, "NO\n")
	expect(t, "malformed escape", e.get(t, "/valid?realm=%zz"), 400, "ERR: malformed query: malformed percent-encoding\n")
}

func TestSupersedeReplaceRevoke(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	id := "alice\nauth/Fake\nuid=1000\n"
	a := e.login(t, "r", "alice")
	expect(t, "valid current", e.get(t, "/valid?realm=r&token="+a), 200, "YES\n"+id+"\n")
	expect(t, "other realm", e.get(t, "/valid?realm=r2&token="+a), 200, "NO\n")
	b := e.login(t, "r", "alice")
	expect(t, "superseded", e.get(t, "/valid?realm=r&token="+a), 200, "SUPERCEDED\n"+id+"\n")
	expect(t, "new current", e.get(t, "/valid?realm=r&token="+b), 200, "YES\n"+id+"\n")
	expect(t, "replace superseded", e.get(t, "/replace?realm=r&token="+a), 403, "")
	expect(t, "replace missing", e.get(t, "/replace?realm=r"), 403, "")
	rep := e.get(t, "/replace?realm=r&token="+b)
	c, rest, _ := strings.Cut(rep.body, "\n")
	if rep.status != 200 || !tokenRE.MatchString(c) || rest != id+"\n" {
		t.Fatalf("replace: got %d %q", rep.status, rep.body)
	}
	expect(t, "replaced token", e.get(t, "/valid?realm=r&token="+b), 200, "NO\n")
	expect(t, "replacement", e.get(t, "/valid?realm=r&token="+c), 200, "YES\n"+id+"\n")
	expect(t, "revoke superseded", e.get(t, "/revoke?realm=r&token="+a), 200, "OK\n")
	expect(t, "revoke again", e.get(t, "/revoke?realm=r&token="+a), 200, "INVALID\n")
	expect(t, "revoke missing", e.get(t, "/revoke?realm=r"), 200, "INVALID\n")
	expect(t, "revoke current", e.get(t, "/revoke?realm=r&token="+c), 200, "OK\n")
	expect(t, "revoked", e.get(t, "/valid?realm=r&token="+c), 200, "NO\n")
	expect(t, "missing token", e.get(t, "/valid?realm=r"), 200, "NO\n")
}

func TestAuthTokenAnswers(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	expect(t, "wrong password", e.get(t, "/auth_token?realm=r&user=alice&pwd=no"), 403, "")
	expect(t, "backend down", e.get(t, "/auth_token?realm=r&user=down&pwd=pw"), 503, "ERR: authentication backend unavailable\n")
	expect(t, "missing user", e.get(t, "/auth_token?realm=r&pwd=pw"), 400, "ERR: missing user\n")
	expect(t, "missing pwd", e.get(t, "/auth_token?realm=r&user=alice"), 400, "ERR: missing pwd\n")
	expect(t, "unconfigured module", e.get(t, "/auth_token?realm=r&user=alice&pwd=pw&module=ldap"), 403, "")
	expect(t, "pam without a service file", e.get(t, "/auth_token?realm=r&user=alice&pwd=pw&module=pam"), 403, "")
	// POST form: the password stays out of the URL.
	a := e.do(t, "POST", "/auth_token", "realm=r&user=bob&pwd=pw&module=Fake")
	if a.status != 200 || !strings.HasSuffix(a.body, "\nbob\nauth/Fake\nuid=1000\n") {
		t.Fatalf("POST form login: got %d %q", a.status, a.body)
	}
	// module as the client spelled it.
	a = e.get(t, "/auth_token?realm=r&user=bob&pwd=pw&module=fake")
	if !strings.HasSuffix(a.body, "\nbob\nauth/fake\nuid=1000\n") {
		t.Fatalf("module spelling: got %q", a.body)
	}
}

// TestIdentityCannotBeForged: control characters in user names or tokens
// are refused before they reach a module or an answer.
func TestIdentityCannotBeForged(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	for _, u := range []string{"alice\nroot", "alice%0Aroot", "alice%00", "alice%0D", "%20alice", "alice%7F", "alice%C2%85"} {
		raw := strings.ReplaceAll(u, "\n", "%0A")
		expect(t, "user "+u, e.get(t, "/auth_token?realm=r&pwd=pw&user="+raw), 400, "ERR: invalid user\n")
		expect(t, "stored user "+u, e.get(t, "/stored_token?realm=r&token=abc&user="+raw), 400, "ERR: invalid user\n")
	}
	expect(t, "NUL in pwd", e.get(t, "/auth_token?realm=r&user=alice&pwd=pw%00x"), 400, "ERR: invalid pwd\n")
	expect(t, "newline in token", e.get(t, "/valid?realm=r&token=a%0Ab"), 200, "NO\n") // no such token, as the original
	expect(t, "newline in realm", e.get(t, "/valid?realm=a%0Ab&token=x"), 400, "ERR: invalid realm\n")
	expect(t, "stored token with newline", e.get(t, "/stored_token?realm=r&user=u&token=a%0Ab"), 400, "ERR: invalid token\n")
	// An attribute line with a newline from a module is left out.
	tok := e.login(t, "r", "alice")
	expect(t, "attrs", e.get(t, "/valid?realm=r&token="+tok), 200, "YES\nalice\nauth/Fake\nuid=1000\n\n")
}

// TestEveryPathAnswers: the original left requests lacking user, pwd or token
// without any answer on some paths. Every path must answer at once.
func TestEveryPathAnswers(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	want := map[string]answer{
		"/valid":        {200, "NO\n", ""},
		"/revoke":       {200, "INVALID\n", ""},
		"/replace":      {403, "", ""},
		"/auth_token":   {400, "ERR: missing user\n", ""},
		"/pam_token":    {400, "ERR: missing user\n", ""},
		"/stored_token": {400, "ERR: missing user\n", ""},
		"/gen_key":      {403, "", ""}, // the original's answer; RCloud reads the body as a key
		"/get_key":      {403, "", ""},
		"/create_group": {400, "ERR: missing group\n", ""},
		"/mod_group":    {403, "", ""}, // no role in no group
		"/group_hash":   {403, "", ""},
		"/jwt":          {404, "ERR: signed tokens are not configured ([jwt] signing_key)\n", ""},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for path, w := range want {
		for _, form := range []bool{false, true} {
			var resp *http.Response
			var err error
			if form {
				resp, err = client.PostForm(e.url+path, url.Values{"realm": {"r"}})
			} else {
				resp, err = client.Get(e.url + path + "?realm=r")
			}
			if err != nil {
				t.Fatalf("%s: no answer: %v", path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != w.status || string(b) != w.body {
				t.Errorf("%s (form %v): got %d %q, want %d %q", path, form, resp.StatusCode, b, w.status, w.body)
			}
		}
	}
}

// TestStoredTokenNeedsAdmin: the original let anyone mint a session for
// anyone with /stored_token.
func TestStoredTokenNeedsAdmin(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	call := func(remote, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/stored_token?realm=r&user=mallory-victim&token=chosen-token-123", nil)
		req.RemoteAddr = remote
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		return w
	}
	for _, c := range []struct {
		remote, auth string
		status       int
	}{
		{"203.0.113.9:5555", "", 403},
		{"203.0.113.9:5555", "Bearer wrong", 403},
		{"203.0.113.9:5555", "Bearer admin-secre", 403},
		{"[2001:db8::1]:5555", "", 403},
		{"[::ffff:10.1.2.3]:5555", "", 403},
		{"203.0.113.9:5555", "Bearer admin-secret", 200},
		{"127.0.0.1:5555", "", 200},
		{"[::1]:5555", "", 200},
	} {
		w := call(c.remote, c.auth)
		if w.Code != c.status {
			t.Errorf("from %s with %q: got %d %q, want %d", c.remote, c.auth, w.Code, w.Body, c.status)
		}
		if c.status == 200 && w.Body.String() != "chosen-token-123\nmallory-victim\nstored\n" {
			t.Errorf("stored answer %q", w.Body)
		}
	}
	expect(t, "stored valid", e.get(t, "/valid?realm=r&token=chosen-token-123"), 200, "YES\nmallory-victim\nstored\n\n")
	// Without loopback trust, loopback callers need the credential too.
	e2 := newEnv(t, cfgFake, func(o *server.Options) { o.AllowLoopbackAdmin = false })
	expect(t, "loopback not trusted", e2.get(t, "/stored_token?realm=r&user=u&token=t"), 403, "ERR: admin credential required\n")
}

func TestKeys(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	tok := e.login(t, "r", "alice")
	expect(t, "get_key before gen", e.get(t, "/get_key?realm=r&token="+tok), 200, "")
	g := e.get(t, "/gen_key?realm=r&token="+tok)
	if g.status != 200 || !regexp.MustCompile(`^[0-9a-f]{128}$`).MatchString(g.body) {
		t.Fatalf("gen_key: got %d %q", g.status, g.body)
	}
	expect(t, "get_key", e.get(t, "/get_key?realm=r&token="+tok), 200, g.body)
	// The key belongs to the identity: it survives a new login and a replace.
	tok2 := e.login(t, "r", "alice")
	expect(t, "get_key after new login", e.get(t, "/get_key?realm=r&token="+tok2), 200, g.body)
	expect(t, "superseded token", e.get(t, "/get_key?realm=r&token="+tok), 403, "")
	expect(t, "gen_key superseded", e.get(t, "/gen_key?realm=r&token="+tok), 403, "")
	expect(t, "token of another realm", e.get(t, "/get_key?realm=r2&token="+tok2), 403, "")
	bob := e.login(t, "r", "bob")
	expect(t, "bob has none", e.get(t, "/get_key?realm=r&token="+bob), 200, "")
}

func TestGroups(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	alice := e.login(t, "r", "alice")
	bob := e.login(t, "r", "bob")
	carol := e.login(t, "r2", "carol")
	expect(t, "create", e.get(t, "/create_group?realm=r&group=g&token="+alice), 200, "OK\n")
	expect(t, "exists", e.get(t, "/create_group?realm=r&group=g&token="+bob), 403, "ERROR: group exists")
	expect(t, "exists in another realm", e.get(t, "/create_group?realm=r2&group=g&token="+carol), 403, "ERROR: group exists")
	expect(t, "mod by non-admin", e.get(t, "/mod_group?realm=r&group=g&token="+bob+"&add_members=bob"), 403, "")
	expect(t, "hash by non-member", e.get(t, "/group_hash?realm=r&group=g&token="+bob), 403, "")
	expect(t, "mod", e.get(t, "/mod_group?realm=r&group=g&token="+alice+"&add_members=bob,,dave&add_admins="), 200, "OK\n")
	expect(t, "self-removal", e.get(t, "/mod_group?realm=r&group=g&token="+alice+"&remove=alice,dave"), 200, "WARN: self-removal ignored\n")
	expect(t, "bad name", e.get(t, "/mod_group?realm=r&group=g&token="+alice+"&add_members=a%0Ab"), 400, "ERR: invalid user in add_members\n")
	h1 := e.get(t, "/group_hash?realm=r&group=g&token="+bob+"&salt=s1")
	h2 := e.get(t, "/group_hash?realm=r&group=g&token="+alice+"&salt=s1")
	if h1.status != 200 || h1.body != h2.body || !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(h1.body) {
		t.Fatalf("group_hash: %d %q vs %q", h1.status, h1.body, h2.body)
	}
	key, err := e.store.GroupKey(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append([]byte("s1\n"), key...))
	if h1.body != hex.EncodeToString(sum[:])+"\n" {
		t.Fatalf("group_hash %q is not SHA-256(salt, newline, key)", h1.body)
	}
	if h3 := e.get(t, "/group_hash?realm=r&group=g&token="+bob); h3.body == h1.body {
		t.Fatal("salt does not change the hash")
	}
	e.get(t, "/mod_group?realm=r&group=g&token="+alice+"&remove=bob")
	expect(t, "removed member", e.get(t, "/group_hash?realm=r&group=g&token="+bob), 403, "")
}

// TestNoSecretsInLogs: no password and no full token in any log line, even
// at debug level and on failures.
func TestNoSecretsInLogs(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	tok := e.login(t, "r", "alice")
	e.get(t, "/valid?realm=r&token="+tok)
	e.get(t, "/auth_token?realm=r&user=alice&pwd=Wr0ngPassw0rd!")
	e.get(t, "/auth_token?realm=r&user=down&pwd=pw")
	e.get(t, "/stored_token?realm=r&user=u&token=stored-secret-token-xyz")
	rep := e.get(t, "/replace?realm=r&token="+tok)
	next, _, _ := strings.Cut(rep.body, "\n")
	e.get(t, "/revoke?realm=r&token="+next)
	logs := e.logs.String()
	if !strings.Contains(logs, "login") {
		t.Fatalf("sanity: no login lines logged:\n%s", logs)
	}
	for _, secret := range []string{tok, next, "Wr0ngPassw0rd!", "stored-secret-token-xyz", "pwd=pw"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains secret %q:\n%s", secret[:6], logs)
		}
	}
}

func TestTokenLifetime(t *testing.T) {
	e := newEnv(t, cfgFake+"token_lifetime = \"1s\"\n", nil)
	tok := e.login(t, "r", "alice")
	expect(t, "fresh", e.get(t, "/valid?realm=r&token="+tok), 200, "YES\nalice\nauth/Fake\nuid=1000\n\n")
	time.Sleep(1100 * time.Millisecond)
	expect(t, "expired", e.get(t, "/valid?realm=r&token="+tok), 200, "NO\n")
	expect(t, "replace expired", e.get(t, "/replace?realm=r&token="+tok), 403, "")
}

// TestMaxSessions: with max_sessions = 2 a user keeps two sessions, the
// third login supersedes the first; realms without it keep the protocol's
// strict supersede.
func TestMaxSessions(t *testing.T) {
	var mu sync.Mutex
	var events []string
	e := newEnv(t, cfgFake+"\n[realms.two]\ndefault = \"Fake\"\nmax_sessions = 2\n", func(o *server.Options) {
		o.Hooks.Event = func(_ context.Context, ev server.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if ev.Kind == "supersede" {
				events = append(events, ev.Realm+" "+ev.User+" "+ev.Token+" "+ev.Detail)
			}
			return nil
		}
	})
	short := func(tok string) string { return tokens.HashToken(tok).Short() }
	id := "alice\nauth/Fake\nuid=1000\n\n"
	a, b := e.login(t, "two", "alice"), e.login(t, "two", "alice")
	expect(t, "first of two", e.get(t, "/valid?realm=two&token="+a), 200, "YES\n"+id)
	expect(t, "second of two", e.get(t, "/valid?realm=two&token="+b), 200, "YES\n"+id)
	c := e.login(t, "two", "alice")
	expect(t, "first after a third login", e.get(t, "/valid?realm=two&token="+a), 200, "SUPERCEDED\n"+id)
	expect(t, "second after a third login", e.get(t, "/valid?realm=two&token="+b), 200, "YES\n"+id)
	expect(t, "third", e.get(t, "/valid?realm=two&token="+c), 200, "YES\n"+id)
	// Revoking one frees its place: the next login supersedes nothing.
	expect(t, "revoke second", e.get(t, "/revoke?realm=two&token="+b), 200, "OK\n")
	d := e.login(t, "two", "alice")
	expect(t, "third after revoke and login", e.get(t, "/valid?realm=two&token="+c), 200, "YES\n"+id)
	expect(t, "fourth", e.get(t, "/valid?realm=two&token="+d), 200, "YES\n"+id)
	// Other realms keep strict supersede.
	x, y := e.login(t, "r", "alice"), e.login(t, "r", "alice")
	expect(t, "strict realm, first", e.get(t, "/valid?realm=r&token="+x), 200, "SUPERCEDED\n"+id)
	expect(t, "strict realm, second", e.get(t, "/valid?realm=r&token="+y), 200, "YES\n"+id)
	// Each superseded token is one supersede event, by its short hash.
	mu.Lock()
	defer mu.Unlock()
	want := []string{"two alice " + short(a) + " by=" + short(c), "r alice " + short(x) + " by=" + short(y)}
	if !slices.Equal(events, want) {
		t.Errorf("supersede events:\n got %q\nwant %q", events, want)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	big := "realm=r&user=alice&pwd=" + strings.Repeat("x", 100<<10)
	a := e.do(t, "POST", "/auth_token", big)
	expect(t, "oversized body", a, 400, "ERR: request body too large\n")
}

// TestPAMThroughServer logs in through the real PAM stack with the
// original's rule: the realm names the PAM service.
func TestPAMThroughServer(t *testing.T) {
	dir := testrig.PAMStack(t)
	e := newEnv(t, "pam_dir = \""+dir+"\"\n", nil)
	u, err := user.Lookup(testrig.PAMUser)
	if err != nil {
		t.Fatal(err)
	}
	q := "&user=" + testrig.PAMUser + "&pwd=" + url.QueryEscape(testrig.PAMPassword)
	a := e.get(t, "/auth_token?realm=sks-fast"+q)
	tok, rest, _ := strings.Cut(a.body, "\n")
	want := testrig.PAMUser + "\nauth/pam\nuid=" + u.Uid + "\ngid=" + u.Gid + "\n"
	if a.status != 200 || rest != want || !tokenRE.MatchString(tok) {
		t.Fatalf("pam login: got %d %q, want token and %q", a.status, a.body, want)
	}
	a = e.get(t, "/pam_token?realm=sks-fast"+q)
	if _, rest, _ := strings.Cut(a.body, "\n"); a.status != 200 || rest != testrig.PAMUser+"\npam\nuid="+u.Uid+"\ngid="+u.Gid+"\n" {
		t.Fatalf("pam_token: got %d %q", a.status, a.body)
	}
	expect(t, "superseded by pam_token", e.get(t, "/valid?realm=sks-fast&token="+tok), 200, "SUPERCEDED\n"+want+"\n")
	expect(t, "wrong password", e.get(t, "/auth_token?realm=sks-fast&user="+testrig.PAMUser+"&pwd=nope"), 403, "")
	// A realm without a service file never reaches PAM's "other" stack.
	expect(t, "no service file", e.get(t, "/auth_token?realm=no-such-svc"+q), 403, "")
	expect(t, "other", e.get(t, "/auth_token?realm=other"+q), 403, "")
}

// TestSlowLoginsDoNotBlockValid: /valid answers while logins wait on a
// slow backend.
func TestSlowLoginsDoNotBlockValid(t *testing.T) {
	dir := testrig.PAMStack(t)
	e := newEnv(t, "pam_dir = \""+dir+"\"\n"+cfgFake, nil)
	tok := e.login(t, "r", "alice")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.get(t, "/auth_token?realm=sks-test&module=pam&user="+testrig.PAMUser+"&pwd=wrong")
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the failing logins start their ~2 s delay
	start := time.Now()
	expect(t, "valid during slow logins", e.get(t, "/valid?realm=r&token="+tok), 200, "YES\nalice\nauth/Fake\nuid=1000\n\n")
	validTook := time.Since(start)
	wg.Wait()
	if total := time.Since(start); validTook > total/2 {
		t.Fatalf("/valid took %v while the failing logins took %v: it waited for them", validTook, total)
	}
}
