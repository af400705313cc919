package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/guard"
	"github.com/sks-server/sks/server"
)

// gateModule counts password checks and holds each until release is
// closed, so a test can see how many run at once.
type gateModule struct {
	checks  atomic.Int64
	release chan struct{}
}

func (m *gateModule) Login(ctx context.Context, user, pw string) (authn.Identity, bool, error) {
	m.checks.Add(1)
	select {
	case <-m.release:
	case <-ctx.Done():
		return authn.Identity{}, false, ctx.Err()
	}
	return authn.Identity{User: user}, pw == "right-password", nil
}

// guardEnv is a server with the guard on, a gate module as "Gate", and
// the events it reported.
func guardEnv(t *testing.T, m *gateModule) (*env, *[]server.Event) {
	t.Helper()
	var mu sync.Mutex
	var events []server.Event
	e := newEnv(t, cfgFake, func(o *server.Options) {
		o.Realms.AddModule("Gate", m)
		g := guard.New(guard.Config{Sleep: func(time.Duration) {}})
		o.Hooks.BeforeLogin = g.LoginGate
		o.Hooks.AfterLogin = g.LoginDone
		o.Hooks.Event = func(ctx context.Context, ev server.Event) error {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
			return nil
		}
		o.Unban = func(ctx context.Context, realm, user, address string) (bool, error) {
			if address != "" {
				return g.UnbanAddr(ctx, address)
			}
			return g.Unban(ctx, realm, user)
		}
		o.AllowLoopbackAdmin = false
	})
	return e, &events
}

func postStatus(t *testing.T, u string, form url.Values) int {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestParallelGuessesBounded: 199 wrong guesses at once, then the right
// password while they are in flight: the backend is asked at most
// user_failures (5) times, and the right password does not log in once
// that budget is spent: not while the guesses are in flight, not after.
func TestParallelGuessesBounded(t *testing.T) {
	m := &gateModule{release: make(chan struct{})}
	e, events := guardEnv(t, m)
	form := func(user, pw string) url.Values {
		return url.Values{"realm": {"r"}, "module": {"Gate"}, "user": {user}, "pwd": {pw}}
	}
	var wg sync.WaitGroup
	var n429, n403 atomic.Int64
	for i := range 199 {
		wg.Go(func() {
			switch postStatus(t, e.url+"/auth_token", form("demo", fmt.Sprintf("wrong%d", i))) {
			case 429:
				n429.Add(1)
			case 403:
				n403.Add(1)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for n429.Load() < 194 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := m.checks.Load(); got != 5 || n429.Load() != 194 {
		t.Fatalf("with 199 guesses in flight: %d password checks, %d answered 429; want 5 checks and 194 refused", got, n429.Load())
	}
	if st := postStatus(t, e.url+"/auth_token", form("demo", "right-password")); st != 429 {
		t.Errorf("right password while the budget is in flight: %d, want 429", st)
	}
	close(m.release)
	wg.Wait()
	if n403.Load() != 5 {
		t.Errorf("%d guesses answered 403, want 5", n403.Load())
	}
	for _, u := range []string{"demo", "DEMO", "ｄｅｍｏ"} {
		if st := postStatus(t, e.url+"/auth_token", form(u, "right-password")); st != 429 {
			t.Errorf("right password as %q after 5 failures: %d, want 429", u, st)
		}
	}
	if got := m.checks.Load(); got != 5 {
		t.Errorf("the backend was asked %d times, want 5", got)
	}

	// An admin lifts the ban; without the admin credential nobody can.
	unban := func(auth string, form url.Values) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/unban", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		a := e.doReq(t, req)
		return a.status, a.body
	}
	if st, body := unban("", url.Values{"realm": {"r"}, "user": {"demo"}}); st != 403 {
		t.Errorf("unban without credential: %d %q, want 403", st, body)
	}
	if st, body := unban("admin-secret", url.Values{"realm": {"r"}, "user": {"Demo"}}); st != 200 || body != "OK\n" {
		t.Errorf("unban: %d %q, want 200 OK", st, body)
	}
	if st, body := unban("admin-secret", url.Values{"realm": {"r"}, "user": {"demo"}}); st != 200 || body != "NONE\n" {
		t.Errorf("second unban: %d %q, want 200 NONE", st, body)
	}
	for _, bad := range []url.Values{{"realm": {"r"}}, {"user": {"x"}}, {"realm": {"r"}, "user": {"x"}, "address": {"10.0.0.1"}}, {"address": {"nope"}}} {
		if st, _ := unban("admin-secret", bad); st != 400 {
			t.Errorf("unban %v: %d, want 400", bad, st)
		}
	}
	if st, body := unban("admin-secret", url.Values{"address": {"::ffff:127.0.0.1"}}); st != 200 || body != "OK\n" {
		t.Errorf("unban address with 5 failures: %d %q, want 200 OK", st, body)
	}
	if st := postStatus(t, e.url+"/auth_token", form("demo", "right-password")); st != 200 {
		t.Errorf("right password after the unban: %d, want 200", st)
	}
	var audited []string
	for _, ev := range *events {
		if ev.Kind == "unban" {
			audited = append(audited, ev.Realm+"|"+ev.User+"|"+ev.Detail)
		}
	}
	want := []string{"r|Demo|by=admin-token", "r|demo|by=admin-token found=false", "||address=127.0.0.1 by=admin-token"}
	if fmt.Sprint(audited) != fmt.Sprint(want) {
		t.Errorf("unban events %q, want %q", audited, want)
	}
}

func (e *env) doReq(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return answer{resp.StatusCode, b.String(), resp.Header.Get("Content-Type")}
}
