package pam_test

import (
	"context"
	"errors"
	"os/user"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/authn/pam"
	"github.com/sks-server/sks/testrig"
)

func open(t *testing.T, dir, service string) *pam.PAM {
	t.Helper()
	m, err := pam.Open(pam.Config{Service: service, Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLogin(t *testing.T) {
	dir := testrig.PAMStack(t)
	m := open(t, dir, "sks-fast")
	u, err := user.Lookup(testrig.PAMUser)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		name, user, pw string
		ok             bool
	}{
		{"good password", testrig.PAMUser, testrig.PAMPassword, true},
		{"wrong password", testrig.PAMUser, "wrong", false},
		{"unknown user", "sks-no-such-user", "x", false},
		{"empty password", testrig.PAMUser, "", false},
		{"NUL truncating the password", testrig.PAMUser, testrig.PAMPassword + "\x00junk", false},
		{"NUL in user", testrig.PAMUser + "\x00root", testrig.PAMPassword, false},
		{"newline in user", testrig.PAMUser + "\nroot", testrig.PAMPassword, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, ok, err := m.Login(ctx, c.user, c.pw)
			if err != nil || ok != c.ok {
				t.Fatalf("got ok=%v err=%v, want ok=%v", ok, err, c.ok)
			}
			if !ok {
				return
			}
			want := []authn.Attr{{Name: "uid", Value: u.Uid}, {Name: "gid", Value: u.Gid}}
			if id.User != c.user || len(id.Attrs) != 2 || id.Attrs[0] != want[0] || id.Attrs[1] != want[1] {
				t.Fatalf("identity: got %+v, want user %s attrs %v", id, c.user, want)
			}
		})
	}
}

func TestRefusesMissingAndFallbackServices(t *testing.T) {
	dir := t.TempDir()
	for _, svc := range []string{"no-such-service", "other", "../etc/passwd", "", "a b"} {
		if _, err := pam.Open(pam.Config{Service: svc, Dir: dir}, nil); err == nil {
			t.Errorf("service %q: Open succeeded; PAM would fall back to \"other\"", svc)
		}
	}
	if _, err := pam.Open(pam.Config{Service: "no-such-service", Dir: dir}, nil); err == nil || !strings.Contains(err.Error(), "create it") {
		t.Errorf("missing service: error %v does not say how to fix it", err)
	}
}

// TestFailureDelayDoesNotSerialize: pam_unix sleeps ~2 s after a wrong
// password; concurrent logins must overlap, not queue behind each other.
func TestFailureDelayDoesNotSerialize(t *testing.T) {
	dir := testrig.PAMStack(t)
	slow := open(t, dir, "sks-test")
	fast := open(t, dir, "sks-fast")
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, err := slow.Login(ctx, testrig.PAMUser, "wrong"); ok || err != nil {
				t.Errorf("wrong password: ok=%v err=%v", ok, err)
			}
		}()
	}
	// A good login on another module while four failures sleep: it finishes
	// before them (checked by order, not by timing thresholds).
	goodDone := make(chan struct{})
	go func() {
		defer close(goodDone)
		if _, ok, err := fast.Login(ctx, testrig.PAMUser, testrig.PAMPassword); !ok || err != nil {
			t.Errorf("good login: ok=%v err=%v", ok, err)
		}
	}()
	failsDone := make(chan struct{})
	go func() { wg.Wait(); close(failsDone) }()
	select {
	case <-goodDone:
	case <-failsDone:
		t.Fatal("the good login waited for the failing ones")
	}
	<-failsDone
}

// TestContextEndsWait: a login whose context ends returns an unavailable
// error at once instead of waiting out PAM's delay.
func TestContextEndsWait(t *testing.T) {
	dir := testrig.PAMStack(t)
	slow := open(t, dir, "sks-test")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, ok, err := slow.Login(ctx, testrig.PAMUser, "wrong")
	if ok || !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("got ok=%v err=%v, want ErrUnavailable", ok, err)
	}
}
