package tls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/testrig"
)

// fixture is one generated leaf with its files in a fresh directory.
type fixture struct {
	dir       string
	leaf      *x509.Certificate
	key       *ecdsa.PrivateKey
	leafPEM   string // leaf only
	keyPEM    string // unencrypted PKCS#8
	chainPEM  string // leaf + intermediate
	caPEM     string // intermediate + root, for openssl -certfile
	chainText []byte
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	p := getPKI(t)
	leaf, key := p.leaf(t)
	dir := t.TempDir()
	f := &fixture{dir: dir, leaf: leaf, key: key}
	f.leafPEM = writeFile(t, dir, "leaf.pem", certsPEM(leaf))
	f.keyPEM = writeFile(t, dir, "key.pem", keyPEM(t, key))
	f.chainText = certsPEM(leaf, p.inter)
	f.chainPEM = writeFile(t, dir, "chain.pem", f.chainText)
	f.caPEM = writeFile(t, dir, "cas.pem", certsPEM(p.inter, p.ca))
	return f
}

// p12 writes a PKCS12 bundle with openssl (leaf, key, intermediate, root).
func (f *fixture) p12(t testing.TB, name, password string, extra ...string) string {
	t.Helper()
	args := append([]string{"pkcs12", "-export", "-inkey", f.keyPEM, "-in", f.leafPEM,
		"-certfile", f.caPEM, "-name", "server", "-out", name, "-passout", "pass:" + password}, extra...)
	openssl(t, f.dir, args...)
	return filepath.Join(f.dir, name)
}

// jks writes a JKS keystore with keystore-go.
func (f *fixture) jks(t testing.TB, name, password string) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(f.key)
	if err != nil {
		t.Fatal(err)
	}
	ks := keystore.New()
	err = ks.SetPrivateKeyEntry("server", keystore.PrivateKeyEntry{
		CreationTime: time.Now(),
		PrivateKey:   der,
		CertificateChain: []keystore.Certificate{
			{Type: "X509", Content: f.leaf.Raw},
			{Type: "X509", Content: getPKI(t).inter.Raw},
		},
	}, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	err = ks.SetTrustedCertificateEntry("root", keystore.TrustedCertificateEntry{
		CreationTime: time.Now(),
		Certificate:  keystore.Certificate{Type: "X509", Content: getPKI(t).ca.Raw},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := ks.Store(&b, []byte(password)); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, f.dir, name, b.Bytes())
}

// keytool converts a PKCS12 bundle with Java's keytool.
func (f *fixture) keytool(t testing.TB, src, password, storetype, name string) string {
	t.Helper()
	keytool := testrig.Program(t, "keytool")
	dst := filepath.Join(f.dir, name)
	cmd := exec.Command(keytool, "-importkeystore", "-noprompt",
		"-srckeystore", src, "-srcstoretype", "PKCS12", "-srcstorepass", password,
		"-destkeystore", dst, "-deststoretype", storetype, "-deststorepass", password, "-destkeypass", password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("keytool: %v\n%s", err, out)
	}
	return dst
}

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFormatsServed loads every supported format, serves it with a real
// http.Server and checks with a real client that trusts only the root CA:
// the leaf verifies only if the intermediate is served with it.
func TestFormatsServed(t *testing.T) {
	const pw = "s3cret pass"
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fixture) (conf.TLS, []Option)
	}{
		{"pem files", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			return conf.TLS{CertFile: f.chainPEM, KeyFile: f.keyPEM}, nil
		}},
		{"pem inline", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			return conf.TLS{Cert: read(t, f.chainPEM), Key: read(t, f.keyPEM)}, nil
		}},
		{"pem chain and key in cert_file", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			p := writeFile(t, f.dir, "both.pem", append([]byte(read(t, f.keyPEM)), f.chainText...))
			return conf.TLS{CertFile: p}, nil
		}},
		{"pem bundle as -tls keystore", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			p := writeFile(t, f.dir, "bundle.pem", append(f.chainText, read(t, f.keyPEM)...))
			return conf.TLS{Keystore: p}, nil
		}},
		{"pkcs8 aes-256-cbc hmacWithSHA256", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			openssl(t, f.dir, "pkcs8", "-topk8", "-in", f.keyPEM, "-out", "enc.pem", "-passout", "pass:"+pw, "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256")
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "enc.pem"), KeyPassphrase: pw}, nil
		}},
		{"pkcs8 des3 hmacWithSHA1", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			openssl(t, f.dir, "pkcs8", "-topk8", "-in", f.keyPEM, "-out", "enc.pem", "-passout", "pass:"+pw, "-v2", "des3", "-v2prf", "hmacWithSHA1")
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "enc.pem"), KeyPassphrase: pw}, nil
		}},
		{"pkcs8 aes-128-cbc hmacWithSHA512", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			openssl(t, f.dir, "pkcs8", "-topk8", "-in", f.keyPEM, "-out", "enc.pem", "-passout", "pass:"+pw, "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512")
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "enc.pem"), KeyPassphrase: pw}, nil
		}},
		{"pkcs8 scrypt", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			openssl(t, f.dir, "pkcs8", "-topk8", "-in", f.keyPEM, "-out", "enc.pem", "-passout", "pass:"+pw, "-scrypt")
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "enc.pem"), KeyPassphrase: pw}, nil
		}},
		{"pkcs8 passphrase from -P", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			openssl(t, f.dir, "pkcs8", "-topk8", "-in", f.keyPEM, "-out", "enc.pem", "-passout", "pass:"+pw)
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "enc.pem"), Password: pw}, nil
		}},
		{"legacy Proc-Type aes256", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			openssl(t, f.dir, "ec", "-in", f.keyPEM, "-out", "legacy.pem", "-aes256", "-passout", "pass:"+pw)
			if !bytes.Contains([]byte(read(t, filepath.Join(f.dir, "legacy.pem"))), []byte("Proc-Type: 4,ENCRYPTED")) {
				t.Fatal("openssl did not write a legacy encrypted key")
			}
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "legacy.pem"), KeyPassphrase: pw}, nil
		}},
		{"legacy Proc-Type des3", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			openssl(t, f.dir, "ec", "-in", f.keyPEM, "-out", "legacy.pem", "-des3", "-passout", "pass:"+pw)
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "legacy.pem"), KeyPassphrase: pw}, nil
		}},
		{"pkcs12 openssl 3 default, default password", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			return conf.TLS{Keystore: f.p12(t, "server.p12", DefaultPassword)}, nil
		}},
		{"pkcs12 openssl -legacy with -P", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			return conf.TLS{Keystore: f.p12(t, "server.pfx", pw, "-legacy"), Password: pw}, nil
		}},
		{"pkcs12 with -PF", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			pf := writeFile(t, f.dir, "pw", []byte(pw+"\n"))
			return conf.TLS{Keystore: f.p12(t, "server.p12", pw), PasswordFile: pf}, nil
		}},
		{"pkcs12 with -PP", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			prompt := func(string) ([]byte, error) { return []byte(pw), nil }
			return conf.TLS{Keystore: f.p12(t, "server.p12", pw), PasswordPrompt: true}, []Option{WithPrompt(prompt)}
		}},
		{"pkcs12 go-pkcs12 modern", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			p := getPKI(t)
			b, err := pkcs12.Modern.Encode(f.key, f.leaf, []*x509.Certificate{p.ca, p.inter}, pw)
			if err != nil {
				t.Fatal(err)
			}
			return conf.TLS{Keystore: writeFile(t, f.dir, "ks", b), Password: pw}, nil
		}},
		{"jks keystore-go, default password", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			return conf.TLS{Keystore: f.jks(t, "keystore", DefaultPassword)}, nil
		}},
		{"jks keytool", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			src := f.p12(t, "server.p12", pw)
			return conf.TLS{Keystore: f.keytool(t, src, pw, "JKS", "keystore.jks"), Password: pw}, nil
		}},
		{"pkcs12 keytool", func(t *testing.T, f *fixture) (conf.TLS, []Option) {
			src := f.p12(t, "server.p12", pw, "-legacy")
			return conf.TLS{Keystore: f.keytool(t, src, pw, "PKCS12", "keystore"), Password: pw}, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			c, opts := tt.setup(t, f)
			l := mustLoad(t, c, opts...)
			addr := serve(t, l.Config())
			body, cs := get(t, newClient(t), addr)
			if body != "ok" {
				t.Errorf("body = %q, want ok", body)
			}
			if got, want := cs.PeerCertificates[0].SerialNumber, f.leaf.SerialNumber; got.Cmp(want) != 0 {
				t.Errorf("served leaf serial %v, want %v", got, want)
			}
			if got := len(cs.PeerCertificates); got != 2 {
				t.Errorf("served %d certificates, want 2 (leaf and intermediate, no root)", got)
			}
			if !l.NotAfter().Equal(f.leaf.NotAfter) {
				t.Errorf("NotAfter() = %v, want %v", l.NotAfter(), f.leaf.NotAfter)
			}
		})
	}
}

// TestGenpkeyAES256 covers the brief's `openssl genpkey -aes256`: a key
// made and encrypted by openssl, with a certificate issued for it here.
func TestGenpkeyAES256(t *testing.T) {
	dir := t.TempDir()
	const pw = "genpkey-pass"
	openssl(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:"+pw, "-out", "key.pem")
	openssl(t, dir, "pkey", "-in", "key.pem", "-passin", "pass:"+pw, "-pubout", "-out", "pub.pem")
	blk, _ := pem.Decode([]byte(read(t, filepath.Join(dir, "pub.pem"))))
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	p := getPKI(t)
	leaf := sign(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.inter, pub.(crypto.PublicKey), p.interKey)
	certFile := writeFile(t, dir, "chain.pem", certsPEM(leaf, p.inter))
	l := mustLoad(t, conf.TLS{CertFile: certFile, KeyFile: filepath.Join(dir, "key.pem"), KeyPassphrase: pw})
	addr := serve(t, l.Config())
	if got := servedSerial(t, addr); got.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("served serial %v, want %v", got, leaf.SerialNumber)
	}
}

// TestHTTP2 checks that ALPN offers h2.
func TestHTTP2(t *testing.T) {
	f := newFixture(t)
	l := mustLoad(t, conf.TLS{CertFile: f.chainPEM, KeyFile: f.keyPEM})
	addr := serve(t, l.Config())
	c := newClient(t)
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("proto %s, want HTTP/2.0", resp.Proto)
	}
	cfg := l.Config()
	if cfg.MinVersion != 0x0303 {
		t.Errorf("MinVersion %#x, want TLS 1.2", cfg.MinVersion)
	}
	if cfg.CipherSuites != nil {
		t.Errorf("CipherSuites set; want Go's defaults")
	}
}

// TestOrderChain checks that PKCS12 certificates are put in issuing order
// and the root and strangers are left out.
func TestOrderChain(t *testing.T) {
	p := getPKI(t)
	leaf, _ := p.leaf(t)
	other, _ := p.leaf(t)
	got := orderChain(leaf, []*x509.Certificate{p.ca, other, p.clientCA, p.inter})
	want := []*big.Int{leaf.SerialNumber, p.inter.SerialNumber}
	if len(got) != len(want) {
		t.Fatalf("chain length %d, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].SerialNumber.Cmp(want[i]) != 0 {
			t.Errorf("chain[%d] serial %v, want %v", i, got[i].SerialNumber, want[i])
		}
	}
}
