package ldap

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/testrig"
)

// transport is one way of reaching the test directory.
type transport struct {
	name string
	cfg  func(s *testrig.Slapd, c *Config)
}

var transports = []transport{
	{"plain", func(s *testrig.Slapd, c *Config) { c.URLs = []string{s.PlainURL()} }},
	{"starttls", func(s *testrig.Slapd, c *Config) {
		c.URLs, c.StartTLS, c.CAPEM = []string{s.PlainURL()}, true, s.CAPEM
	}},
	{"ldaps", func(s *testrig.Slapd, c *Config) { c.URLs, c.CAPEM = []string{s.LDAPSURL()}, s.CAPEM }},
}

// identity mapping shared by both login modes
var testAttributes = map[string]string{"uidNumber": "uid", "gidNumber": "gid", "mail": "mail", "cn": "name"}

// modes are the two ways of finding the user's DN, each with its own way
// of finding groups.
var modes = []struct {
	name   string
	search bool
	cfg    func(c *Config)
}{
	{"direct", false, func(c *Config) {
		// No service account: pooled connections are anonymous; the entry
		// is read as the user; groups by search.
		c.UserDNTemplate = "uid=%s,ou=people," + suffix
		c.GroupBaseDN, c.GroupFilter = "ou=groups,"+suffix, "(&(objectClass=groupOfNames)(member=%s))"
	}},
	{"search", true, func(c *Config) {
		c.BindDN, c.BindPassword = readerDN, readerPW
		c.BaseDN, c.UserFilter = suffix, "(&(objectClass=posixAccount)(uid=%s))"
		c.GroupAttribute = "memberOf"
	}},
}

func testConfig(s *testrig.Slapd, tr transport, mode func(*Config)) Config {
	c := Config{UserAttribute: "uid", Attributes: testAttributes, Timeout: conf.Duration{Duration: 3 * time.Second}}
	tr.cfg(s, &c)
	mode(&c)
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func open(t testing.TB, c Config) *LDAP {
	t.Helper()
	l, err := Open(c, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func aliceIdentity() authn.Identity {
	return authn.Identity{
		User: "alice",
		Attrs: []authn.Attr{
			{Name: "uid", Value: "1001"}, {Name: "gid", Value: "1001"},
			{Name: "mail", Value: "alice@example.org"}, {Name: "name", Value: "alice"},
		},
		Roles: []string{"devs", "staff"},
	}
}

func TestLogin(t *testing.T) {
	s := sharedSlapd(t)
	alice := aliceIdentity()
	bob := authn.Identity{
		User: "bob",
		Attrs: []authn.Attr{
			{Name: "uid", Value: "1002"}, {Name: "gid", Value: "1002"},
			{Name: "mail", Value: "bob@example.org"}, {Name: "name", Value: "bob"},
		},
		Roles: []string{"devs"},
	}
	weird := authn.Identity{
		User:  weirdUID,
		Attrs: []authn.Attr{{Name: "uid", Value: "4001"}, {Name: "gid", Value: "4001"}, {Name: "name", Value: "weird"}},
	}
	cases := []struct {
		name       string
		user, pw   string
		want       authn.Identity
		ok         bool
		searchOnly bool
	}{
		{name: "good password", user: "alice", pw: alicePW, want: alice, ok: true},
		{name: "other user", user: "bob", pw: bobPW, want: bob, ok: true},
		{name: "name in other case gives stored name", user: "ALICE", pw: alicePW, want: alice, ok: true},
		{name: "name with special characters", user: weirdUID, pw: weirdPW, want: weird, ok: true},
		{name: "wrong password", user: "alice", pw: "wrong"},
		{name: "other user's password", user: "alice", pw: bobPW},
		{name: "unknown user", user: "nobody", pw: alicePW},
		{name: "empty password", user: "alice", pw: ""},
		{name: "password with NUL", user: "alice", pw: alicePW + "\x00"},
		{name: "empty user", user: "", pw: alicePW},
		{name: "star", user: "*", pw: alicePW},
		{name: "prefix star", user: "ali*", pw: alicePW},
		{name: "filter injection", user: ")(uid=*", pw: alicePW},
		{name: "filter injection or", user: "alice)(|(uid=*", pw: alicePW},
		{name: "backslash", user: `\`, pw: alicePW},
		{name: "escaped star", user: `\2a`, pw: alicePW},
		{name: "NUL", user: "alice\x00", pw: alicePW},
		{name: "newline", user: "alice\nuid=0", pw: alicePW},
		{name: "DN injection", user: "alice,ou=people", pw: alicePW},
		{name: "leading space", user: " alice", pw: alicePW},
		{name: "two entries match", user: "dup", pw: dupPW, searchOnly: true},
		{name: "three entries match", user: "dup3", pw: dupPW, searchOnly: true},
		{name: "service account is no user", user: "reader", pw: readerPW},
	}
	for _, tr := range transports {
		for _, m := range modes {
			t.Run(tr.name+"/"+m.name, func(t *testing.T) {
				l := open(t, testConfig(s, tr, m.cfg))
				for _, tc := range cases {
					if tc.searchOnly && !m.search {
						continue
					}
					t.Run(tc.name, func(t *testing.T) {
						got, ok, err := l.Login(context.Background(), tc.user, tc.pw)
						if err != nil {
							t.Fatalf("Login(%q): error %v", tc.user, err)
						}
						if ok != tc.ok {
							t.Fatalf("Login(%q): ok = %v, want %v", tc.user, ok, tc.ok)
						}
						if !reflect.DeepEqual(got, tc.want) {
							t.Errorf("Login(%q):\n got %+v\nwant %+v", tc.user, got, tc.want)
						}
					})
				}
				checkPoolIdentity(t, l, m.search)
			})
		}
	}
}

// checkPoolIdentity asks the directory who each idle pooled connection is
// bound as: the service account (or anonymous), never a user.
func checkPoolIdentity(t *testing.T, l *LDAP, service bool) {
	t.Helper()
	want := ""
	if service {
		want = "dn:" + readerDN
	}
	n := len(l.pool.idle)
	if n == 0 {
		t.Fatal("no idle pooled connection after logins")
	}
	var conns []*conn
	for range n {
		c, err := l.pool.get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		res, err := c.lc.WhoAmI(nil)
		if err != nil {
			t.Fatalf("whoami: %v", err)
		}
		if res.AuthzID != want {
			t.Errorf("pooled connection is bound as %q, want %q", res.AuthzID, want)
		}
	}
	for _, c := range conns {
		l.pool.put(c)
	}
}

func TestWrongCA(t *testing.T) {
	s := sharedSlapd(t)
	other, _ := testrig.SelfSigned(t, "some other CA")
	for _, tr := range transports[1:] {
		for _, m := range modes {
			t.Run(tr.name+"/"+m.name, func(t *testing.T) {
				c := testConfig(s, tr, m.cfg)
				c.CAPEM = string(other)
				l := open(t, c)
				id, ok, err := l.Login(context.Background(), "alice", alicePW)
				if ok || !reflect.DeepEqual(id, authn.Identity{}) {
					t.Fatalf("login succeeded with an untrusted server certificate: %+v", id)
				}
				if !errors.Is(err, authn.ErrUnavailable) {
					t.Fatalf("err = %v, want one wrapping authn.ErrUnavailable", err)
				}
				if !strings.Contains(err.Error(), "certificate") {
					t.Errorf("err = %v, want it to say the certificate is the problem", err)
				}

				// insecure_skip_verify is the explicit way out.
				c.InsecureSkipVerify = true
				l = open(t, c)
				if _, ok, err := l.Login(context.Background(), "alice", alicePW); !ok || err != nil {
					t.Fatalf("with insecure_skip_verify: ok=%v err=%v", ok, err)
				}
			})
		}
	}
}

func TestFailover(t *testing.T) {
	s := sharedSlapd(t)
	c := testConfig(s, transports[0], modes[1].cfg)
	// Nothing listens on the first URL (a port we just found free).
	c.URLs = []string{"ldap://127.0.0.1:1", s.PlainURL()}
	l := open(t, c)
	got, ok, err := l.Login(context.Background(), "alice", alicePW)
	if err != nil || !ok || !reflect.DeepEqual(got, aliceIdentity()) {
		t.Fatalf("Login = %+v, %v, %v; want alice's identity", got, ok, err)
	}
}

// TestOutage stops the directory, then freezes it, and checks that logins
// fail with ErrUnavailable within the timeout and recover afterwards.
func TestOutage(t *testing.T) {
	s := testrig.StartSlapd(t, t.TempDir())
	const timeout = 1 * time.Second
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := testConfig(s, tr, modes[1].cfg)
			c.Timeout.Duration = timeout
			l := open(t, c)
			login := func(wantOK bool) {
				t.Helper()
				start := time.Now()
				_, ok, err := l.Login(context.Background(), "alice", alicePW)
				if d := time.Since(start); d > timeout+500*time.Millisecond {
					t.Errorf("Login took %s, longer than the timeout %s", d, timeout)
				}
				switch {
				case wantOK && (!ok || err != nil):
					t.Fatalf("Login: ok=%v err=%v, want success", ok, err)
				case !wantOK && !errors.Is(err, authn.ErrUnavailable):
					t.Fatalf("Login: ok=%v err=%v, want an error wrapping authn.ErrUnavailable", ok, err)
				case !wantOK && ok:
					t.Fatal("Login succeeded with the directory down")
				}
			}
			login(true)

			s.Proc.Stop()
			login(false)
			login(false)
			s.Restart(t)
			login(true)

			// Frozen: connections are accepted by the kernel but nothing answers.
			s.Proc.Freeze(t)
			login(false)
			login(false)
			// A shorter ctx deadline wins over the timeout.
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			start := time.Now()
			_, _, err := l.Login(ctx, "alice", alicePW)
			cancel()
			if !errors.Is(err, authn.ErrUnavailable) || time.Since(start) > 600*time.Millisecond {
				t.Errorf("with a 200ms ctx: err=%v after %s", err, time.Since(start))
			}
			s.Proc.Thaw(t)
			login(true)

			// A restart while the pool is full of idle connections: the
			// next login must not see the dead ones.
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() { l.Login(context.Background(), "alice", alicePW) })
			}
			wg.Wait()
			if n := len(l.pool.idle); n < 2 {
				t.Logf("only %d idle connections before the restart", n)
			}
			s.Proc.Stop()
			s.Restart(t)
			login(true)
			if open := l.pool.open.Load(); open > int64(l.cfg.PoolSize) {
				t.Errorf("%d connections open, pool_size %d", open, l.cfg.PoolSize)
			}
		})
	}
}

func TestConcurrentLogins(t *testing.T) {
	s := sharedSlapd(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testConfig(s, transports[1], m.cfg)
			c.PoolSize = 3
			l := open(t, c)
			var wg sync.WaitGroup
			errs := make(chan error, 32*6)
			for g := range 32 {
				wg.Go(func() {
					for i := range 6 {
						user, pw, want := "alice", alicePW, true
						switch (g + i) % 3 {
						case 1:
							user, pw = "bob", bobPW
						case 2:
							pw, want = "wrong", false
						}
						id, ok, err := l.Login(context.Background(), user, pw)
						switch {
						case err != nil:
							errs <- err
						case ok != want:
							errs <- errors.New(user + ": wrong answer")
						case ok && id.User != user:
							errs <- errors.New(user + ": got identity of " + id.User)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if max := l.pool.maxOpen.Load(); max > int64(c.PoolSize) || max < 1 {
				t.Errorf("at most %d connections were open, pool_size %d", max, c.PoolSize)
			}
			checkPoolIdentity(t, l, m.search)
		})
	}
}

func TestClosed(t *testing.T) {
	s := sharedSlapd(t)
	l := open(t, testConfig(s, transports[0], modes[1].cfg))
	if _, ok, err := l.Login(context.Background(), "alice", alicePW); !ok || err != nil {
		t.Fatalf("Login: %v %v", ok, err)
	}
	l.Close()
	if got := l.pool.open.Load(); got != 0 {
		t.Errorf("%d connections open after Close", got)
	}
	if _, ok, err := l.Login(context.Background(), "alice", alicePW); ok || !errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("Login after Close: ok=%v err=%v", ok, err)
	}
}
