package krb5

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"sks/testrig"
)

// The test realm and its users. Each user has keys of exactly one type, so
// that a login of that user exercises that encryption type end to end.
const (
	testRealm = "EXAMPLE.ORG"

	alicePW = "alice-Secret-1" // alice: aes256-cts-hmac-sha1-96 only
	bobPW   = "bob-Secret-2"   // bob: aes256-cts-hmac-sha384-192 only
	otherPW = "other-Secret-3" // expired and locked

	sha1Type = "aes256-cts-hmac-sha1-96"
	sha2Type = "aes256-cts-hmac-sha384-192"
)

// kdc is a private MIT KDC on 127.0.0.1 with its database, configuration and
// keytabs in one directory.
type kdc struct {
	dir     string
	port    int
	krb5    string // krb5.conf for clients (and for sks)
	env     []string
	keytab  string // HTTP/localhost, aes256-sha1 only
	keytab2 string // HTTP/sha2, aes256-sha384 only
	proc    *testrig.Proc
}

// requireKDC skips or fails (under SKS_REQUIRE_BACKENDS=1) without MIT's tools.
func requireKDC(tb testing.TB) {
	tb.Helper()
	testrig.Require(tb, "krb5kdc", "kdb5_util", "kadmin.local")
}

// newKDC creates a realm in dir, adds the test principals, exports the
// service keytabs and starts krb5kdc. The KDC stops when tb's cleanups run.
func newKDC(tb testing.TB, dir string) *kdc {
	tb.Helper()
	k := &kdc{dir: dir, port: testrig.FreePort(tb)}
	k.krb5 = filepath.Join(dir, "krb5.conf")
	kdcConf := filepath.Join(dir, "kdc.conf")
	k.env = []string{"KRB5_CONFIG=" + k.krb5, "KRB5_KDC_PROFILE=" + kdcConf}
	addr := "127.0.0.1:" + strconv.Itoa(k.port)
	enctypes := sha1Type + " " + sha2Type + " aes128-cts-hmac-sha1-96"

	writeFile(tb, k.krb5, fmt.Sprintf(`[libdefaults]
 default_realm = %[1]s
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
 dns_canonicalize_hostname = false
 default_tkt_enctypes = %[3]s
 default_tgs_enctypes = %[3]s
 permitted_enctypes = %[3]s

[realms]
 %[1]s = {
  kdc = %[2]s
 }

[domain_realm]
 localhost = %[1]s
`, testRealm, addr, enctypes))
	writeFile(tb, kdcConf, fmt.Sprintf(`[kdcdefaults]
 kdc_listen = %[2]s
 kdc_tcp_listen = %[2]s

[realms]
 %[1]s = {
  database_name = %[3]s/principal
  key_stash_file = %[3]s/stash
  acl_file = %[3]s/kadm5.acl
  kdc_listen = %[2]s
  kdc_tcp_listen = %[2]s
  default_principal_flags = +preauth
  supported_enctypes = %[4]s:normal %[5]s:normal
 }

[logging]
 kdc = STDERR
`, testRealm, addr, dir, sha1Type, sha2Type))
	writeFile(tb, filepath.Join(dir, "kadm5.acl"), "")

	testrig.Run(tb, k.env, "kdb5_util", "-r", testRealm, "create", "-s", "-P", "master-"+strconv.Itoa(k.port))
	k.keytab = filepath.Join(dir, "http.keytab")
	k.keytab2 = filepath.Join(dir, "sha2.keytab")
	for _, q := range []string{
		"addprinc -pw " + alicePW + " -e " + sha1Type + ":normal alice",
		"addprinc -pw " + bobPW + " -e " + sha2Type + ":normal bob",
		"addprinc -pw " + otherPW + " -pwexpire yesterday expired",
		"addprinc -pw " + otherPW + " -allow_tix locked",
		"addprinc -randkey -e " + sha1Type + ":normal HTTP/localhost",
		"ktadd -k " + k.keytab + " -e " + sha1Type + ":normal HTTP/localhost",
		"addprinc -randkey -e " + sha2Type + ":normal HTTP/sha2",
		"ktadd -k " + k.keytab2 + " -e " + sha2Type + ":normal HTTP/sha2",
	} {
		testrig.Run(tb, k.env, "kadmin.local", "-r", testRealm, "-q", q)
	}
	for _, f := range []string{k.keytab, k.keytab2} {
		if err := os.Chmod(f, 0o600); err != nil {
			tb.Fatalf("chmod %s: %v", f, err)
		}
	}
	k.start(tb)
	return k
}

// start runs krb5kdc in the foreground (-n) and waits until it accepts TCP.
func (k *kdc) start(tb testing.TB) {
	tb.Helper()
	k.proc = testrig.Start(tb, k.dir, "krb5kdc", k.env, "krb5kdc", "-n", "-r", testRealm,
		"-P", filepath.Join(k.dir, "krb5kdc.pid"))
	k.proc.WaitTCP(tb, "127.0.0.1:"+strconv.Itoa(k.port), 10*time.Second)
}

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
	sharedKDC  *kdc
	sharedTB   = &pkgTB{}
)

// TestMain stops the shared KDC after the tests and benchmarks.
func TestMain(m *testing.M) {
	code := m.Run()
	sharedTB.cleanup()
	os.Exit(code)
}

// testKDC returns the package's shared KDC, starting it on first use.
func testKDC(tb testing.TB) *kdc {
	tb.Helper()
	requireKDC(tb)
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
			sharedKDC = newKDC(sharedTB, dir)
		}()
		<-done
	})
	if sharedTB.err != nil {
		tb.Fatalf("cannot start the shared kdc: %v", sharedTB.err)
	}
	return sharedKDC
}

// pkgTB is the testing.TB for package-level fixtures: only the methods
// testrig and newKDC call are implemented; the embedded nil TB panics on others.
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
