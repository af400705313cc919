package guard

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// clock is a controllable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestGuard(t *testing.T, c Config) (*Guard, *clock, *[]Ban) {
	t.Helper()
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	var bans []Ban
	c.Now = clk.now
	c.Sleep = func(time.Duration) {}
	c.OnBan = func(b Ban) { bans = append(bans, b) }
	return New(c), clk, &bans
}

func before(g *Guard, realm, user, client string) (time.Duration, bool) {
	wait, refused, err := g.BeforeLogin(context.Background(), realm, user, client)
	if err != nil {
		panic(err)
	}
	return wait, refused
}

func fail(g *Guard, realm, user, client string) {
	g.AfterLogin(realm, user, client, "static", false, nil, 0)
}

func TestUserBanReachedAndLifted(t *testing.T) {
	g, clk, bans := newTestGuard(t, Config{})
	for i := 0; i < 4; i++ {
		fail(g, "r", "alice", fmt.Sprintf("10.0.0.%d", i))
		if _, refused := before(g, "r", "alice", "10.0.1.1"); refused {
			t.Fatalf("refused after %d failures, want allowed until 5", i+1)
		}
	}
	fail(g, "r", "alice", "10.0.0.9")
	wait, refused := before(g, "r", "alice", "10.0.1.1")
	if !refused || wait != 15*time.Minute {
		t.Fatalf("after 5 failures: refused=%v wait=%v, want true 15m", refused, wait)
	}
	if len(*bans) != 1 || (*bans)[0].Reason != "user" || (*bans)[0].User != "alice" {
		t.Fatalf("bans = %+v, want one user ban of alice", *bans)
	}
	if _, refused := before(g, "other", "alice", "10.0.1.1"); refused {
		t.Error("alice refused in another realm")
	}
	if _, refused := before(g, "r", "bob", "10.0.1.1"); refused {
		t.Error("bob refused")
	}
	clk.advance(10 * time.Minute)
	if wait, _ := before(g, "r", "alice", "x"); wait != 5*time.Minute {
		t.Errorf("retry after = %v, want 5m", wait)
	}
	clk.advance(5 * time.Minute)
	if _, refused := before(g, "r", "alice", "x"); refused {
		t.Error("still refused after the ban time")
	}
	// After the ban the count starts again from zero.
	fail(g, "r", "alice", "10.0.0.1")
	if _, refused := before(g, "r", "alice", "x"); refused {
		t.Error("refused after one failure following a lifted ban")
	}
}

func TestWindowExpires(t *testing.T) {
	g, clk, _ := newTestGuard(t, Config{})
	for i := 0; i < 4; i++ {
		fail(g, "r", "alice", "10.0.0.1")
	}
	clk.advance(16 * time.Minute)
	fail(g, "r", "alice", "10.0.0.1")
	if _, refused := before(g, "r", "alice", "10.0.0.1"); refused {
		t.Error("failures outside the window were counted")
	}
}

func TestSuccessAndErrorsNotCounted(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{})
	for i := 0; i < 10; i++ {
		g.AfterLogin("r", "alice", "10.0.0.1", "ldap", false, errors.New("ldap down"), 0)
	}
	for i := 0; i < 4; i++ {
		fail(g, "r", "alice", "10.0.0.1")
	}
	g.AfterLogin("r", "alice", "10.0.0.1", "ldap", true, nil, 0)
	fail(g, "r", "alice", "10.0.0.1")
	if _, refused := before(g, "r", "alice", "10.0.0.1"); refused {
		t.Error("refused: backend errors were counted or a success did not reset the count")
	}
}

func TestNormalization(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{})
	for _, u := range []string{"Alice", " alice", "ALICE ", "\talIce", "alice"} {
		fail(g, "r", u, "10.0.0.1")
	}
	for _, u := range []string{"alice", "ALICE", " Alice "} {
		if _, refused := before(g, "r", u, "10.9.9.9"); !refused {
			t.Errorf("%q not refused after 5 failures under case/space variants", u)
		}
	}
}

func TestAddressBan(t *testing.T) {
	g, _, bans := newTestGuard(t, Config{})
	for i := 0; i < 20; i++ {
		fail(g, fmt.Sprintf("realm%d", i%3), fmt.Sprintf("user%d", i), "192.0.2.7")
	}
	if _, refused := before(g, "r", "fresh", "192.0.2.7"); !refused {
		t.Fatal("address not refused after 20 failures")
	}
	if _, refused := before(g, "r", "fresh", "192.0.2.8"); refused {
		t.Error("another address refused")
	}
	if n := len(*bans); n != 1 || (*bans)[0].Reason != "address" {
		t.Errorf("bans = %+v, want one address ban", *bans)
	}
	// IPv6 addresses of one /64 share a counter.
	for i := 0; i < 20; i++ {
		fail(g, "r", fmt.Sprintf("v6user%d", i), fmt.Sprintf("2001:db8::%x", i+1))
	}
	if _, refused := before(g, "r", "x", "2001:db8::ffff:1"); !refused {
		t.Error("IPv6 /64 not refused")
	}
}

func TestPerRealmOverride(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{Realms: map[string]Limits{"strict": {UserFailures: 2}}})
	fail(g, "strict", "a", "10.0.0.1")
	fail(g, "strict", "a", "10.0.0.1")
	if _, refused := before(g, "strict", "a", "10.0.0.2"); !refused {
		t.Error("override of 2 failures not applied")
	}
	fail(g, "lax", "a", "10.0.0.1")
	fail(g, "lax", "a", "10.0.0.1")
	if _, refused := before(g, "lax", "a", "10.0.0.2"); refused {
		t.Error("override leaked into another realm")
	}
}

func TestMemoryBound(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{MaxEntries: 100})
	for i := 0; i < 1000; i++ {
		fail(g, "r", fmt.Sprintf("u%d", i), fmt.Sprintf("10.%d.%d.1", i/256, i%256))
	}
	if n := g.Len(); n > 100 {
		t.Errorf("tracked %d entries, want at most 100", n)
	}
}

func TestMinFailureLatency(t *testing.T) {
	var slept time.Duration
	g := New(Config{MinFailureLatency: 300 * time.Millisecond, Sleep: func(d time.Duration) { slept += d }})
	g.AfterLogin("r", "nobody", "10.0.0.1", "ldap", false, nil, 100*time.Millisecond)
	if slept != 200*time.Millisecond {
		t.Errorf("failure padded by %v, want 200ms", slept)
	}
	slept = 0
	g.AfterLogin("r", "alice", "10.0.0.1", "ldap", true, nil, 10*time.Millisecond)
	if slept != 0 {
		t.Errorf("success delayed by %v", slept)
	}
}

// TestEmptyClientCountsPerUserOnly: a relay's failures (client "") never
// ban an address, however many users fail.
func TestEmptyClientCountsPerUserOnly(t *testing.T) {
	g := New(Config{Default: Limits{UserFailures: 5, AddrFailures: 3}})
	ctx := context.Background()
	fail := func(user string) {
		t.Helper()
		if _, refused, err := g.LoginGate(ctx, "r", user, "192.0.2.10", true); refused || err != nil {
			t.Fatalf("%s: refused %v, err %v", user, refused, err)
		}
		g.LoginDone("r", user, "192.0.2.10", true, "static", false, nil, 0)
	}
	for i := 0; i < 20; i++ {
		fail(fmt.Sprintf("user%d", i))
	}
	if _, refused, _ := g.LoginGate(ctx, "r", "user21", "192.0.2.10", true); refused {
		t.Fatal("a relay's 21st user refused")
	}
	g.LoginDone("r", "user21", "192.0.2.10", true, "static", true, nil, 0)
	for i := 0; i < 5; i++ {
		fail("alice")
	}
	if _, refused, _ := g.LoginGate(ctx, "r", "alice", "192.0.2.10", true); !refused {
		t.Fatal("per-user limit does not hold for a relay")
	}
}
