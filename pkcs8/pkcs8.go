// Package pkcs8 decrypts PKCS#8 "ENCRYPTED PRIVATE KEY" PEM blocks (RFC 5958,
// with PBES2 from RFC 8018), as written by `openssl genpkey -aes256`,
// `openssl pkcs8 -topk8` and OpenSSL 3's `openssl rsa/ec -aes256`, for the
// TLS key and the JWT signing key alike.
//
// Why this is written here: the standard library only decrypts the legacy
// "Proc-Type: 4,ENCRYPTED" format (x509.DecryptPEMBlock, deprecated), and of
// the libraries in our dependency set go-pkcs12 implements PBES2 only
// internally, without exporting it. The one well-known standalone package
// (youmark/pkcs8) is not among our dependencies and pulls in more than we
// need. PBES2 is small: parse the ASN.1 parameters, derive the key with
// PBKDF2 (crypto/pbkdf2, standard since Go 1.24) or scrypt, decrypt CBC, and
// check the padding. Only decryption is implemented; nothing here encrypts.
package pkcs8

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/scrypt"

	"github.com/sks-server/sks/pkcs8/internal/spec"
)

// ErrWrongPassphrase means the passphrase does not decrypt the key.
var ErrWrongPassphrase = errors.New("wrong passphrase")

var errBadPadding = errors.New("bad padding")

// Limits that keep a corrupt or hostile key file from pinning the CPU or
// exhausting memory at start-up. They are far above what OpenSSL writes
// (PBKDF2 2048 iterations; scrypt N=16384, r=8, p=1).
const (
	maxPBKDF2Iterations = 10_000_000
	maxScryptMemory     = 1 << 30 // 128*N*r bytes
	maxScryptP          = 16
)

// pbes2 is a parsed PBES2 encryption: everything needed to derive the key
// and decrypt, without having done either.
type pbes2 struct {
	kdf        string // "pbkdf2" or "scrypt"
	salt       []byte
	iterations int
	prf        func() hash.Hash
	prfName    string
	n, r, p    int
	cipher     string
	keyLen     int
	newBlock   func([]byte) (cipher.Block, error)
	iv         []byte
	ciphertext []byte
}

// parse parses the DER of an EncryptedPrivateKeyInfo. It does
// no cryptography, so it is cheap to fuzz.
func parse(der []byte) (*pbes2, error) {
	var info spec.EncryptedPrivateKeyInfo
	rest, err := asn1.Unmarshal(der, &info)
	if err != nil {
		return nil, fmt.Errorf("not an encrypted PKCS#8 structure: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("trailing data after the encrypted PKCS#8 structure")
	}
	alg := info.Algo.Algorithm
	if !alg.Equal(spec.PBES2) {
		if hasPrefix(alg, spec.PBES1Arc) || hasPrefix(alg, spec.PKCS12PBEArc) {
			return nil, fmt.Errorf("key is encrypted with the obsolete scheme %v (PBES1); re-encrypt it with `openssl pkcs8 -topk8 -v2 aes256`", alg)
		}
		return nil, fmt.Errorf("unsupported key encryption scheme %v", alg)
	}
	var params spec.PBES2Params
	if rest, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("malformed PBES2 parameters: %v", errOr(err, "trailing data"))
	}
	e := &pbes2{ciphertext: info.EncryptedData}

	switch enc := params.EncryptionScheme.Algorithm; {
	case enc.Equal(spec.AES128CBC):
		e.cipher, e.keyLen, e.newBlock = "aes-128-cbc", 16, aes.NewCipher
	case enc.Equal(spec.AES192CBC):
		e.cipher, e.keyLen, e.newBlock = "aes-192-cbc", 24, aes.NewCipher
	case enc.Equal(spec.AES256CBC):
		e.cipher, e.keyLen, e.newBlock = "aes-256-cbc", 32, aes.NewCipher
	case enc.Equal(spec.DESEDE3CBC):
		e.cipher, e.keyLen, e.newBlock = "des-ede3-cbc", 24, des.NewTripleDESCipher
	default:
		return nil, fmt.Errorf("unsupported key cipher %v (supported: aes-128/192/256-cbc, des-ede3-cbc)", enc)
	}
	if rest, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &e.iv); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("malformed %s IV: %v", e.cipher, errOr(err, "trailing data"))
	}
	blockSize := aes.BlockSize
	if e.cipher == "des-ede3-cbc" {
		blockSize = des.BlockSize
	}
	if len(e.iv) != blockSize {
		return nil, fmt.Errorf("%s IV has %d bytes, want %d", e.cipher, len(e.iv), blockSize)
	}
	if len(e.ciphertext) == 0 || len(e.ciphertext)%blockSize != 0 {
		return nil, fmt.Errorf("encrypted key length %d is not a multiple of the %s block size (truncated?)", len(e.ciphertext), e.cipher)
	}

	kdfParams := params.KeyDerivationFunc.Parameters.FullBytes
	switch kdf := params.KeyDerivationFunc.Algorithm; {
	case kdf.Equal(spec.PBKDF2):
		var p spec.PBKDF2Params
		if rest, err := asn1.Unmarshal(kdfParams, &p); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("malformed PBKDF2 parameters: %v", errOr(err, "trailing data"))
		}
		if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations {
			return nil, fmt.Errorf("PBKDF2 iteration count %d out of range 1..%d", p.Iterations, maxPBKDF2Iterations)
		}
		if p.KeyLength != 0 && p.KeyLength != e.keyLen {
			return nil, fmt.Errorf("PBKDF2 key length %d does not fit %s", p.KeyLength, e.cipher)
		}
		e.kdf, e.salt, e.iterations = "pbkdf2", p.Salt, p.Iterations
		switch prf := p.PRF.Algorithm; {
		case len(prf) == 0 || prf.Equal(spec.HMACWithSHA1): // the default
			e.prf, e.prfName = sha1.New, "hmacWithSHA1"
		case prf.Equal(spec.HMACWithSHA224):
			e.prf, e.prfName = sha256.New224, "hmacWithSHA224"
		case prf.Equal(spec.HMACWithSHA256):
			e.prf, e.prfName = sha256.New, "hmacWithSHA256"
		case prf.Equal(spec.HMACWithSHA384):
			e.prf, e.prfName = sha512.New384, "hmacWithSHA384"
		case prf.Equal(spec.HMACWithSHA512):
			e.prf, e.prfName = sha512.New, "hmacWithSHA512"
		default:
			return nil, fmt.Errorf("unsupported PBKDF2 PRF %v", prf)
		}
	case kdf.Equal(spec.Scrypt):
		var p spec.ScryptParams
		if rest, err := asn1.Unmarshal(kdfParams, &p); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("malformed scrypt parameters: %v", errOr(err, "trailing data"))
		}
		if p.N < 2 || p.N&(p.N-1) != 0 || p.R < 1 || p.P < 1 || p.P > maxScryptP ||
			p.N > maxScryptMemory/128/p.R {
			return nil, fmt.Errorf("scrypt parameters N=%d r=%d p=%d out of range", p.N, p.R, p.P)
		}
		if p.KeyLength != 0 && p.KeyLength != e.keyLen {
			return nil, fmt.Errorf("scrypt key length %d does not fit %s", p.KeyLength, e.cipher)
		}
		e.kdf, e.salt, e.n, e.r, e.p = "scrypt", p.Salt, p.N, p.R, p.P
	default:
		return nil, fmt.Errorf("unsupported key derivation function %v (supported: PBKDF2, scrypt)", kdf)
	}
	return e, nil
}

// decrypt derives the key from passphrase and returns the plaintext
// PKCS#8 DER. A wrong passphrase shows as errBadPadding (or, 1 time in
// ~256, as garbage that the caller fails to parse).
func (e *pbes2) decrypt(passphrase []byte) ([]byte, error) {
	var key []byte
	var err error
	switch e.kdf {
	case "pbkdf2":
		key, err = pbkdf2.Key(e.prf, string(passphrase), e.salt, e.iterations, e.keyLen)
	case "scrypt":
		key, err = scrypt.Key(passphrase, e.salt, e.n, e.r, e.p, e.keyLen)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot derive the key: %w", err)
	}
	block, err := e.newBlock(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(e.ciphertext))
	cipher.NewCBCDecrypter(block, e.iv).CryptBlocks(out, e.ciphertext)
	return unpad(out, block.BlockSize())
}

func unpad(b []byte, blockSize int) ([]byte, error) {
	if len(b) == 0 {
		return nil, errBadPadding
	}
	n := int(b[len(b)-1])
	if n == 0 || n > blockSize || n > len(b) {
		return nil, errBadPadding
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, errBadPadding
		}
	}
	return b[:len(b)-n], nil
}

// Decrypt decrypts and parses the DER of an "ENCRYPTED PRIVATE KEY" block.
// The error is ErrWrongPassphrase when the passphrase does not fit.
func Decrypt(der, passphrase []byte) (crypto.Signer, error) {
	e, err := parse(der)
	if err != nil {
		return nil, err
	}
	plain, err := e.decrypt(passphrase)
	if errors.Is(err, errBadPadding) {
		return nil, ErrWrongPassphrase
	}
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(plain)
	if err != nil {
		// The padding check passes by chance for about one wrong
		// passphrase in 256; the garbage then fails to parse.
		return nil, ErrWrongPassphrase
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return s, nil
}

func hasPrefix(oid, arc asn1.ObjectIdentifier) bool {
	return len(oid) > len(arc) && oid[:len(arc)].Equal(arc)
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}
