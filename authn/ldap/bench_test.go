package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"runtime"
	"strconv"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
)

// benchConcurrency is the number of goroutines logging in at once in both
// benchmarks.
const benchConcurrency = 16

func setParallel(b *testing.B) {
	p := (benchConcurrency + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	b.SetParallelism(p) // p*GOMAXPROCS goroutines
}

// BenchmarkLogin measures full logins through the module: search-then-bind
// with attributes and memberOf roles over pooled connections (search, user
// bind, service rebind: three round trips), over plain LDAP and LDAPS.
func BenchmarkLogin(b *testing.B) {
	s := sharedSlapd(b)
	for _, tr := range []transport{transports[0], transports[2]} {
		for _, size := range []int{4, 16} {
			b.Run(tr.name+"/pool="+strconv.Itoa(size), func(b *testing.B) {
				c := testConfig(s, tr, modes[1].cfg)
				c.PoolSize = size
				l := open(b, c)
				setParallel(b)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, ok, err := l.Login(context.Background(), "alice", alicePW); !ok || err != nil {
							b.Errorf("Login: %v %v", ok, err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkRawBind is what a module without a pool and without a search
// would cost: a bare go-ldap dial (and TLS handshake) and bind as the user
// per login, at the same concurrency, against the same slapd.
func BenchmarkRawBind(b *testing.B) {
	s := sharedSlapd(b)
	dn := "uid=alice,ou=people," + suffix
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.CAPEM))
	for _, tc := range []struct{ name, url string }{{"plain", s.PlainURL()}, {"ldaps", s.LDAPSURL()}} {
		b.Run(tc.name, func(b *testing.B) {
			tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
			setParallel(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					lc, err := goldap.DialURL(tc.url, goldap.DialWithTLSConfig(tlsConf))
					if err != nil {
						b.Error(err)
						return
					}
					err = lc.Bind(dn, alicePW)
					lc.Close()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
