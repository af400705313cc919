package guard_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sks-server/sks/guard"
	"github.com/sks-server/sks/testrig"
	"github.com/sks-server/sks/tokens"
)

// hammer sends n login attempts of one user at once, spread over the
// guards (nodes), each attempt a wrong password that a counting backend
// checks. It returns how many checks the backend saw and how many attempts
// were refused.
func hammer(t *testing.T, gs []*guard.Guard, n int, user string) (checks, refused int64) {
	t.Helper()
	var c, r atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		g := gs[i%len(gs)]
		client := fmt.Sprintf("10.1.%d.%d", i/250, i%250)
		wg.Go(func() {
			<-start
			_, no, err := g.BeforeLogin(context.Background(), "r", user, client)
			if err != nil {
				t.Error(err)
				return
			}
			if no {
				r.Add(1)
				return
			}
			c.Add(1) // the backend checks a password
			time.Sleep(2 * time.Millisecond)
			g.AfterLogin("r", user, client, "fake", false, nil, 0)
		})
	}
	close(start)
	wg.Wait()
	return c.Load(), r.Load()
}

func TestConcurrentAttemptsBoundedMemory(t *testing.T) {
	g := guard.New(guard.Config{Sleep: func(time.Duration) {}})
	checks, refused := hammer(t, []*guard.Guard{g}, 200, "alice")
	if checks > 5 || checks < 1 || checks+refused != 200 {
		t.Fatalf("200 parallel attempts: %d reached the backend, %d refused; want at most 5 (user_failures)", checks, refused)
	}
	if _, no, _ := g.BeforeLogin(context.Background(), "r", "ALICE", "192.0.2.1"); !no {
		t.Error("not banned after the budget was spent")
	}
}

func TestSuccessAndErrorGiveTheAttemptBack(t *testing.T) {
	ctx := context.Background()
	g := guard.New(guard.Config{Sleep: func(time.Duration) {}})
	for i := range 5 {
		if _, no, _ := g.BeforeLogin(ctx, "r", "bob", "10.0.0."+strconv.Itoa(i)); no {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if wait, no, _ := g.BeforeLogin(ctx, "r", "bob", "10.0.0.9"); !no || wait != time.Second {
		t.Fatalf("sixth attempt with five in flight: refused=%v wait=%v, want refused, 1s", no, wait)
	}
	g.AfterLogin("r", "bob", "10.0.0.0", "fake", false, fmt.Errorf("ldap down"), 0) // refund
	g.AfterLogin("r", "bob", "10.0.0.1", "fake", true, nil, 0)                      // success
	for i := range 2 {
		if _, no, _ := g.BeforeLogin(ctx, "r", "bob", "10.0.1."+strconv.Itoa(i)); no {
			t.Fatalf("attempt refused after a refund and a success gave back %d places", i+1)
		}
	}
	if _, no, _ := g.BeforeLogin(ctx, "r", "bob", "10.0.0.9"); !no {
		t.Fatal("more attempts let through than given back")
	}
}

func TestCanonicalUserNames(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"bob", "ｂｏｂ"},              // fullwidth
		{"jos\u00e9", "jose\u0301"}, // NFC vs NFD
		{"alice", "ALICE"},
		{"alice", " Alice\t"},
		{"strasse", "STRASSE"},
		{"straße", "STRASSE"},     // full case folding
		{"ﬁle", "file"},           // ligature
		{"Ⅻ", "xii"},              // compatibility roman numeral
		{"\u212bngstr", "åNGSTR"}, // Angstrom sign
	} {
		if x, y := guard.NormalizeUser(c.a), guard.NormalizeUser(c.b); x != y {
			t.Errorf("NormalizeUser(%q) = %q, NormalizeUser(%q) = %q; want one key", c.a, x, c.b, y)
		}
	}
	if guard.UserKey("a:b", "c") == guard.UserKey("a", "b:c") {
		t.Error("realm and user can spell another pair's key")
	}
}

// startRedis runs a private redis-server for the test.
func startRedis(t *testing.T) string {
	t.Helper()
	testrig.Require(t, "redis-server")
	dir := t.TempDir()
	port := testrig.FreePort(t)
	p := testrig.Start(t, dir, "redis", nil, "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.WaitTCP(t, addr, 10*time.Second)
	return addr
}

// redisNodes opens n guards on one Redis, as n sks nodes would, each with
// its own client.
func redisNodes(t *testing.T, addr string, n int, c guard.Config) []*guard.Guard {
	var gs []*guard.Guard
	for range n {
		rc := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rc.Close() })
		c.State = guard.NewRedis(rc, "sks:", time.Minute)
		c.Sleep = func(time.Duration) {}
		gs = append(gs, guard.New(c))
	}
	return gs
}

// TestRedisNodesShareTheBudget: two nodes on one Redis allow as many
// guesses as one, under 200 concurrent attempts, and see each other's bans
// and unbans.
func TestRedisNodesShareTheBudget(t *testing.T) {
	ctx := context.Background()
	addr := startRedis(t)
	var bans atomic.Int64
	gs := redisNodes(t, addr, 2, guard.Config{OnBan: func(guard.Ban) { bans.Add(1) }})
	checks, refused := hammer(t, gs, 200, "alice")
	if checks > 5 || checks < 1 || checks+refused != 200 {
		t.Fatalf("200 parallel attempts on 2 nodes: %d reached the backend, %d refused; want at most 5", checks, refused)
	}
	for i, g := range gs {
		wait, no, err := g.BeforeLogin(ctx, "r", "Alice", "192.0.2.1")
		if err != nil || !no || wait < 14*time.Minute {
			t.Errorf("node %d after the budget: refused=%v wait=%v err=%v, want a 15m ban", i, no, wait, err)
		}
	}
	if bans.Load() != 1 {
		t.Errorf("%d bans reported, want 1", bans.Load())
	}

	// Failures add up across nodes: 3 on one and 2 on the other ban bob.
	for i := range 5 {
		g := gs[i%2]
		if _, no, _ := g.BeforeLogin(ctx, "r", "bob", "10.2.0."+strconv.Itoa(i)); no {
			t.Fatalf("bob refused at attempt %d", i+1)
		}
		g.AfterLogin("r", "bob", "10.2.0."+strconv.Itoa(i), "fake", false, nil, 0)
	}
	if _, no, _ := gs[0].BeforeLogin(ctx, "r", "bob", "10.3.0.1"); !no {
		t.Fatal("bob not banned after 5 failures spread over two nodes")
	}
	// An unban on one node lifts it on the other.
	if found, err := gs[1].Unban(ctx, "r", "BOB"); err != nil || !found {
		t.Fatalf("unban: found=%v err=%v", found, err)
	}
	if _, no, _ := gs[0].BeforeLogin(ctx, "r", "bob", "10.3.0.1"); no {
		t.Error("bob still refused on node 0 after the unban on node 1")
	}
	gs[0].AfterLogin("r", "bob", "10.3.0.1", "fake", true, nil, 0)

	// Address limits are shared too.
	for i := range 20 {
		g := gs[i%2]
		u := "user" + strconv.Itoa(i)
		if _, no, _ := g.BeforeLogin(ctx, "r", u, "198.51.100.7"); no {
			t.Fatalf("address refused at attempt %d", i+1)
		}
		g.AfterLogin("r", u, "198.51.100.7", "fake", false, nil, 0)
	}
	if _, no, _ := gs[1].BeforeLogin(ctx, "r", "fresh", "198.51.100.7"); !no {
		t.Fatal("address not banned after 20 failures over two nodes")
	}
	if found, err := gs[0].UnbanAddr(ctx, "198.51.100.7"); err != nil || !found {
		t.Fatalf("unban address: found=%v err=%v", found, err)
	}
	if _, no, _ := gs[1].BeforeLogin(ctx, "r", "fresh", "198.51.100.7"); no {
		t.Error("address still refused after the unban")
	}
}

// TestRedisDown: with Redis unreachable the guard says so (the server
// answers 503) rather than letting attempts through uncounted.
func TestRedisDown(t *testing.T) {
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(testrig.FreePort(t)), DialTimeout: time.Second, MaxRetries: -1})
	defer rc.Close()
	g := guard.New(guard.Config{State: guard.NewRedis(rc, "sks:", 0)})
	if _, _, err := g.BeforeLogin(context.Background(), "r", "alice", "10.0.0.1"); err == nil {
		t.Fatal("no error with redis down")
	}
}

// TestBadgerRestartKeepsBan: failures and bans written through to badger
// on disk survive closing and reopening the store; an unban does too.
func TestBadgerRestartKeepsBan(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*guard.Guard, *tokens.Badger) {
		t.Helper()
		st, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		m, err := guard.NewPersistentMemory(ctx, 0, st, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return guard.New(guard.Config{State: m, Sleep: func(time.Duration) {}}), st
	}
	fail := func(g *guard.Guard, user, client string) {
		t.Helper()
		if _, no, _ := g.BeforeLogin(ctx, "r", user, client); no {
			t.Fatalf("%s refused too early", user)
		}
		g.AfterLogin("r", user, client, "fake", false, nil, 0)
	}

	g, st := open()
	for i := range 5 {
		fail(g, "alice", "10.0.0."+strconv.Itoa(i))
	}
	for i := range 3 {
		fail(g, "bob", "10.0.1."+strconv.Itoa(i))
	}
	st.Close()

	g, st = open()
	if wait, no, _ := g.BeforeLogin(ctx, "r", "alice", "10.9.9.9"); !no || wait < 14*time.Minute {
		t.Fatalf("after restart: alice refused=%v wait=%v, want the 15m ban kept", no, wait)
	}
	for i := range 2 { // bob's three failures were kept: two more ban him
		fail(g, "bob", "10.0.2."+strconv.Itoa(i))
	}
	if _, no, _ := g.BeforeLogin(ctx, "r", "bob", "10.9.9.9"); !no {
		t.Fatal("after restart: bob's failures before it were forgotten")
	}
	if found, err := g.Unban(ctx, "r", "alice"); err != nil || !found {
		t.Fatalf("unban: found=%v err=%v", found, err)
	}
	st.Close()

	g, st = open()
	defer st.Close()
	if _, no, _ := g.BeforeLogin(ctx, "r", "alice", "10.9.9.9"); no {
		t.Error("after restart: the unban of alice was forgotten")
	}
	if _, no, _ := g.BeforeLogin(ctx, "r", "bob", "10.9.9.9"); !no {
		t.Error("after the second restart: bob's ban was forgotten")
	}
}

// TestConcurrentAttemptsBoundedPerAddress: 200 parallel attempts from one
// address, each for another user, reach the backend at most
// address_failures (20) times.
func TestConcurrentAttemptsBoundedPerAddress(t *testing.T) {
	g := guard.New(guard.Config{Sleep: func(time.Duration) {}})
	var checks atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 200 {
		u := "user" + strconv.Itoa(i)
		wg.Go(func() {
			<-start
			if _, no, _ := g.BeforeLogin(context.Background(), "r", u, "2001:db8::"+strconv.Itoa(i%50+1)); no {
				return
			}
			checks.Add(1)
			time.Sleep(2 * time.Millisecond)
			g.AfterLogin("r", u, "2001:db8::"+strconv.Itoa(i%50+1), "fake", false, nil, 0)
		})
	}
	close(start)
	wg.Wait()
	if n := checks.Load(); n > 20 || n < 1 {
		t.Fatalf("200 parallel attempts from one /64: %d reached the backend, want at most 20", n)
	}
}
