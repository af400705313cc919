package ldap

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/testrig"
)

// TestCheck: the readiness check binds as the service account against a
// real slapd, fails on a wrong service password (a configuration error,
// named as such), and fails within the timeout when slapd is frozen or
// stopped, recovering when it is back.
func TestCheck(t *testing.T) {
	s := testrig.StartSlapd(t, t.TempDir())
	const timeout = time.Second
	c := testConfig(s, transports[0], modes[1].cfg)
	c.Timeout.Duration = timeout
	l := open(t, c)
	check := func() (error, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := l.Check(ctx)
		return err, time.Since(start)
	}
	if err, _ := check(); err != nil {
		t.Fatalf("Check with slapd up: %v", err)
	}

	bad := c
	bad.BindPassword = "wrong"
	if err := open(t, bad).Check(context.Background()); err == nil || !strings.Contains(err.Error(), "service account bind") {
		t.Errorf("Check with a wrong bind password: %v, want a service account bind error", err)
	}

	s.Proc.Freeze(t)
	err, took := check()
	if !errors.Is(err, authn.ErrUnavailable) || took > timeout+2*time.Second {
		t.Errorf("Check with slapd frozen: %v after %s, want ErrUnavailable within about %s", err, took, timeout)
	}
	s.Proc.Thaw(t)
	if err, _ := check(); err != nil {
		t.Fatalf("Check after thaw: %v", err)
	}
	s.Proc.Stop()
	if err, _ := check(); !errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("Check with slapd stopped: %v, want ErrUnavailable", err)
	}
}

// TestAmbiguousFilterWarns: a user_filter matching several entries is the
// administrator's to fix, so it is logged at WARN (it was DEBUG, unseen at
// the default level), and the login still fails.
func TestAmbiguousFilterWarns(t *testing.T) {
	s := sharedSlapd(t)
	var buf strings.Builder
	l, err := Open(testConfig(s, transports[0], modes[1].cfg), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, user := range []string{"dup", "dup3"} {
		buf.Reset()
		if _, ok, err := l.Login(context.Background(), user, dupPW); ok || err != nil {
			t.Fatalf("Login(%s) = %v, %v", user, ok, err)
		}
		if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "user_filter matches several entries") {
			t.Errorf("Login(%s) log:\n%s", user, buf.String())
		}
	}
}
