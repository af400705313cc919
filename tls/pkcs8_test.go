package tls

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"hash"
	"strings"
	"testing"

	"golang.org/x/crypto/scrypt"
)

// encryptPKCS8ForTest is the inverse of decryptPKCS8Key with fixed salt
// and IV, for deterministic tests and fuzz seeds. prf nil means SHA-1
// (the PBKDF2 default, left out of the encoding); kdf selects PBKDF2 or
// scrypt.
func encryptPKCS8ForTest(t testing.TB, plain []byte, pass string, kdf, prf, enc asn1.ObjectIdentifier) []byte {
	t.Helper()
	salt := []byte("saltsalt")
	var keyLen, bs int
	var newBlock func([]byte) (cipher.Block, error)
	switch {
	case enc.Equal(oidAES128CBC):
		keyLen, bs, newBlock = 16, 16, aes.NewCipher
	case enc.Equal(oidAES256CBC):
		keyLen, bs, newBlock = 32, 16, aes.NewCipher
	case enc.Equal(oidDESEDE3CBC):
		keyLen, bs, newBlock = 24, 8, des.NewTripleDESCipher
	}
	iv := make([]byte, bs)
	var key []byte
	var kdfParams []byte
	var err error
	if kdf.Equal(oidScrypt) {
		key, err = scrypt.Key([]byte(pass), salt, 1024, 8, 1, keyLen)
		kdfParams, _ = asn1.Marshal(scryptParams{Salt: salt, N: 1024, R: 8, P: 1})
	} else {
		h := func() hash.Hash { return sha1.New() }
		p := pbkdf2Params{Salt: salt, Iterations: 1000}
		if prf != nil {
			h = sha256.New
			p.PRF = pkix.AlgorithmIdentifier{Algorithm: prf, Parameters: asn1.NullRawValue}
		}
		key, err = pbkdf2.Key(h, pass, salt, 1000, keyLen)
		kdfParams, _ = asn1.Marshal(p)
	}
	if err != nil {
		t.Fatal(err)
	}
	n := bs - len(plain)%bs
	padded := append(append([]byte(nil), plain...), make([]byte, n)...)
	for i := len(plain); i < len(padded); i++ {
		padded[i] = byte(n)
	}
	block, err := newBlock(key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(padded, padded)
	ivDER, _ := asn1.Marshal(iv)
	params, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: kdf, Parameters: asn1.RawValue{FullBytes: kdfParams}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: enc, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algo:          pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: padded,
	})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestPKCS8RoundTrip checks decryption against the test encryptor, and the
// refusal of wrong passphrases and obsolete schemes (openssl-made files
// are covered by TestFormatsServed).
func TestPKCS8RoundTrip(t *testing.T) {
	k := newKey(t)
	plain, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		kdf, prf, enc asn1.ObjectIdentifier
	}{
		{"pbkdf2 sha256 aes256", oidPBKDF2, oidHMACSHA256, oidAES256CBC},
		{"pbkdf2 default sha1 3des", oidPBKDF2, nil, oidDESEDE3CBC},
		{"scrypt aes128", oidScrypt, nil, oidAES128CBC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			der := encryptPKCS8ForTest(t, plain, "pass", c.kdf, c.prf, c.enc)
			got, err := decryptPKCS8Key(der, []byte("pass"))
			if err != nil {
				t.Fatal(err)
			}
			if !k.PublicKey.Equal(got.Public()) {
				t.Error("decrypted a different key")
			}
			if _, err := decryptPKCS8Key(der, []byte("wrong")); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("wrong passphrase: %v, want ErrWrongPassword", err)
			}
		})
	}
	pbes1, _ := asn1.Marshal(encryptedPrivateKeyInfo{
		Algo:          pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 3}, Parameters: asn1.NullRawValue},
		EncryptedData: make([]byte, 16),
	})
	if _, err := decryptPKCS8Key(pbes1, []byte("x")); err == nil || !strings.Contains(err.Error(), "PBES1") {
		t.Errorf("PBES1: %v, want a re-encrypt hint", err)
	}
}
