package tls

import (
	"bytes"
	"encoding/pem"
	"testing"
	"time"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"

	"github.com/sks-server/sks/pkcs8/pkcs8test"
)

// The parsers written in this package (not those of go-pkcs12,
// keystore-go or the standard library) are fuzzed here. Run one with e.g.
// go test -fuzz=FuzzCheckJKS ./tls/

func FuzzFirstLine(f *testing.F) {
	for _, s := range []string{"pw\n", "pw\r\nx", "\xef\xbb\xbfpw", "", "\n", "a\rb", "p\x00w"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := firstLine(b)
		if err != nil {
			return
		}
		if len(got) == 0 || bytes.ContainsAny(got, "\r\n\x00") {
			t.Fatalf("firstLine(%q) = %q", b, got)
		}
		if !bytes.HasPrefix(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), got) {
			t.Fatalf("firstLine(%q) = %q is not a prefix", b, got)
		}
	})
}

// FuzzDetectFormat checks format detection and the JKS walker together:
// neither may panic, and a walk that succeeds implies JKS.
func FuzzDetectFormat(f *testing.F) {
	jks := deterministicJKS(f)
	f.Add(jks)
	f.Add(jks[:len(jks)/2])
	f.Add([]byte{0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xce, 0xce, 0xce, 0xce})
	f.Add([]byte{0x30, 0x82, 0x01})
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ft := detectFormat(b)
		_ = ft.String()
		if _, err := checkJKS(b); err == nil && ft != formatJKS {
			t.Fatalf("checkJKS accepted a %v file", ft)
		}
		if ft == formatJKS {
			// Must not panic nor allocate by untrusted lengths.
			decodeJKS(b, "changeit")
		}
	})
}

// FuzzParseKeyPEM fuzzes the PEM key dispatcher, encrypted forms included.
func FuzzParseKeyPEM(f *testing.F) {
	for _, der := range pkcs8Seeds(f) {
		f.Add(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseKeyPEM(b, func() ([]byte, error) { return []byte("pw"), nil })
	})
}

// pkcs8Seeds returns encrypted PKCS#8 structures with fixed salts and
// IVs (fuzz seeds must be the same in every worker process), for PBKDF2
// with AES and 3DES and for scrypt.
func pkcs8Seeds(f *testing.F) [][]byte {
	f.Helper()
	plain := []byte("0123456789abcdef-fixed plaintext")
	var seeds [][]byte
	for _, s := range pkcs8test.Schemes {
		der, err := pkcs8test.Encrypt(plain, "pw", s)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, der)
	}
	return seeds
}

// deterministicJKS builds a small JKS with fixed content: fuzz seeds must
// be the same in every worker process.
func deterministicJKS(f *testing.F) []byte {
	ks := keystore.New(keystore.WithCustomRandomNumberGenerator(bytes.NewReader(make([]byte, 1024))))
	at := time.Unix(1700000000, 0)
	err := ks.SetPrivateKeyEntry("server", keystore.PrivateKeyEntry{
		CreationTime:     at,
		PrivateKey:       []byte("not really a key"),
		CertificateChain: []keystore.Certificate{{Type: "X509", Content: []byte("leaf")}, {Type: "X509", Content: []byte("ca")}},
	}, []byte("changeit"))
	if err != nil {
		f.Fatal(err)
	}
	err = ks.SetTrustedCertificateEntry("root", keystore.TrustedCertificateEntry{
		CreationTime: at, Certificate: keystore.Certificate{Type: "X509", Content: []byte("root")}})
	if err != nil {
		f.Fatal(err)
	}
	var b bytes.Buffer
	if err := ks.Store(&b, []byte("changeit")); err != nil {
		f.Fatal(err)
	}
	return b.Bytes()
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		in   string
		want format
	}{
		{"\xfe\xed\xfe\xed\x00\x00\x00\x02", formatJKS},
		{"\xce\xce\xce\xce", formatJCEKS},
		{"\x30\x82\x0a\x10", formatPKCS12},
		{"\x30\x05", formatPKCS12},
		{"-----BEGIN CERTIFICATE-----\n", formatPEM},
		{"0 preamble\n-----BEGIN PRIVATE KEY-----\n", formatPEM},
		{"Certificate:\n    Data:\n-----BEGIN CERTIFICATE-----\n", formatPEM},
		{"hello", formatUnknown},
		{"", formatUnknown},
	}
	for _, tt := range tests {
		if got := detectFormat([]byte(tt.in)); got != tt.want {
			t.Errorf("detectFormat(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
