package tls

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/sks-server/sks/conf"
)

// TestLoadErrors checks that start-up failures say which file, which
// format and what to do, and classify with the sentinel errors.
func TestLoadErrors(t *testing.T) {
	const pw = "right-password"
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fixture) conf.TLS
		is    error
		want  []string // substrings of the message; "$DIR" is the fixture's directory
	}{
		{"pkcs12 wrong password", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{Keystore: f.p12(t, "server.p12", pw), Password: "wrong"}
		}, ErrWrongPassword, []string{"wrong password for keystore $DIR/server.p12 (set -P/-PF/-PP or tls.password_file)"}},
		{"pkcs12 legacy wrong password", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{Keystore: f.p12(t, "server.p12", pw, "-legacy"), Password: "wrong"}
		}, ErrWrongPassword, []string{"wrong password for keystore $DIR/server.p12"}},
		{"pkcs12 default password does not fit", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{Keystore: f.p12(t, "server.p12", pw)}
		}, ErrWrongPassword, []string{"wrong password for keystore", `the default password "SessionKeyServer" did not fit`}},
		{"jks wrong password", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{Keystore: f.jks(t, "keystore", pw), Password: "wrong-password"}
		}, ErrWrongPassword, []string{"wrong password for keystore $DIR/keystore (set -P/-PF/-PP or tls.password_file)"}},
		{"pkcs8 wrong passphrase", func(t *testing.T, f *fixture) conf.TLS {
			openssl(t, f.dir, "pkcs8", "-topk8", "-in", f.keyPEM, "-out", "enc.pem", "-passout", "pass:"+pw)
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "enc.pem"), KeyPassphrase: "wrong"}
		}, ErrWrongPassword, []string{"wrong password for the encrypted private key in key file $DIR/enc.pem (set tls.key_passphrase, or -P/-PF/-PP)"}},
		{"legacy pem wrong passphrase", func(t *testing.T, f *fixture) conf.TLS {
			openssl(t, f.dir, "ec", "-in", f.keyPEM, "-out", "legacy.pem", "-aes256", "-passout", "pass:"+pw)
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "legacy.pem"), KeyPassphrase: "wrong"}
		}, ErrWrongPassword, []string{"wrong password for the encrypted private key in key file $DIR/legacy.pem"}},
		{"encrypted key without passphrase", func(t *testing.T, f *fixture) conf.TLS {
			openssl(t, f.dir, "pkcs8", "-topk8", "-in", f.keyPEM, "-out", "enc.pem", "-passout", "pass:"+pw)
			return conf.TLS{CertFile: f.chainPEM, KeyFile: filepath.Join(f.dir, "enc.pem")}
		}, nil, []string{"cannot load the private key from key file $DIR/enc.pem: the key is encrypted but no passphrase is set"}},
		{"key does not match certificate", func(t *testing.T, f *fixture) conf.TLS {
			other := writeFile(t, f.dir, "other.pem", keyPEM(t, newKey(t)))
			return conf.TLS{CertFile: f.chainPEM, KeyFile: other}
		}, ErrKeyMismatch, []string{"private key does not match the certificate", "key file $DIR/other.pem", `"CN=localhost"`, "certificate file $DIR/chain.pem"}},
		{"server certificate not first", func(t *testing.T, f *fixture) conf.TLS {
			p := writeFile(t, f.dir, "reversed.pem", certsPEM(getPKI(t).inter, f.leaf))
			return conf.TLS{CertFile: p, KeyFile: f.keyPEM}
		}, ErrKeyMismatch, []string{"belongs to certificate 2", "put the server certificate first"}},
		{"truncated pkcs12", func(t *testing.T, f *fixture) conf.TLS {
			p := f.p12(t, "server.p12", pw)
			b, _ := os.ReadFile(p)
			writeFile(t, f.dir, "server.p12", b[:len(b)/2])
			return conf.TLS{Keystore: p, Password: pw}
		}, ErrCorrupt, []string{"cannot load keystore $DIR/server.p12 as PKCS12: truncated or corrupt"}},
		{"truncated jks", func(t *testing.T, f *fixture) conf.TLS {
			p := f.jks(t, "keystore", pw)
			b, _ := os.ReadFile(p)
			writeFile(t, f.dir, "keystore", b[:len(b)-30])
			return conf.TLS{Keystore: p, Password: pw}
		}, ErrCorrupt, []string{"cannot load keystore $DIR/keystore as JKS: truncated or corrupt: file ends at byte"}},
		{"truncated certificate pem", func(t *testing.T, f *fixture) conf.TLS {
			b := []byte(read(t, f.chainPEM))
			p := writeFile(t, f.dir, "cut.pem", b[:100])
			return conf.TLS{CertFile: p, KeyFile: f.keyPEM}
		}, ErrNoCertificate, []string{"cannot load certificate file $DIR/cut.pem: no certificate found (no PEM CERTIFICATE block", "truncated"}},
		{"truncated key pem", func(t *testing.T, f *fixture) conf.TLS {
			b := []byte(read(t, f.keyPEM))
			p := writeFile(t, f.dir, "cut.pem", b[:len(b)-40])
			return conf.TLS{CertFile: f.chainPEM, KeyFile: p}
		}, ErrNoPrivateKey, []string{"cannot load key file $DIR/cut.pem: no private key entry (no PEM PRIVATE KEY block"}},
		{"der certificate given as pem", func(t *testing.T, f *fixture) conf.TLS {
			p := writeFile(t, f.dir, "leaf.der", f.leaf.Raw)
			return conf.TLS{CertFile: p, KeyFile: f.keyPEM}
		}, ErrNoCertificate, []string{"looks like DER or PKCS12"}},
		{"unknown keystore format", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{Keystore: writeFile(t, f.dir, "ks", []byte("hello, I am not a keystore"))}
		}, ErrCorrupt, []string{"cannot load keystore $DIR/ks: it is neither PKCS12, JKS nor PEM"}},
		{"jceks keystore", func(t *testing.T, f *fixture) conf.TLS {
			b := binary.BigEndian.AppendUint32(nil, jceksMagic)
			return conf.TLS{Keystore: writeFile(t, f.dir, "ks", append(b, 0, 0, 0, 2))}
		}, ErrUnsupported, []string{"cannot load keystore $DIR/ks: unsupported format JCEKS", "keytool -importkeystore"}},
		{"pkcs12 without private key", func(t *testing.T, f *fixture) conf.TLS {
			b, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{getPKI(t).ca}, pw)
			if err != nil {
				t.Fatal(err)
			}
			return conf.TLS{Keystore: writeFile(t, f.dir, "trust.p12", b), Password: pw}
		}, ErrNoPrivateKey, []string{"keystore $DIR/trust.p12 as PKCS12: no private key entry"}},
		{"jks without private key", func(t *testing.T, f *fixture) conf.TLS {
			ks := keystore.New()
			ks.SetTrustedCertificateEntry("root", keystore.TrustedCertificateEntry{
				CreationTime: time.Now(), Certificate: keystore.Certificate{Type: "X509", Content: getPKI(t).ca.Raw}})
			var b bytes.Buffer
			if err := ks.Store(&b, []byte(pw)); err != nil {
				t.Fatal(err)
			}
			return conf.TLS{Keystore: writeFile(t, f.dir, "trust.jks", b.Bytes()), Password: pw}
		}, ErrNoPrivateKey, []string{"keystore $DIR/trust.jks as JKS: no private key entry"}},
		{"missing keystore", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{Keystore: filepath.Join(f.dir, "nope")}
		}, os.ErrNotExist, []string{"cannot read keystore: open $DIR/nope"}},
		{"keystore and pem both", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{Keystore: "x", CertFile: f.chainPEM}
		}, ErrConfig, []string{"set either tls.keystore"}},
		{"two password sources", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{Keystore: "x", Password: "a", PasswordPrompt: true}
		}, ErrConfig, []string{"set only one of"}},
		{"nothing configured", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{}
		}, ErrConfig, []string{"no key material"}},
		{"client ca file without certificates", func(t *testing.T, f *fixture) conf.TLS {
			return conf.TLS{CertFile: f.chainPEM, KeyFile: f.keyPEM, ClientCAFile: f.keyPEM}
		}, ErrNoCertificate, []string{"cannot load client CA file $DIR/key.pem: no certificate found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			c := tt.setup(t, f)
			log, _ := testLogger(t)
			_, err := Load(c, WithLogger(log))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "$DIR", f.dir)
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if strings.Contains(msg, pw) {
				t.Errorf("error %q reveals the password", msg)
			}
			if msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("error %q does not start lower case", msg)
			}
		})
	}
}

// TestValidityWarnings checks that expired and not yet valid certificates
// load with a warning, not an error.
func TestValidityWarnings(t *testing.T) {
	p := getPKI(t)
	now := time.Now()
	tests := []struct {
		name      string
		from, to  time.Time
		wantInLog string
	}{
		{"expired", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), "tls server certificate has expired"},
		{"not yet valid", now.Add(24 * time.Hour), now.Add(48 * time.Hour), "tls server certificate is not yet valid"},
		{"expires soon", now.Add(-time.Hour), now.Add(72 * time.Hour), "tls server certificate expires soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			leaf, key := p.leafBetween(t, tt.from, tt.to)
			c := conf.TLS{
				CertFile: writeFile(t, dir, "chain.pem", certsPEM(leaf, p.inter)),
				KeyFile:  writeFile(t, dir, "key.pem", keyPEM(t, key)),
			}
			log, buf := testLogger(t)
			l, err := Load(c, WithLogger(log))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !strings.Contains(buf.String(), tt.wantInLog) || !strings.Contains(buf.String(), "level=WARN") {
				t.Errorf("log lacks a warning %q:\n%s", tt.wantInLog, buf)
			}
			if !l.NotAfter().Equal(leaf.NotAfter) {
				t.Errorf("NotAfter() = %v, want %v", l.NotAfter(), leaf.NotAfter)
			}
		})
	}
}
