package testrig

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The test realm and its users. Each user has keys of exactly one type, so
// that a login of that user exercises that encryption type end to end.
const (
	KrbRealm = "EXAMPLE.ORG"

	KrbAlicePW = "alice-Secret-1" // alice: aes256-cts-hmac-sha1-96 only
	KrbBobPW   = "bob-Secret-2"   // bob: aes256-cts-hmac-sha384-192 only
	KrbOtherPW = "other-Secret-3" // expired and locked

	KrbSHA1Type = "aes256-cts-hmac-sha1-96"
	KrbSHA2Type = "aes256-cts-hmac-sha384-192"

	KrbService  = "HTTP/localhost" // in KDC.Keytab
	KrbService2 = "HTTP/sha2"      // in KDC.Keytab2
)

// KDC is a private MIT KDC on 127.0.0.1 with its database, configuration and
// keytabs in one directory, started by StartKDC. Its realm is KrbRealm, with
// users alice (KrbAlicePW, aes256-sha1 keys only), bob (KrbBobPW, aes256-sha384
// only), expired and locked (KrbOtherPW), and the services KrbService (keys in
// Keytab) and KrbService2 (keys in Keytab2).
type KDC struct {
	Dir      string
	Port     int
	Krb5Conf string   // krb5.conf for clients (and for sks)
	Env      []string // KRB5_CONFIG and KRB5_KDC_PROFILE for MIT's tools
	Keytab   string   // KrbService, aes256-sha1 only
	Keytab2  string   // KrbService2, aes256-sha384 only
	Proc     *Proc
}

// RequireKDC skips or fails (under SKS_REQUIRE_BACKENDS=1) without MIT's tools.
func RequireKDC(tb testing.TB) {
	tb.Helper()
	Require(tb, "krb5kdc", "kdb5_util", "kadmin.local")
}

// StartKDC creates a realm in dir, adds the test principals, exports the
// service keytabs and starts krb5kdc. The KDC stops when tb's cleanups run.
// Call RequireKDC first.
func StartKDC(tb testing.TB, dir string) *KDC {
	tb.Helper()
	k := &KDC{Dir: dir, Port: FreePort(tb)}
	k.Krb5Conf = filepath.Join(dir, "krb5.conf")
	kdcConf := filepath.Join(dir, "kdc.conf")
	k.Env = []string{"KRB5_CONFIG=" + k.Krb5Conf, "KRB5_KDC_PROFILE=" + kdcConf}
	addr := "127.0.0.1:" + strconv.Itoa(k.Port)
	enctypes := KrbSHA1Type + " " + KrbSHA2Type + " aes128-cts-hmac-sha1-96"

	writeTestFile(tb, k.Krb5Conf, fmt.Sprintf(`[libdefaults]
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
`, KrbRealm, addr, enctypes))
	writeTestFile(tb, kdcConf, fmt.Sprintf(`[kdcdefaults]
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
`, KrbRealm, addr, dir, KrbSHA1Type, KrbSHA2Type))
	writeTestFile(tb, filepath.Join(dir, "kadm5.acl"), "")

	Run(tb, k.Env, "kdb5_util", "-r", KrbRealm, "create", "-s", "-P", "master-"+strconv.Itoa(k.Port))
	k.Keytab = filepath.Join(dir, "http.keytab")
	k.Keytab2 = filepath.Join(dir, "sha2.keytab")
	for _, q := range []string{
		"addprinc -pw " + KrbAlicePW + " -e " + KrbSHA1Type + ":normal alice",
		"addprinc -pw " + KrbBobPW + " -e " + KrbSHA2Type + ":normal bob",
		"addprinc -pw " + KrbOtherPW + " -pwexpire yesterday expired",
		"addprinc -pw " + KrbOtherPW + " -allow_tix locked",
		"addprinc -randkey -e " + KrbSHA1Type + ":normal " + KrbService,
		"ktadd -k " + k.Keytab + " -e " + KrbSHA1Type + ":normal " + KrbService,
		"addprinc -randkey -e " + KrbSHA2Type + ":normal " + KrbService2,
		"ktadd -k " + k.Keytab2 + " -e " + KrbSHA2Type + ":normal " + KrbService2,
	} {
		Run(tb, k.Env, "kadmin.local", "-r", KrbRealm, "-q", q)
	}
	for _, f := range []string{k.Keytab, k.Keytab2} {
		if err := os.Chmod(f, 0o600); err != nil {
			tb.Fatalf("chmod %s: %v", f, err)
		}
	}
	k.Start(tb)
	return k
}

// Start runs krb5kdc in the foreground (-n) and waits until it accepts TCP:
// StartKDC calls it, and a test that stopped the KDC calls it again.
func (k *KDC) Start(tb testing.TB) {
	tb.Helper()
	k.Proc = Start(tb, k.Dir, "krb5kdc", k.Env, "krb5kdc", "-n", "-r", KrbRealm,
		"-P", filepath.Join(k.Dir, "krb5kdc.pid"))
	k.Proc.WaitTCP(tb, "127.0.0.1:"+strconv.Itoa(k.Port), 10*time.Second)
}

func writeTestFile(tb testing.TB, path, body string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		tb.Fatalf("cannot write %s: %v", path, err)
	}
}
