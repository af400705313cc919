package tls

// Decryption of PKCS#8 "ENCRYPTED PRIVATE KEY" PEM blocks (RFC 5958, with
// PBES2 from RFC 8018), as written by `openssl genpkey -aes256`,
// `openssl pkcs8 -topk8` and OpenSSL 3's `openssl rsa/ec -aes256`.
//
// Why this is written here: the standard library only decrypts the legacy
// "Proc-Type: 4,ENCRYPTED" format (x509.DecryptPEMBlock, deprecated), and of
// the libraries in our dependency set go-pkcs12 implements PBES2 only
// internally, without exporting it. The one well-known standalone package
// (youmark/pkcs8) is not among our dependencies and pulls in more than we
// need. PBES2 is small: parse the ASN.1 parameters, derive the key with
// PBKDF2 (crypto/pbkdf2, standard since Go 1.24) or scrypt, decrypt CBC, and
// check the padding. Only decryption is implemented; nothing here encrypts.

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
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/scrypt"
)

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}

	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}

	// PBES1 and the PKCS#12 PBE schemes live under these arcs.
	oidPBES1Arc   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5}
	oidPKCS12PBE  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
	errBadPadding = errors.New("bad padding")
)

// Limits that keep a corrupt or hostile key file from pinning the CPU or
// exhausting memory at start-up. They are far above what OpenSSL writes
// (PBKDF2 2048 iterations; scrypt N=16384, r=8, p=1).
const (
	maxPBKDF2Iterations = 10_000_000
	maxScryptMemory     = 1 << 30 // 128*N*r bytes
	maxScryptP          = 16
)

type encryptedPrivateKeyInfo struct {
	Algo          pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt      []byte
	N         int
	R         int
	P         int
	KeyLength int `asn1:"optional"`
}

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

// parseEncryptedPKCS8 parses the DER of an EncryptedPrivateKeyInfo. It does
// no cryptography, so it is cheap to fuzz.
func parseEncryptedPKCS8(der []byte) (*pbes2, error) {
	var info encryptedPrivateKeyInfo
	rest, err := asn1.Unmarshal(der, &info)
	if err != nil {
		return nil, fmt.Errorf("not an encrypted PKCS#8 structure: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("trailing data after the encrypted PKCS#8 structure")
	}
	alg := info.Algo.Algorithm
	if !alg.Equal(oidPBES2) {
		if hasPrefix(alg, oidPBES1Arc) || hasPrefix(alg, oidPKCS12PBE) {
			return nil, fmt.Errorf("key is encrypted with the obsolete scheme %v (PBES1); re-encrypt it with `openssl pkcs8 -topk8 -v2 aes256`", alg)
		}
		return nil, fmt.Errorf("unsupported key encryption scheme %v", alg)
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("malformed PBES2 parameters: %v", errOr(err, "trailing data"))
	}
	e := &pbes2{ciphertext: info.EncryptedData}

	switch enc := params.EncryptionScheme.Algorithm; {
	case enc.Equal(oidAES128CBC):
		e.cipher, e.keyLen, e.newBlock = "aes-128-cbc", 16, aes.NewCipher
	case enc.Equal(oidAES192CBC):
		e.cipher, e.keyLen, e.newBlock = "aes-192-cbc", 24, aes.NewCipher
	case enc.Equal(oidAES256CBC):
		e.cipher, e.keyLen, e.newBlock = "aes-256-cbc", 32, aes.NewCipher
	case enc.Equal(oidDESEDE3CBC):
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
	case kdf.Equal(oidPBKDF2):
		var p pbkdf2Params
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
		case len(prf) == 0 || prf.Equal(oidHMACSHA1): // the default
			e.prf, e.prfName = sha1.New, "hmacWithSHA1"
		case prf.Equal(oidHMACSHA224):
			e.prf, e.prfName = sha256.New224, "hmacWithSHA224"
		case prf.Equal(oidHMACSHA256):
			e.prf, e.prfName = sha256.New, "hmacWithSHA256"
		case prf.Equal(oidHMACSHA384):
			e.prf, e.prfName = sha512.New384, "hmacWithSHA384"
		case prf.Equal(oidHMACSHA512):
			e.prf, e.prfName = sha512.New, "hmacWithSHA512"
		default:
			return nil, fmt.Errorf("unsupported PBKDF2 PRF %v", prf)
		}
	case kdf.Equal(oidScrypt):
		var p scryptParams
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

// decryptPKCS8Key decrypts and parses an "ENCRYPTED PRIVATE KEY" block.
// The error wraps ErrWrongPassword when the passphrase does not fit.
func decryptPKCS8Key(der, passphrase []byte) (crypto.Signer, error) {
	e, err := parseEncryptedPKCS8(der)
	if err != nil {
		return nil, err
	}
	plain, err := e.decrypt(passphrase)
	if errors.Is(err, errBadPadding) {
		return nil, ErrWrongPassword
	}
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(plain)
	if err != nil {
		// The padding check passes by chance for about one wrong
		// passphrase in 256; the garbage then fails to parse.
		return nil, ErrWrongPassword
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
