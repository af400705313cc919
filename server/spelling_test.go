package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/authn/krb5"
	"github.com/sks-server/sks/authn/ldap"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/guard"
	"github.com/sks-server/sks/server"
	"github.com/sks-server/sks/testrig"
)

// spellingEnv is a server with the guard on and the module m as "M".
func spellingEnv(t *testing.T, add func(o *server.Options)) *env {
	t.Helper()
	return newEnv(t, cfgFake, func(o *server.Options) {
		add(o)
		g := guard.New(guard.Config{Sleep: func(time.Duration) {}})
		o.Hooks.BeforeLogin = g.LoginGate
		o.Hooks.AfterLogin = g.LoginDone
	})
}

func loginAs(t *testing.T, e *env, module, user, pw string) answer {
	t.Helper()
	return e.do(t, "POST", "/auth_token", url.Values{"realm": {"r"}, "module": {module}, "user": {user}, "pwd": {pw}}.Encode())
}

// TestLockoutKeyedOnTheAccountLDAP: against a real slapd, after five
// failures for bob no other spelling the directory accepts for bob
// (fullwidth, upper case) logs in; the identity issued is the directory's
// spelling, so "ALICE" and "alice" are one identity.
func TestLockoutKeyedOnTheAccountLDAP(t *testing.T) {
	testrig.Require(t, "slapd", "slapadd", "ldapadd", "ldapsearch")
	s := testrig.StartSlapd(t, t.TempDir())
	for mode, cfg := range map[string]ldap.Config{
		"search": {URLs: []string{s.PlainURL()}, BindDN: testrig.LDAPReaderDN, BindPassword: testrig.LDAPReaderPW,
			BaseDN: testrig.LDAPSuffix, UserFilter: "(&(objectClass=posixAccount)(uid=%s))"},
		"direct": {URLs: []string{s.PlainURL()}, UserDNTemplate: "uid=%s,ou=people," + testrig.LDAPSuffix},
	} {
		t.Run(mode, func(t *testing.T) {
			cfg.Timeout = conf.Duration{Duration: 5 * time.Second}
			m, err := ldap.Open(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			e := spellingEnv(t, func(o *server.Options) { o.Realms.AddModule("L", m) })

			// One identity whatever the case typed.
			for _, u := range []string{"ALICE", "alice", "Alice"} {
				a := loginAs(t, e, "L", u, testrig.LDAPAlicePW)
				if _, rest, _ := strings.Cut(a.body, "\n"); a.status != 200 || !strings.HasPrefix(rest, "alice\n") {
					t.Fatalf("login as %q: %d %q, want identity alice", u, a.status, a.body)
				}
			}
			for i := range 5 {
				if a := loginAs(t, e, "L", "bob", "wrong"+string(rune('a'+i))); a.status != 403 {
					t.Fatalf("wrong password %d: %d", i, a.status)
				}
			}
			for _, u := range []string{"bob", "\uff42\uff4f\uff42", "BOB", "Bob"} {
				if a := loginAs(t, e, "L", u, testrig.LDAPBobPW); a.status != 429 {
					t.Errorf("right password as %q after 5 failures for bob: %d %q, want 429", u, a.status, a.body)
				}
			}
		})
	}
}

// TestLockoutKeyedOnTheAccountKerberos: against a real MIT KDC, after five
// failures for alice, alice@EXAMPLE.ORG (the same principal) is refused.
func TestLockoutKeyedOnTheAccountKerberos(t *testing.T) {
	testrig.RequireKDC(t)
	k := testrig.StartKDC(t, t.TempDir())
	m, err := krb5.Open(krb5.Config{Krb5Conf: k.Krb5Conf, Keytab: k.Keytab, ServicePrincipal: testrig.KrbService,
		Timeout: conf.Duration{Duration: 5 * time.Second}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := spellingEnv(t, func(o *server.Options) { o.Realms.AddModule("K", m) })
	if a := loginAs(t, e, "K", "alice@"+testrig.KrbRealm, testrig.KrbAlicePW); a.status != 200 {
		t.Fatalf("good login: %d %q", a.status, a.body)
	}
	for i := range 5 {
		if a := loginAs(t, e, "K", "alice", "wrong"+string(rune('a'+i))); a.status != 403 {
			t.Fatalf("wrong password %d: %d %q", i, a.status, a.body)
		}
	}
	for _, u := range []string{"alice@" + testrig.KrbRealm, "alice", "alice@example.org"} {
		if a := loginAs(t, e, "K", u, testrig.KrbAlicePW); a.status != 429 {
			t.Errorf("right password as %q after 5 failures for alice: %d %q, want 429", u, a.status, a.body)
		}
	}
	// Another principal is not affected.
	if a := loginAs(t, e, "K", "bob@"+testrig.KrbRealm, testrig.KrbBobPW); a.status != 200 {
		t.Errorf("bob: %d %q, want 200", a.status, a.body)
	}
}

// countingModule counts the password checks that reach a real module.
type countingModule struct {
	authn.Module
	n atomic.Int64
}

func (c *countingModule) Login(ctx context.Context, user, pw string) (authn.Identity, bool, error) {
	c.n.Add(1)
	return c.Module.Login(ctx, user, pw)
}

// TestParallelGuessesBoundedLDAP: 150 wrong passwords for bob at once
// against a real slapd reach it at most 5 times; bob's right password is
// refused afterwards.
func TestParallelGuessesBoundedLDAP(t *testing.T) {
	testrig.Require(t, "slapd", "slapadd", "ldapadd", "ldapsearch")
	s := testrig.StartSlapd(t, t.TempDir())
	m, err := ldap.Open(ldap.Config{URLs: []string{s.PlainURL()}, BindDN: testrig.LDAPReaderDN, BindPassword: testrig.LDAPReaderPW,
		BaseDN: testrig.LDAPSuffix, UserFilter: "(&(objectClass=posixAccount)(uid=%s))", Timeout: conf.Duration{Duration: 10 * time.Second}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cm := &countingModule{Module: m}
	e := spellingEnv(t, func(o *server.Options) { o.Realms.AddModule("L", cm) })
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range 150 {
		wg.Go(func() {
			resp, err := http.PostForm(e.url+"/auth_token", url.Values{"realm": {"r"}, "module": {"L"}, "user": {"bob"}, "pwd": {"guess" + strconv.Itoa(i)}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 429 {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if n := cm.n.Load(); n > 5 || n < 1 || refused.Load() != 150-n {
		t.Fatalf("150 parallel guesses: slapd asked %d times, %d refused; want at most 5 asked, the rest 429", n, refused.Load())
	}
	if a := loginAs(t, e, "L", "bob", testrig.LDAPBobPW); a.status != 429 {
		t.Errorf("right password after the guesses: %d %q, want 429", a.status, a.body)
	}
}
