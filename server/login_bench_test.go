package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/realms"
	"github.com/sks-server/sks/server"
	"github.com/sks-server/sks/testrig"
	"github.com/sks-server/sks/tokens"
)

// These benchmarks measure logins per second through sks (POST /auth_token
// over HTTP to a real server, a token issued into in-memory badger) against
// a real backend, next to the raw rate of the same backend from a bare
// client in the same run: "sks" and "raw" sub-benchmarks, each at
// loginClients concurrent clients. There is no brute-force limiter (no
// Hooks): the server's own cost is what is measured.

// loginClients is the number of concurrent clients in both sub-benchmarks.
const loginClients = 16

// loginParallel makes RunParallel run loginClients goroutines whatever
// GOMAXPROCS is (SetParallelism(8) on two CPUs).
func loginParallel(b *testing.B) {
	p := runtime.GOMAXPROCS(0)
	b.SetParallelism((loginClients + p - 1) / p)
}

func reportLogins(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// loginServer starts sks with cfgText behind httptest and returns its
// /auth_token URL and a client that keeps a connection per goroutine.
func loginServer(b *testing.B, cfgText string) (string, *http.Client) {
	b.Helper()
	cfg, err := conf.Parse(strings.NewReader(cfgText))
	if err != nil {
		b.Fatal(err)
	}
	cfg.PAMDir = b.TempDir() // no PAM service files
	r, err := realms.Open(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	store, err := tokens.OpenBadger(tokens.BadgerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	s := server.New(server.Options{Tokens: tokens.NewService(store), Realms: r, MaxConcurrentLogins: 64})
	ts := httptest.NewServer(s)
	b.Cleanup(ts.Close)
	tr := &http.Transport{MaxIdleConns: 4 * loginClients, MaxIdleConnsPerHost: 4 * loginClients}
	b.Cleanup(tr.CloseIdleConnections)
	return ts.URL + "/auth_token", &http.Client{Transport: tr}
}

// benchSKS posts form to u from loginClients goroutines, wanting 200.
func benchSKS(b *testing.B, u string, hc *http.Client, form url.Values) {
	body := form.Encode()
	// one login before timing: the connection pool and module warm up
	postLogin := func() bool {
		resp, err := hc.Post(u, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			b.Error(err)
			return false
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("/auth_token: %d %q", resp.StatusCode, msg)
			return false
		}
		return true
	}
	if !postLogin() {
		b.FailNow()
	}
	loginParallel(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !postLogin() {
				return
			}
		}
	})
	reportLogins(b)
}

// BenchmarkLoginLDAP: search-then-bind over plain LDAP (search as the
// service account, bind as the user, rebind; attributes and memberOf roles),
// pool_size = loginClients; raw is a bare go-ldap dial and user bind.
func BenchmarkLoginLDAP(b *testing.B) {
	testrig.Require(b, "slapd", "slapadd", "ldapadd", "ldapsearch")
	s := testrig.StartSlapd(b, b.TempDir())
	u, hc := loginServer(b, `
[modules.corp]
type = "ldap"
urls = ["`+s.PlainURL()+`"]
bind_dn = "`+testrig.LDAPReaderDN+`"
bind_password = "`+testrig.LDAPReaderPW+`"
base_dn = "`+testrig.LDAPSuffix+`"
user_filter = "(&(objectClass=posixAccount)(uid=%s))"
user_attribute = "uid"
group_attribute = "memberOf"
attributes = { uidNumber = "uid", gidNumber = "gid", mail = "mail", cn = "name" }
timeout = "3s"
pool_size = 16

[realms.bench]
modules = ["corp"]
default = "corp"
`)
	b.Run("sks", func(b *testing.B) {
		benchSKS(b, u, hc, url.Values{"realm": {"bench"}, "user": {"alice"}, "pwd": {testrig.LDAPAlicePW}, "module": {"corp"}})
	})
	b.Run("raw", func(b *testing.B) {
		dn := "uid=alice,ou=people," + testrig.LDAPSuffix
		loginParallel(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				lc, err := goldap.DialURL(s.PlainURL())
				if err != nil {
					b.Error(err)
					return
				}
				err = lc.Bind(dn, testrig.LDAPAlicePW)
				lc.Close()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportLogins(b)
	})
}

// BenchmarkLoginKerberos: an AS exchange as the user and validation of the
// KDC with the service keytab (a service ticket for HTTP/localhost, decrypted
// with the keytab); raw is gokrb5's AS exchange alone, a new client per login.
func BenchmarkLoginKerberos(b *testing.B) {
	testrig.RequireKDC(b)
	k := testrig.StartKDC(b, b.TempDir())
	u, hc := loginServer(b, `
[modules.corp]
type = "kerberos"
krb5conf = "`+k.Krb5Conf+`"
realm = "`+testrig.KrbRealm+`"
keytab = "`+k.Keytab+`"
service_principal = "`+testrig.KrbService+`"
timeout = "3s"

[realms.bench]
modules = ["corp"]
default = "corp"
`)
	b.Run("sks", func(b *testing.B) {
		benchSKS(b, u, hc, url.Values{"realm": {"bench"}, "user": {"alice"}, "pwd": {testrig.KrbAlicePW}, "module": {"corp"}})
	})
	b.Run("raw", func(b *testing.B) {
		cfg, err := config.Load(k.Krb5Conf)
		if err != nil {
			b.Fatal(err)
		}
		loginParallel(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cl := client.NewWithPassword("alice", testrig.KrbRealm, testrig.KrbAlicePW, cfg, client.DisablePAFXFAST(true))
				err := cl.Login()
				cl.Destroy()
				if err != nil {
					b.Errorf("Login: %v", err)
					return
				}
			}
		})
		reportLogins(b)
	})
}
