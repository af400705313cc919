package ldap

import (
	"os"
	"sync"
	"testing"

	"github.com/sks-server/sks/testrig"
)

// The test directory is testrig.Slapd: one private slapd per test package,
// shared by the tests that do not stop it (see sharedSlapd), plus private
// ones (testrig.StartSlapd) for tests that stop and restart theirs.

// Short names for the test directory's fixtures.
const (
	suffix   = testrig.LDAPSuffix
	readerDN = testrig.LDAPReaderDN
	readerPW = testrig.LDAPReaderPW
	alicePW  = testrig.LDAPAlicePW
	bobPW    = testrig.LDAPBobPW
	weirdUID = testrig.LDAPWeirdUID
	weirdPW  = testrig.LDAPWeirdPW
	dupPW    = testrig.LDAPDupPW
)

var (
	sharedOnce     sync.Once
	shared         *testrig.Slapd
	sharedCleanups []func()
)

// sharedTB runs the shared directory's cleanups when the package's tests
// end (in TestMain) rather than when the test that started it ends.
type sharedTB struct{ testing.TB }

func (sharedTB) Cleanup(f func()) { sharedCleanups = append(sharedCleanups, f) }

// sharedSlapd returns the package's shared directory, starting it for the
// first test or benchmark that needs it. Tests using it must not stop it.
func sharedSlapd(t testing.TB) *testrig.Slapd {
	t.Helper()
	testrig.Require(t, "slapd", "slapadd", "ldapadd", "ldapsearch")
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sks-ldap-test-")
		if err != nil {
			t.Fatal(err)
		}
		sharedCleanups = append(sharedCleanups, func() { os.RemoveAll(dir) })
		shared = testrig.StartSlapd(sharedTB{t}, dir)
	})
	if shared == nil {
		t.Fatal("the shared slapd failed to start (see the first test that used it)")
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(sharedCleanups) - 1; i >= 0; i-- {
		sharedCleanups[i]()
	}
	os.Exit(code)
}
