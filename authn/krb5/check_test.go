package krb5

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/testrig"
)

// TestCheck: the readiness probe gets an answer from a real KDC without
// any password, and fails within the module timeout when the KDC is
// frozen (the kernel still accepts the connection), stopped, or a black
// hole; it recovers after a restart.
func TestCheck(t *testing.T) {
	testrig.RequireKDC(t)
	k := testrig.StartKDC(t, t.TempDir())
	cfg := baseConfig(k)
	cfg.Timeout = conf.Duration{Duration: time.Second}
	m, lb := open(t, cfg)
	check := func() (error, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		err := m.Check(ctx)
		return err, time.Since(start)
	}
	if err, _ := check(); err != nil {
		t.Fatalf("Check with the kdc up: %v", err)
	}
	k.Proc.Freeze(t)
	err, took := check()
	if !errors.Is(err, authn.ErrUnavailable) || !strings.Contains(err.Error(), "no answer") || took > 3*time.Second {
		t.Errorf("Check with the kdc frozen: %v after %s, want no answer within about 1s", err, took)
	}
	k.Proc.Thaw(t)
	if err, _ := check(); err != nil {
		t.Fatalf("Check after thaw: %v", err)
	}
	k.Proc.Stop()
	if err, _ := check(); !errors.Is(err, authn.ErrUnavailable) || !strings.Contains(err.Error(), "connect") {
		t.Errorf("Check with the kdc stopped: %v, want a connect error", err)
	}
	k.Start(t)
	if err, _ := check(); err != nil {
		t.Fatalf("Check after restart: %v", err)
	}
	if strings.Contains(lb.String(), "login failed") {
		t.Errorf("a check looked like a login:\n%s", lb)
	}

	// A KDC that never answers.
	path := filepath.Join(t.TempDir(), "krb5.conf")
	writeFile(t, path, "[libdefaults]\n default_realm = "+testRealm+"\n dns_lookup_kdc = false\n[realms]\n "+
		testRealm+" = {\n  kdc = "+blackHole(t)+"\n }\n")
	hole, _ := open(t, Config{Krb5Conf: path, AcceptKDCSpoofing: true, ServicePrincipal: "HTTP/localhost", Timeout: conf.Duration{Duration: 300 * time.Millisecond}})
	start := time.Now()
	if err := hole.Check(context.Background()); !errors.Is(err, authn.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Errorf("Check against a black hole: %v after %s", err, time.Since(start))
	}
}
