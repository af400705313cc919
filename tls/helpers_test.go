package tls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	stdtls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/testrig"
)

// pki is a test CA with an intermediate that issues server leaves, and a
// separate CA for client certificates. Everything is made at test time.
type pki struct {
	ca, inter         *x509.Certificate
	caKey, interKey   crypto.Signer
	clientCA          *x509.Certificate
	clientCAKey       crypto.Signer
	roots, clientRoot *x509.CertPool
}

var serial atomic.Int64

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(serial.Add(1) + 1000)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(90 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

var (
	testPKIOnce sync.Once
	testPKI     *pki
)

// getPKI returns the package's shared PKI.
func getPKI(t testing.TB) *pki {
	t.Helper()
	testPKIOnce.Do(func() {
		p := &pki{}
		caKey, interKey, clientKey := newKey(t), newKey(t), newKey(t)
		p.caKey, p.interKey, p.clientCAKey = caKey, interKey, clientKey
		tmpl := caTemplate("sks test root CA")
		p.ca = sign(t, tmpl, tmpl, caKey.Public(), caKey)
		p.inter = sign(t, caTemplate("sks test intermediate CA"), p.ca, interKey.Public(), caKey)
		ctmpl := caTemplate("sks test client CA")
		p.clientCA = sign(t, ctmpl, ctmpl, clientKey.Public(), clientKey)
		p.roots = x509.NewCertPool()
		p.roots.AddCert(p.ca)
		p.clientRoot = x509.NewCertPool()
		p.clientRoot.AddCert(p.clientCA)
		testPKI = p
	})
	return testPKI
}

// leaf issues a server certificate for localhost and 127.0.0.1 from the
// intermediate, valid between notBefore and notAfter.
func (p *pki) leafBetween(t testing.TB, notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k := newKey(t)
	c := sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.inter, k.Public(), p.interKey)
	return c, k
}

func (p *pki) leaf(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	return p.leafBetween(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
}

// clientCert issues a client certificate from issuer.
func clientCert(t testing.TB, issuer *x509.Certificate, issuerKey crypto.Signer) stdtls.Certificate {
	t.Helper()
	k := newKey(t)
	c := sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "sks-admin"},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, issuer, k.Public(), issuerKey)
	return stdtls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

func certsPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func keyPEM(t testing.TB, k crypto.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// writeFile writes a 0600 file under dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceFile swaps in new content atomically, as deployment tools do.
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// openssl runs openssl in dir, skipping the test if it is not installed.
func openssl(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(testrig.Program(t, "openssl"), args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func testLogger(t testing.TB) (*slog.Logger, *testrig.Buffer) {
	buf := &testrig.Buffer{}
	w := io.MultiWriter(buf, tWriter{t})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// mustLoad loads c or fails the test.
func mustLoad(t testing.TB, c conf.TLS, opts ...Option) *Loader {
	t.Helper()
	log, _ := testLogger(t)
	l, err := Load(c, append([]Option{WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return l
}

// serve runs a real HTTPS server with cfg on 127.0.0.1 and returns its
// address. The handler answers "ok" and, after a verified client
// certificate, "ok admin".
func serve(t testing.TB, cfg *stdtls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: cfg,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ClientCertVerified(r) {
				fmt.Fprint(w, "ok admin")
				return
			}
			fmt.Fprint(w, "ok")
		}),
		ErrorLog: nil,
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// newClient returns an HTTPS client that trusts only the test root CA.
func newClient(t testing.TB, certs ...stdtls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig: &stdtls.Config{
			RootCAs:      getPKI(t).roots,
			ServerName:   "localhost",
			Certificates: certs,
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get fetches https://addr/ with c and returns the body and the leaf the
// server presented, failing the test on any error.
func get(t testing.TB, c *http.Client, addr string) (string, *stdtls.ConnectionState) {
	t.Helper()
	body, cs, err := tryGet(c, addr)
	if err != nil {
		t.Fatalf("GET https://%s/: %v", addr, err)
	}
	return body, cs
}

func tryGet(c *http.Client, addr string) (string, *stdtls.ConnectionState, error) {
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	return string(b), resp.TLS, nil
}

// servedSerial opens a fresh connection and returns the serial of the leaf.
func servedSerial(t testing.TB, addr string) *big.Int {
	t.Helper()
	_, cs := get(t, newClient(t), addr)
	return cs.PeerCertificates[0].SerialNumber
}
