package testrig

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
	"testing"
	"time"
)

// The test directory's entries: people alice, bob, dup (two entries), dup3
// (three entries) and LDAPWeirdUID under ou=people (dup and dup3 also
// elsewhere), the service account LDAPReaderDN under ou=svc, and groups
// staff (alice), devs (alice, bob) and nobody under ou=groups, with memberOf.

const (
	LDAPSuffix   = "dc=example,dc=org"
	LDAPRootDN   = "cn=admin," + LDAPSuffix
	LDAPRootPW   = "root-secret"
	LDAPReaderDN = "cn=reader,ou=svc," + LDAPSuffix
	LDAPReaderPW = "reader-secret"
	LDAPAlicePW  = "alice-pw"
	LDAPBobPW    = "bob pw with spaces"
	LDAPWeirdUID = "we*ird(na,me)"
	LDAPWeirdPW  = "weird-pw"
	LDAPDupPW    = "dup-pw"
)

// slapdBaseLDIF is loaded with slapadd before slapd starts.
var slapdBaseLDIF = `dn: ` + LDAPSuffix + `
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,` + LDAPSuffix + `
objectClass: organizationalUnit
ou: people

dn: ou=other,` + LDAPSuffix + `
objectClass: organizationalUnit
ou: other

dn: ou=svc,` + LDAPSuffix + `
objectClass: organizationalUnit
ou: svc

dn: ou=groups,` + LDAPSuffix + `
objectClass: organizationalUnit
ou: groups

dn: ` + LDAPReaderDN + `
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: ` + LDAPReaderPW + `

` + ldapPerson("alice", "people", 1001, LDAPAlicePW) + ldapPerson("bob", "people", 1002, LDAPBobPW) +
	ldapPerson("dup", "people", 2001, LDAPDupPW) + ldapPerson("dup", "other", 2002, LDAPDupPW) +
	ldapPerson("dup3", "people", 3001, LDAPDupPW) + ldapPerson("dup3", "other", 3002, LDAPDupPW) + ldapPerson("dup3", "svc", 3003, LDAPDupPW) +
	// a real user whose name holds DN and filter special characters
	`dn: uid=we*ird(na\,me),ou=people,` + LDAPSuffix + `
objectClass: inetOrgPerson
objectClass: posixAccount
cn: weird
sn: weird
uid: ` + LDAPWeirdUID + `
uidNumber: 4001
gidNumber: 4001
homeDirectory: /nonexistent
userPassword: ` + LDAPWeirdPW + `

`

func ldapPerson(uid, ou string, id int, pw string) string {
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

`, uid, ou, LDAPSuffix, uid, uid, uid, uid, id, id, uid, pw)
}

// slapdGroupsLDIF is added online with ldapadd so that the memberof overlay
// fills in memberOf (slapadd does not run overlays).
var slapdGroupsLDIF = `dn: cn=staff,ou=groups,` + LDAPSuffix + `
objectClass: groupOfNames
cn: staff
member: uid=alice,ou=people,` + LDAPSuffix + `

dn: cn=devs,ou=groups,` + LDAPSuffix + `
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=people,` + LDAPSuffix + `
member: uid=bob,ou=people,` + LDAPSuffix + `

dn: cn=nobody,ou=groups,` + LDAPSuffix + `
objectClass: groupOfNames
cn: nobody
member: ` + LDAPReaderDN + `
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
suffix "` + LDAPSuffix + `"
rootdn "` + LDAPRootDN + `"
rootpw ` + LDAPRootPW + `
directory {{dir}}/db
overlay memberof
`

// Slapd is a private OpenLDAP directory server on 127.0.0.1 holding the
// test users (LDAPSuffix and the LDAP* constants), started by StartSlapd.
// It stops when the test that started it ends.
type Slapd struct {
	Dir                  string
	PlainPort, LDAPSPort int
	CAPEM                string // the server certificate, self-signed, for localhost and 127.0.0.1
	Proc                 *Proc
	tb                   testing.TB // for Cleanup of restarted processes
}

// PlainURL is the ldap:// URL (StartTLS is available on it).
func (s *Slapd) PlainURL() string { return fmt.Sprintf("ldap://127.0.0.1:%d", s.PlainPort) }

// LDAPSURL is the ldaps:// URL, by the name localhost.
func (s *Slapd) LDAPSURL() string { return fmt.Sprintf("ldaps://localhost:%d", s.LDAPSPort) }

// StartSlapd sets up a directory in its own temp dir and starts slapd on free
// ports, retrying with new ports if one was taken meanwhile.
func StartSlapd(t testing.TB, dir string) *Slapd {
	t.Helper()
	Require(t, "slapd", "slapadd", "ldapadd", "ldapsearch")
	s := &Slapd{Dir: dir, tb: t}
	certPEM, keyPEM := SelfSigned(t, "sks test directory")
	s.CAPEM = string(certPEM)
	conf := strings.ReplaceAll(slapdConf, "{{dir}}", dir)
	for name, body := range map[string]string{
		"cert.pem": string(certPEM), "key.pem": string(keyPEM), "slapd.conf": conf,
		"base.ldif": slapdBaseLDIF, "groups.ldif": slapdGroupsLDIF,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	Run(t, nil, "slapadd", "-q", "-f", filepath.Join(dir, "slapd.conf"), "-l", filepath.Join(dir, "base.ldif"))
	var err error
	for try := 0; try < 3; try++ {
		s.PlainPort, s.LDAPSPort = FreePort(t), FreePort(t)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("cannot start slapd: %v", err)
	}
	Run(t, nil, "ldapadd", "-x", "-H", s.PlainURL(), "-D", LDAPRootDN, "-w", LDAPRootPW,
		"-f", filepath.Join(dir, "groups.ldif"))
	return s
}

// start runs slapd on s's ports and waits until it answers.
func (s *Slapd) start() error {
	s.Proc = Start(s.tb, s.Dir, "slapd", nil, "slapd",
		"-f", filepath.Join(s.Dir, "slapd.conf"),
		"-h", fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", s.PlainPort, s.LDAPSPort),
		"-d", "0")
	search, err := LookPath("ldapsearch")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command(search, "-x", "-H", s.PlainURL(), "-b", "", "-s", "base", "namingContexts").CombinedOutput()
		if err == nil {
			return nil
		}
		if s.Proc.Exited() {
			return fmt.Errorf("slapd exited: %v\n%s\n%s", err, out, s.Proc.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Proc.Stop()
	return fmt.Errorf("slapd not ready after 10s\n%s", s.Proc.Output())
}

// Restart starts slapd again on the same ports after stop.
func (s *Slapd) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// SelfSigned makes an EC P-256 certificate for localhost and 127.0.0.1.
func SelfSigned(t testing.TB, cn string) (certPEM, keyPEM []byte) {
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
