package krb5

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/sks-server/sks/testrig"
)

// The test realm is testrig.KDC's; short names for its fixtures.
const (
	testRealm = testrig.KrbRealm

	alicePW = testrig.KrbAlicePW // alice: aes256-cts-hmac-sha1-96 only
	bobPW   = testrig.KrbBobPW   // bob: aes256-cts-hmac-sha384-192 only
	otherPW = testrig.KrbOtherPW // expired and locked

	sha1Type = testrig.KrbSHA1Type
	sha2Type = testrig.KrbSHA2Type
)

func writeFile(tb testing.TB, path, body string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		tb.Fatalf("cannot write %s: %v", path, err)
	}
}

// The package's tests share one KDC, started on first use and stopped by
// TestMain after all tests. Tests that stop or break a KDC make their own.
var (
	sharedOnce sync.Once
	sharedKDC  *testrig.KDC
	sharedTB   = &pkgTB{}
)

// TestMain stops the shared KDC after the tests and benchmarks.
func TestMain(m *testing.M) {
	code := m.Run()
	sharedTB.cleanup()
	os.Exit(code)
}

// testKDC returns the package's shared KDC, starting it on first use.
func testKDC(tb testing.TB) *testrig.KDC {
	tb.Helper()
	testrig.RequireKDC(tb)
	sharedOnce.Do(func() {
		// testrig's helpers want a testing.TB whose cleanups run when the
		// owner ends; the owner here is the package, so run the set-up on a
		// goroutine with pkgTB, whose Fatalf ends just that goroutine.
		done := make(chan struct{})
		go func() {
			defer close(done)
			dir, err := os.MkdirTemp("", "sks-krb5-test-")
			if err != nil {
				sharedTB.Fatalf("%v", err)
			}
			sharedTB.Cleanup(func() { os.RemoveAll(dir) })
			sharedKDC = testrig.StartKDC(sharedTB, dir)
		}()
		<-done
	})
	if sharedTB.err != nil {
		tb.Fatalf("cannot start the shared kdc: %v", sharedTB.err)
	}
	return sharedKDC
}

// pkgTB is the testing.TB for package-level fixtures: only the methods
// testrig and StartKDC call are implemented; the embedded nil TB panics on others.
type pkgTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	err      error
}

func (p *pkgTB) Helper()             {}
func (p *pkgTB) Logf(string, ...any) {}
func (p *pkgTB) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}
func (p *pkgTB) Fatalf(format string, args ...any) {
	p.err = fmt.Errorf(format, args...)
	runtime.Goexit()
}
func (p *pkgTB) Skipf(format string, args ...any) { p.Fatalf(format, args...) }

func (p *pkgTB) cleanup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}

// blackHole listens on one port for UDP and TCP and never answers, like a
// KDC behind a firewall that drops packets. It returns host:port.
func blackHole(t *testing.T) string {
	t.Helper()
	for range 10 {
		port := testrig.FreePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			u.Close()
			continue
		}
		var mu sync.Mutex
		var conns []net.Conn
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c) // held open, never answered
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			u.Close()
			l.Close()
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
		return addr
	}
	t.Fatal("cannot find a free port for the black-hole kdc")
	return ""
}
