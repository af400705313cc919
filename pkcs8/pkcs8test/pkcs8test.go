// Package pkcs8test encrypts PKCS#8 keys the way OpenSSL does, with a fixed
// salt and IV, for deterministic tests and fuzz seeds of sks/pkcs8 and its
// users. It is for tests only: a fixed salt and IV are not encryption.
package pkcs8test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"hash"

	"golang.org/x/crypto/scrypt"

	"github.com/sks-server/sks/pkcs8/internal/spec"
)

// Scheme is a combination of key derivation and cipher.
type Scheme int

// The schemes Encrypt writes.
const (
	PBKDF2SHA256AES256 Scheme = iota // openssl genpkey -aes256 (OpenSSL 3)
	PBKDF2SHA1DES3                   // openssl pkcs8 -topk8 -v2 des3 (PRF left out: the default)
	ScryptAES128                     // openssl pkcs8 -topk8 -scrypt -v2 aes128
)

// Schemes lists every Scheme.
var Schemes = []Scheme{PBKDF2SHA256AES256, PBKDF2SHA1DES3, ScryptAES128}

// String names the scheme for subtests.
func (s Scheme) String() string {
	return [...]string{"pbkdf2-sha256-aes256", "pbkdf2-sha1-des3", "scrypt-aes128"}[s]
}

// Encrypt returns the DER of an EncryptedPrivateKeyInfo holding plain (a
// PKCS#8 PrivateKeyInfo, or any bytes for fuzz seeds) under pass.
func Encrypt(plain []byte, pass string, s Scheme) ([]byte, error) {
	salt := []byte("saltsalt")
	var (
		enc      asn1.ObjectIdentifier
		keyLen   int
		newBlock func([]byte) (cipher.Block, error)
		bs       = aes.BlockSize
	)
	switch s {
	case PBKDF2SHA256AES256:
		enc, keyLen, newBlock = spec.AES256CBC, 32, aes.NewCipher
	case PBKDF2SHA1DES3:
		enc, keyLen, newBlock, bs = spec.DESEDE3CBC, 24, des.NewTripleDESCipher, des.BlockSize
	case ScryptAES128:
		enc, keyLen, newBlock = spec.AES128CBC, 16, aes.NewCipher
	}
	var (
		kdf       = spec.PBKDF2
		key       []byte
		kdfParams []byte
		err       error
	)
	switch s {
	case ScryptAES128:
		kdf = spec.Scrypt
		key, err = scrypt.Key([]byte(pass), salt, 1024, 8, 1, keyLen)
		if err == nil {
			kdfParams, err = asn1.Marshal(spec.ScryptParams{Salt: salt, N: 1024, R: 8, P: 1})
		}
	default:
		h := func() hash.Hash { return sha1.New() }
		p := spec.PBKDF2Params{Salt: salt, Iterations: 1000}
		if s == PBKDF2SHA256AES256 {
			h = sha256.New
			p.PRF = pkix.AlgorithmIdentifier{Algorithm: spec.HMACWithSHA256, Parameters: asn1.NullRawValue}
		}
		key, err = pbkdf2.Key(h, pass, salt, p.Iterations, keyLen)
		if err == nil {
			kdfParams, err = asn1.Marshal(p)
		}
	}
	if err != nil {
		return nil, err
	}
	n := bs - len(plain)%bs
	padded := append([]byte(nil), plain...)
	for range n {
		padded = append(padded, byte(n))
	}
	block, err := newBlock(key)
	if err != nil {
		return nil, err
	}
	cipher.NewCBCEncrypter(block, make([]byte, bs)).CryptBlocks(padded, padded)
	ivDER, err := asn1.Marshal(make([]byte, bs))
	if err != nil {
		return nil, err
	}
	params, err := asn1.Marshal(spec.PBES2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: kdf, Parameters: asn1.RawValue{FullBytes: kdfParams}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: enc, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(spec.EncryptedPrivateKeyInfo{
		Algo:          pkix.AlgorithmIdentifier{Algorithm: spec.PBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: padded,
	})
}
