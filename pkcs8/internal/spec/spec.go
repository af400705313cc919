// Package spec holds the object identifiers and ASN.1 structures of PKCS#8
// encryption (RFC 5958) and PBES2 (RFC 8018), shared by the decoder in
// sks/pkcs8 and the test encoder in sks/pkcs8/pkcs8test.
package spec

import (
	"crypto/x509/pkix"
	"encoding/asn1"
)

// Object identifiers of the schemes, key derivation functions, PRFs and
// ciphers.
var (
	PBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	PBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	Scrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}

	HMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	HMACWithSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	HMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	HMACWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	HMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	AES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	AES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	AES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	DESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}

	// PBES1 and the PKCS#12 PBE schemes live under these arcs.
	PBES1Arc     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5}
	PKCS12PBEArc = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
)

// EncryptedPrivateKeyInfo is the outer structure (RFC 5958, section 3).
type EncryptedPrivateKeyInfo struct {
	Algo          pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// PBES2Params are the parameters of PBES2 (RFC 8018, appendix A.4).
type PBES2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

// PBKDF2Params are the parameters of PBKDF2 (RFC 8018, appendix A.2); a
// missing PRF means hmacWithSHA1.
type PBKDF2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

// ScryptParams are the parameters of scrypt (RFC 7914, section 7.1).
type ScryptParams struct {
	Salt      []byte
	N         int
	R         int
	P         int
	KeyLength int `asn1:"optional"`
}
