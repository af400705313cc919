package ldap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sks/testrig"
)

// The test directory: one private slapd per test package, shared by the
// tests that do not stop it (see sharedSlapd), plus private ones for tests
// that stop and restart theirs.

const (
	suffix   = "dc=example,dc=org"
	rootDN   = "cn=admin," + suffix
	rootPW   = "root-secret"
	readerDN = "cn=reader,ou=svc," + suffix
	readerPW = "reader-secret"
	alicePW  = "alice-pw"
	bobPW    = "bob pw with spaces"
	weirdUID = "we*ird(na,me)"
	weirdPW  = "weird-pw"
	dupPW    = "dup-pw"
)

// baseLDIF is loaded with slapadd before slapd starts.
var baseLDIF = `dn: ` + suffix + `
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,` + suffix + `
objectClass: organizationalUnit
ou: people

dn: ou=other,` + suffix + `
objectClass: organizationalUnit
ou: other

dn: ou=svc,` + suffix + `
objectClass: organizationalUnit
ou: svc

dn: ou=groups,` + suffix + `
objectClass: organizationalUnit
ou: groups

dn: ` + readerDN + `
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: ` + readerPW + `

` + person("alice", "people", 1001, alicePW) + person("bob", "people", 1002, bobPW) +
	person("dup", "people", 2001, dupPW) + person("dup", "other", 2002, dupPW) +
	person("dup3", "people", 3001, dupPW) + person("dup3", "other", 3002, dupPW) + person("dup3", "svc", 3003, dupPW) +
	// a real user whose name holds DN and filter special characters
	`dn: uid=we*ird(na\,me),ou=people,` + suffix + `
objectClass: inetOrgPerson
objectClass: posixAccount
cn: weird
sn: weird
uid: ` + weirdUID + `
uidNumber: 4001
gidNumber: 4001
homeDirectory: /nonexistent
userPassword: ` + weirdPW + `

`

func person(uid, ou string, id int, pw string) string {
	return fmt.Sprintf(`dn: uid=%s,ou=%s,%s
objectClass: inetOrgPerson
objectClass: posixAccount
cn: %s
sn: %s
uid: %s
mail: %s@example.org
uidNumber: %d
gidNumber: %d
homeDirectory: /home/%s
userPassword: %s

`, uid, ou, suffix, uid, uid, uid, uid, id, id, uid, pw)
}

// groupsLDIF is added online with ldapadd so that the memberof overlay
// fills in memberOf (slapadd does not run overlays).
var groupsLDIF = `dn: cn=staff,ou=groups,` + suffix + `
objectClass: groupOfNames
cn: staff
member: uid=alice,ou=people,` + suffix + `

dn: cn=devs,ou=groups,` + suffix + `
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=people,` + suffix + `
member: uid=bob,ou=people,` + suffix + `

dn: cn=nobody,ou=groups,` + suffix + `
objectClass: groupOfNames
cn: nobody
member: ` + readerDN + `
`

const slapdConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {{dir}}/slapd.pid
argsfile {{dir}}/slapd.args
TLSCertificateFile {{dir}}/cert.pem
TLSCertificateKeyFile {{dir}}/key.pem
sizelimit 500
database mdb
maxsize 16777216
suffix "` + suffix + `"
rootdn "` + rootDN + `"
rootpw ` + rootPW + `
directory {{dir}}/db
overlay memberof
`

// slapd is one private directory server.
type slapd struct {
	dir          string
	plain, ldaps int // ports
	caPEM        string
	proc         *testrig.Proc
	tb           testing.TB // for Cleanup of restarted processes
}

func (s *slapd) plainURL() string { return fmt.Sprintf("ldap://127.0.0.1:%d", s.plain) }
func (s *slapd) ldapsURL() string { return fmt.Sprintf("ldaps://localhost:%d", s.ldaps) }

// newSlapd sets up a directory in its own temp dir and starts slapd on free
// ports, retrying with new ports if one was taken meanwhile.
func newSlapd(t testing.TB, dir string) *slapd {
	t.Helper()
	testrig.Require(t, "slapd", "slapadd", "ldapadd", "ldapsearch")
	s := &slapd{dir: dir, tb: t}
	certPEM, keyPEM := selfSigned(t, "sks test directory")
	s.caPEM = string(certPEM)
	conf := strings.ReplaceAll(slapdConf, "{{dir}}", dir)
	for name, body := range map[string]string{
		"cert.pem": string(certPEM), "key.pem": string(keyPEM), "slapd.conf": conf,
		"base.ldif": baseLDIF, "groups.ldif": groupsLDIF,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	testrig.Run(t, nil, "slapadd", "-q", "-f", filepath.Join(dir, "slapd.conf"), "-l", filepath.Join(dir, "base.ldif"))
	var err error
	for try := 0; try < 3; try++ {
		s.plain, s.ldaps = testrig.FreePort(t), testrig.FreePort(t)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("cannot start slapd: %v", err)
	}
	testrig.Run(t, nil, "ldapadd", "-x", "-H", s.plainURL(), "-D", rootDN, "-w", rootPW,
		"-f", filepath.Join(dir, "groups.ldif"))
	return s
}

// start runs slapd on s's ports and waits until it answers.
func (s *slapd) start() error {
	s.proc = testrig.Start(s.tb, s.dir, "slapd", nil, "slapd",
		"-f", filepath.Join(s.dir, "slapd.conf"),
		"-h", fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", s.plain, s.ldaps),
		"-d", "0")
	search, err := testrig.LookPath("ldapsearch")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command(search, "-x", "-H", s.plainURL(), "-b", "", "-s", "base", "namingContexts").CombinedOutput()
		if err == nil {
			return nil
		}
		if s.proc.Exited() {
			return fmt.Errorf("slapd exited: %v\n%s\n%s", err, out, s.proc.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.proc.Stop()
	return fmt.Errorf("slapd not ready after 10s\n%s", s.proc.Output())
}

// restart starts slapd again on the same ports after stop.
func (s *slapd) restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

var (
	sharedOnce     sync.Once
	shared         *slapd
	sharedCleanups []func()
)

// sharedTB runs the shared directory's cleanups when the package's tests
// end (in TestMain) rather than when the test that started it ends.
type sharedTB struct{ testing.TB }

func (sharedTB) Cleanup(f func()) { sharedCleanups = append(sharedCleanups, f) }

// sharedSlapd returns the package's shared directory, starting it for the
// first test or benchmark that needs it. Tests using it must not stop it.
func sharedSlapd(t testing.TB) *slapd {
	t.Helper()
	testrig.Require(t, "slapd", "slapadd", "ldapadd", "ldapsearch")
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sks-ldap-test-")
		if err != nil {
			t.Fatal(err)
		}
		sharedCleanups = append(sharedCleanups, func() { os.RemoveAll(dir) })
		shared = newSlapd(sharedTB{t}, dir)
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

// selfSigned makes an EC P-256 certificate for localhost and 127.0.0.1.
func selfSigned(t testing.TB, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
