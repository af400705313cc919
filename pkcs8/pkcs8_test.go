package pkcs8

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"

	"github.com/sks-server/sks/pkcs8/internal/spec"
	"github.com/sks-server/sks/pkcs8/pkcs8test"
)

// TestPKCS8RoundTrip checks decryption against the test encryptor, and the
// refusal of wrong passphrases and obsolete schemes (openssl-made files
// are covered by TestFormatsServed).
func TestPKCS8RoundTrip(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range pkcs8test.Schemes {
		t.Run(scheme.String(), func(t *testing.T) {
			der, err := pkcs8test.Encrypt(plain, "pass", scheme)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decrypt(der, []byte("pass"))
			if err != nil {
				t.Fatal(err)
			}
			if !k.PublicKey.Equal(got.Public()) {
				t.Error("decrypted a different key")
			}
			if _, err := Decrypt(der, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: %v, want ErrWrongPassphrase", err)
			}
		})
	}
	pbes1, _ := asn1.Marshal(spec.EncryptedPrivateKeyInfo{
		Algo:          pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 3}, Parameters: asn1.NullRawValue},
		EncryptedData: make([]byte, 16),
	})
	if _, err := Decrypt(pbes1, []byte("x")); err == nil || !strings.Contains(err.Error(), "PBES1") {
		t.Errorf("PBES1: %v, want a re-encrypt hint", err)
	}
}

// FuzzParseEncryptedPKCS8 fuzzes the PBES2 parameter parser, and decrypts
// where the key derivation is cheap.
func FuzzParseEncryptedPKCS8(f *testing.F) {
	plain := []byte("0123456789abcdef-fixed plaintext")
	for _, s := range pkcs8test.Schemes {
		der, err := pkcs8test.Encrypt(plain, "pw", s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		e, err := parse(der)
		if err != nil {
			return
		}
		if (e.kdf == "pbkdf2" && e.iterations <= 4096) || (e.kdf == "scrypt" && e.n*e.r <= 16384*8) {
			Decrypt(der, []byte("pw"))
		}
	})
}
